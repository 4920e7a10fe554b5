// serverCommand (src/find.js) for the cases the tests name: prints each answer as JSON.
"use strict";

const { serverCommand } = require("../src/find");

const [folder, python] = process.argv.slice(2);
const fs = require("fs");
const isFile = (p) => fs.existsSync(p) && fs.statSync(p).isFile();
console.log(JSON.stringify({
  configured: serverCommand({ configured: ["/opt/icldsl", "lsp"], folders: [folder], isFile, python }),
  venv: serverCommand({ folders: [folder], isFile, python, platform: "linux" }),
  windows: serverCommand({ folders: ["C:\\work"], isFile: (p) => p === "C:\\work\\venv\\Scripts\\icldsl.exe", platform: "win32" }),
  python: serverCommand({ folders: ["/nowhere"], isFile, python }),
  path: serverCommand({ folders: [], isFile }),
}));
