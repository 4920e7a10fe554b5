"""The trust model: which commands run user code, and what an artifact may make a program do.

`check`, `fmt`, `plan`, `render` and `graph` find a `python("module:function")` by parsing
its module, never by importing it; a loaded artifact never imports code from its own
folder; signed artifacts are verified; a deployment decides where an artifact's LM
requests go; credentials in a URL never reach a log, an artifact or a report.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from icldsl import artifact
from icldsl.cli import main
from icldsl.compiler import compile_file
from icldsl.runtime.program import Program
from icldsl.runtime.tools import ToolError, describe_tool, load_tool
from tests.scripted import ScriptedLM

# A module that leaves a mark when it is imported (it runs), and defines a tool and a reward.
HOSTILE = '''
from pathlib import Path
Path(__file__).with_suffix(".ran").write_text("imported")
raise SystemExit("this module ran")

def shout(text: str, times: int = 2) -> str:
    """Repeat the text loudly."""
    return text.upper() * times

def score(x, y_true, y_pred):
    return 1.0
'''

PROGRAM = """
model Q {{ question: str "A question" }}
model A {{ answer: float "The number" }}
lm m = "openai/x" {{ temperature: 0.0 }}
tool loud = python("{module}:shout")
program p {{ input q: Q  a = agent A from q tools [loud] max_steps 2  output a }}
data rows = jsonl("rows.jsonl")
train p on rows {{ reward python("{module}:score")  optimizer random_few_shot() }}
"""


@pytest.fixture
def hostile(tmp_path: Path):
    """A folder with a .icl file whose tool and reward live in a module that must not run."""
    module = f"hostile_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(HOSTILE, encoding="utf-8")
    (tmp_path / "p.icl").write_text(PROGRAM.format(module=module), encoding="utf-8")
    rows = [{"question": f"{i}+1", "answer": i + 1} for i in range(10)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    yield tmp_path, module
    sys.modules.pop(module, None)


@pytest.mark.parametrize("argv", [
    ["check", "p.icl"], ["fmt", "--check", "p.icl"], ["plan", "p.icl"],
    ["render", "p.icl", "--input", '{"question": "1+1"}'], ["graph", "p.icl", "-o", "g.png"],
], ids=lambda argv: argv[0])
def test_commands_that_only_read_a_file_never_run_its_python(hostile, monkeypatch, capsys, argv) -> None:
    folder, module = hostile
    monkeypatch.chdir(folder)
    assert main(argv) in (0, 1)  # fmt --check may find the file unformatted
    assert "error" not in capsys.readouterr().err
    assert not (folder / f"{module}.ran").exists() and module not in sys.modules


def test_render_describes_a_tool_from_its_source(hostile, monkeypatch, capsys) -> None:
    folder, module = hostile
    monkeypatch.chdir(folder)
    assert main(["render", "p.icl"]) == 0
    out = capsys.readouterr().out
    assert "Repeat the text loudly." in out and '"times": {"default": 2' in out


TYPED = '''
from typing import Literal, Optional
import typing

def typed(a: str, b: int, c: float = 1.5, d: bool = False, e: list[str] = [], f: Optional[int] = None,
          g: "int | None" = None, h: Literal["x", "y"] = "x", i: dict[str, int] = {}, j: typing.List[float] = (),
          *, k: tuple[int, str] = (1, "a")) -> str:
    """Typed."""
    return ""
'''


def test_a_tool_described_from_source_has_the_schema_of_the_imported_one(tmp_path: Path) -> None:
    name = f"typed_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TYPED, encoding="utf-8")
    try:
        described = describe_tool("t", f"{name}:typed", (tmp_path,))
        loaded = load_tool("t", f"{name}:typed", (tmp_path,))
    finally:
        sys.modules.pop(name, None)
    assert described.function is None and described.description == loaded.description == "Typed."
    assert described.arguments.model_json_schema() == loaded.arguments.model_json_schema()


AGENT_ARTIFACT_SOURCE = """
model Q { question: str }
model A { answer: float }
lm m = "openai/x"
tool calc = python("icldsl.tools:calculator")
program p { input q: Q  a = agent A from q tools [calc] max_steps 2  output a }
"""


def agent_artifact(folder: Path, ref: str) -> Path:
    """An artifact whose agent's tool is `ref` (as someone who edits and re-hashes it could make)."""
    (folder / "src.icl").write_text(AGENT_ARTIFACT_SOURCE, encoding="utf-8")
    spec, states = compile_file(folder / "src.icl").programs["p"]
    doc = artifact.freeze(Program(spec, states), source_file="gone.icl", source_sha256="0" * 64, training={})
    doc["program"]["tools"][0]["ref"] = ref
    doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    return artifact.write(folder / "a.artifact.json", doc)


def test_a_loaded_artifact_never_imports_a_module_from_its_own_folder(hostile, monkeypatch) -> None:
    folder, module = hostile
    path = agent_artifact(folder, f"{module}:shout")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))  # as `python -c` run there puts it first
    calls = ScriptedLM(lambda r: {"thinking": "", "action": {"tool": "loud", "arguments": {"text": "a"}}})
    program = artifact.load(path, clients={"m": calls})
    with pytest.raises(ToolError, match="in the artifact's own folder, which is never trusted with code"):
        program(question="1+1")
    program.close()
    assert not (folder / f"{module}.ran").exists() and module not in sys.modules
