// Starts `icldsl lsp` (the setting icldsl.server.command) for .icl files once the workspace
// is trusted: the server imports the Python tools a program names, which runs its code.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

async function start(context) {
  if (client) {
    return;
  }
  const [command, ...args] = vscode.workspace.getConfiguration("icldsl").get("server.command");
  client = new LanguageClient(
    "icldsl",
    "icldsl language server",
    { command, args },
    { documentSelector: [{ language: "icl" }] },
  );
  context.subscriptions.push(client);
  try {
    await client.start();
  } catch (error) {
    client = undefined;
    vscode.window.showErrorMessage(
      `icldsl: could not start \`${[command, ...args].join(" ")}\` (${error.message}). ` +
        "Install it with pip install 'icldsl[lsp]', or set icldsl.server.command.",
    );
  }
}

function activate(context) {
  if (vscode.workspace.isTrusted) {
    return start(context);
  }
  context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => start(context)));
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
