"""The VS Code extension (editors/vscode): its TextMate grammar gives every token of every
program in programs/ the scope the parser's reading calls for, tokenised as VS Code does
(vscode-textmate with vscode-oniguruma, from npm); and it packages into a .vsix with vsce.

Needs node and npm; without them these tests are skipped, saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from icldsl.language import ir
from icldsl.language.parser import parse, tokens
from icldsl.language.source import Source
from icldsl.language.vocabulary import PRIMITIVE_TYPES

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "editors" / "vscode"
PROGRAMS = sorted((ROOT / "programs").glob("*.icl"))

# The scope a keyword gets; every other keyword is some `keyword.*`.
KEYWORD_SCOPES = {"true": "constant.language.boolean", "false": "constant.language.boolean",
                  "list": "support.type", "enum": "support.type", "env": "support.function.env"}
SCOPES = {"string": "string.quoted.double.icl", "number": "constant.numeric.icl",
          "comment": "comment.line.double-slash.icl"}


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The extension's npm packages, installed from package-lock.json (once, while it is current)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not on PATH: the VS Code grammar and packaging are not tested")
    installed = EXTENSION / "node_modules" / ".package-lock.json"
    lock = EXTENSION / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXTENSION, check=True, capture_output=True,
                       timeout=600)
    return EXTENSION / "node_modules"


def expected_scope(kind: str, text: str) -> str:
    if kind == "keyword":
        return KEYWORD_SCOPES.get(text, "keyword.")
    return SCOPES[kind]


def named_types(module: ir.Module):
    """Every type named in the file: field types, program inputs, the models steps make."""
    def walk(t):
        if isinstance(t, ir.NamedType):
            yield t
        elif isinstance(t, ir.ListType):
            yield from walk(t.item)
        elif isinstance(t, ir.OptionalType):
            yield from walk(t.inner)

    for model in module.of(ir.Model):
        for f in model.fields:
            yield from walk(f.type)
    for program in module.of(ir.Program):
        yield from (i.model for i in program.inputs)
        yield from (s.model for s in program.lm_steps())


def test_grammar_scopes_every_program(node_modules: Path) -> None:
    result = subprocess.run(["node", str(EXTENSION / "test" / "tokenize.js"), *map(str, PROGRAMS)],
                            capture_output=True, text=True, check=True, timeout=120)
    tokenised = json.loads(result.stdout)
    checked: dict[str, int] = {}
    wrong = []
    for path in PROGRAMS:
        source = Source(str(path), path.read_text(encoding="utf-8"))
        by_line: dict[int, list] = {}
        for line, start, end, scopes in tokenised[str(path)]:
            by_line.setdefault(line, []).append((start, end, scopes))

        def scopes_of(start: int, end: int) -> list[list[str]]:
            line, column = source.position(start)
            text = source.line_text(line)
            first = len(text[:column - 1].encode("utf-16-le")) // 2
            last = first + len(source.text[start:end].encode("utf-16-le")) // 2
            return [s for a, b, s in by_line.get(line - 1, []) if a < last and b > first]

        def check(start: int, end: int, scope: str, what: str) -> None:
            found = scopes_of(start, end)
            checked[what] = checked.get(what, 0) + 1
            if not found or not all(any(s.startswith(scope) for s in scopes) for scopes in found):
                wrong.append(f"{path.name}:{source.position(start)[0]}: {source.text[start:end]!r} ({what}) "
                             f"wants {scope}, has {found}")

        for lexeme in tokens(source):
            if lexeme.kind in ("keyword", "string", "number", "comment"):
                check(lexeme.start, lexeme.end, expected_scope(lexeme.kind, lexeme.text), lexeme.kind)
        for t in named_types(parse(source)):
            primitive = t.name in PRIMITIVE_TYPES
            check(t.span.start, t.span.end, "support.type.primitive.icl" if primitive else "entity.name.type.icl",
                  "type")
    assert not wrong, "\n".join(wrong)
    assert all(checked.get(kind, 0) > 10 for kind in ("keyword", "string", "number", "comment", "type")), checked
    print(f"\ngrammar: {len(PROGRAMS)} files, {sum(checked.values())} tokens checked: {checked}")


def test_the_extension_packages_into_a_bundled_vsix(node_modules: Path, tmp_path: Path) -> None:
    out = tmp_path / "icldsl.vsix"
    subprocess.run(["npm", "run", "package", "--", "--out", str(out)], cwd=EXTENSION, check=True,
                   capture_output=True, timeout=300)
    vsix = zipfile.ZipFile(out)
    names = {n.removeprefix("extension/") for n in vsix.namelist() if n.startswith("extension/")}
    # One bundle (esbuild) instead of the sources and their 300 npm files; nothing else.
    assert names == {"package.json", "dist/extension.js", "language-configuration.json", "syntaxes/icl.tmLanguage.json",
                     "images/icon.png", "readme.md", "changelog.md", "LICENSE.txt"}
    manifest = json.loads(vsix.read("extension/package.json"))
    assert manifest["contributes"]["configuration"]["properties"]["icldsl.server.command"]["default"] == ["icldsl", "lsp"]
    assert manifest["main"] == "./dist/extension.js" and manifest["repository"]["url"].startswith("https://")
    assert vsix.read("extension/images/icon.png").startswith(b"\x89PNG") and manifest["icon"] == "images/icon.png"
    assert manifest["version"] in vsix.read("extension/changelog.md").decode()
    assert [c["command"] for c in manifest["contributes"]["commands"]] == ["icldsl.renderPreview"]
    bundle = tmp_path / "extension.js"
    bundle.write_bytes(vsix.read("extension/dist/extension.js"))
    loaded = json.loads(subprocess.run(["node", str(EXTENSION / "test" / "bundle.js"), str(bundle)], check=True,
                                       capture_output=True, text=True, timeout=60).stdout)
    assert loaded == {"exports": ["activate", "deactivate"], "required": []}  # needs `vscode` alone


def test_the_server_is_found_in_the_workspace_venv_then_python_then_path(node_modules: Path, tmp_path: Path) -> None:
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "icldsl").write_text("")
    found = json.loads(subprocess.run(["node", str(EXTENSION / "test" / "find.js"), str(tmp_path), "/usr/bin/python3"],
                                      check=True, capture_output=True, text=True, timeout=60).stdout)
    assert found["configured"]["command"] == "/opt/icldsl"  # the setting, when the user gave one
    assert (found["venv"]["command"], found["venv"]["args"]) == (str(tmp_path / ".venv" / "bin" / "icldsl"), ["lsp"])
    assert found["windows"]["command"] == "C:\\work\\venv\\Scripts\\icldsl.exe"
    assert (found["python"]["command"], found["python"]["args"]) == ("/usr/bin/python3", ["-m", "icldsl", "lsp"])
    assert (found["path"]["command"], found["path"]["args"]) == ("icldsl", ["lsp"])
