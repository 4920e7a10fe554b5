// Starts `icldsl lsp` for .icl files once the workspace is trusted (the command it starts may
// come from the workspace: its settings or its virtual environment), and adds the render
// preview: a CodeLens above each program, and the command "icldsl: Render messages".
"use strict";

const fs = require("fs");
const vscode = require("vscode");
const { LanguageClient, ExecuteCommandRequest } = require("vscode-languageclient/node");
const { serverCommand } = require("./find");

const PREVIEW_SCHEME = "icldsl-render";
const PROGRAM = /^\s*program\s+([A-Za-z_][A-Za-z0-9_]*)/;

let client;
const previews = new Map(); // preview uri -> its text
const changed = new vscode.EventEmitter();

function isFile(path) {
  try {
    return fs.statSync(path).isFile();
  } catch {
    return false;
  }
}

async function pythonInterpreter() {
  const extension = vscode.extensions.getExtension("ms-python.python");
  if (!extension) {
    return undefined;
  }
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = api.environments?.getActiveEnvironmentPath?.(resource);
    if (active?.path) {
      return active.path;
    }
    return api.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
  } catch {
    return undefined; // an older or failing Python extension: the PATH is next
  }
}

async function start(context) {
  if (client) {
    return;
  }
  const setting = vscode.workspace.getConfiguration("icldsl").inspect("server.command");
  const configured = setting.workspaceFolderValue ?? setting.workspaceValue ?? setting.globalValue;
  const found = serverCommand({
    configured,
    folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
    isFile,
    python: configured ? undefined : await pythonInterpreter(),
  });
  client = new LanguageClient(
    "icldsl",
    "icldsl language server",
    { command: found.command, args: found.args },
    { documentSelector: [{ language: "icl" }] },
  );
  context.subscriptions.push(client);
  try {
    await client.start();
  } catch (error) {
    client = undefined;
    vscode.window.showErrorMessage(
      `icldsl: could not start \`${[found.command, ...found.args].join(" ")}\` (from ${found.from}: ` +
        `${error.message}). Install it with pip install 'icldsl[lsp]' (in the workspace's .venv, it is found), ` +
        "or set icldsl.server.command.",
    );
  }
}

// The messages a program's LM steps would send for an input, from the server's `icldsl.render`
// (the code `icldsl render` runs), shown read-only beside the file.
async function renderPreview(uri, program) {
  const document = uri ? await vscode.workspace.openTextDocument(uri) : vscode.window.activeTextEditor?.document;
  if (!document || document.languageId !== "icl") {
    vscode.window.showErrorMessage("icldsl: open an .icl file to render its messages.");
    return;
  }
  if (!client) {
    vscode.window.showErrorMessage("icldsl: the language server is not running (see the icldsl output).");
    return;
  }
  const typed = await vscode.window.showInputBox({
    title: `Render ${program ? `program ${program}` : "the first program"}`,
    prompt: "The program's input as a JSON object; empty shows placeholders",
    placeHolder: '{"question": "..."}',
  });
  if (typed === undefined) {
    return;
  }
  let input;
  try {
    input = typed.trim() ? JSON.parse(typed) : undefined;
  } catch (error) {
    vscode.window.showErrorMessage(`icldsl: the input is not JSON (${error.message}).`);
    return;
  }
  const result = await client.sendRequest(ExecuteCommandRequest.type, {
    command: "icldsl.render",
    arguments: [document.uri.toString(), { program, input }],
  });
  if (result.error) {
    vscode.window.showErrorMessage(`icldsl render: ${result.error}`);
    return;
  }
  const preview = vscode.Uri.from({ scheme: PREVIEW_SCHEME, path: `/${result.program}.render.txt` });
  previews.set(preview.toString(), result.text);
  changed.fire(preview);
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(preview), {
    viewColumn: vscode.ViewColumn.Beside,
    preview: true,
  });
}

const lenses = {
  provideCodeLenses(document) {
    const found = [];
    for (let line = 0; line < document.lineCount; line++) {
      const match = PROGRAM.exec(document.lineAt(line).text);
      if (match) {
        found.push(new vscode.CodeLens(new vscode.Range(line, 0, line, 0), {
          title: "Render messages",
          command: "icldsl.renderPreview",
          arguments: [document.uri, match[1]],
        }));
      }
    }
    return found;
  },
};

function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("icldsl.renderPreview", renderPreview),
    vscode.languages.registerCodeLensProvider({ language: "icl" }, lenses),
    vscode.workspace.registerTextDocumentContentProvider(PREVIEW_SCHEME, {
      onDidChange: changed.event,
      provideTextDocumentContent: (uri) => previews.get(uri.toString()) ?? "",
    }),
  );
  if (vscode.workspace.isTrusted) {
    return start(context);
  }
  context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => start(context)));
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
