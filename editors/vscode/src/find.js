// Which command starts the language server: the setting icldsl.server.command when the user
// gave one; else `icldsl` in the workspace's virtual environment (.venv, then venv); else the
// interpreter the Python extension chose (`python -m icldsl`); else `icldsl` on the PATH.
// Pure (the file system and the Python extension come in as functions), so node tests it alone.
"use strict";

const path = require("path");

const VENVS = [".venv", "venv"];

function venvExecutable(folder, venv, platform) {
  return platform === "win32"
    ? path.win32.join(folder, venv, "Scripts", "icldsl.exe")
    : path.posix.join(folder, venv, "bin", "icldsl");
}

// configured: the setting's value when the user set it (else undefined); folders: the
// workspace folders' paths; isFile(path) -> bool; python: the Python extension's interpreter
// path, or undefined. Returns {command, args, from}.
function serverCommand({ configured, folders, isFile, python, platform = process.platform }) {
  if (Array.isArray(configured) && configured.length > 0) {
    const [command, ...args] = configured;
    return { command, args, from: "the setting icldsl.server.command" };
  }
  for (const folder of folders) {
    for (const venv of VENVS) {
      const candidate = venvExecutable(folder, venv, platform);
      if (isFile(candidate)) {
        return { command: candidate, args: ["lsp"], from: `the workspace's ${venv}` };
      }
    }
  }
  if (python) {
    return { command: python, args: ["-m", "icldsl", "lsp"], from: "the Python extension's interpreter" };
  }
  return { command: "icldsl", args: ["lsp"], from: "the PATH" };
}

module.exports = { serverCommand, VENVS };
