// Loads the bundle (dist/extension.js) as VS Code would, with a stand-in for the `vscode`
// module: it must need no other module (the .vsix holds no node_modules). Prints its exports.
"use strict";

const Module = require("module");
const path = require("path");

const required = [];
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (request === "vscode") {
    return "vscode";
  }
  if (!request.startsWith(".") && !path.isAbsolute(request) && !Module.isBuiltin(request)) {
    required.push(request);
  }
  return resolve.call(this, request, parent, ...rest);
};
const stub = new Proxy(function () {}, { get: (target, key) => (key === "then" ? undefined : stub), apply: () => stub, construct: () => stub });
require.cache.vscode = { id: "vscode", filename: "vscode", loaded: true, exports: stub };
const bundle = require(path.resolve(process.argv[2]));
console.log(JSON.stringify({ exports: Object.keys(bundle).sort(), required }));
