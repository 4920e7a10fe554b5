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

import icldsl
from icldsl import artifact
from icldsl.cli import main
from icldsl.language.compiler import compile_file
from icldsl.runtime.program import Program
from icldsl.runtime.tools import ToolError, describe_tool, load_tool
from icldsl.runtime.state import spec_and_states
from tests.runtime.test_steps import AGENT
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


@pytest.mark.parametrize("exit_with, shown", [('"this module ran"', "SystemExit: this module ran"),
                                              ("3", "SystemExit: 3")])
def test_a_module_that_exits_while_imported_is_a_message(hostile, monkeypatch, capsys, exit_with, shown) -> None:
    """Commands that do import user code (eval, fit) report a module's exit as any other failure
    to import it: status 1 and a message, not the status or traceback the module chose."""
    folder, module = hostile
    (folder / f"{module}.py").write_text(HOSTILE.replace('"this module ran"', exit_with), encoding="utf-8")
    monkeypatch.chdir(folder)
    assert main(["eval", "p.icl", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert f"cannot import {module!r}: {shown}" in err and "Traceback" not in err


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


def agent_artifact(folder: Path, ref: str) -> Path:
    """An artifact whose agent's tool is `ref` (as someone who edits and re-hashes it could make)."""
    (folder / "src.icl").write_text(AGENT, encoding="utf-8")
    spec, states = spec_and_states(compile_file(folder / "src.icl"), "p")
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
    program = icldsl.load(path, clients={"m": calls})
    with pytest.raises(ToolError, match="in the artifact's own folder, which is never trusted with code"):
        program(question="1+1")
    program.close()
    assert not (folder / f"{module}.ran").exists() and module not in sys.modules


# ---- signing, where requests go, secrets in URLs --------------------------------------------

ADDER = """
model Sum {{ question: str "Two numbers to add, like 2+3" }}
model Total {{ answer: float "Their sum" }}
lm solver = "openai/loopback" {{ base_url: {url}, api_key: env("ADDER_KEY"), temperature: 0.0 }}
program adder {{ input q: Sum  total = generate Total from q  output total }}
data sums = jsonl("train.jsonl", test: "test.jsonl")
train adder on sums {{ reward exact_match()  optimizer random_few_shot()  batch_size 4 }}
"""
KEY = "k" * 40


def sums(request) -> dict:
    a, b = json.loads(request.messages[-1]["content"])["question"].split("+")
    return {"answer": float(a) + float(b)}


@pytest.fixture
def adder(tmp_path: Path, monkeypatch):
    """A project that fits against a loopback server; yields (folder, server)."""
    from tests.loopback import LoopbackServer

    with LoopbackServer(sums) as server:
        rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1} for i in range(12)]
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]), encoding="utf-8")
        (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[8:]), encoding="utf-8")
        (tmp_path / "adder.icl").write_text(ADDER.format(url=json.dumps(server.openai_url)), encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("ADDER_KEY", "the-key")
        yield tmp_path, server


def test_a_signed_artifact_runs_only_with_its_key(adder, monkeypatch, capsys) -> None:
    folder, _ = adder
    monkeypatch.delenv(artifact.SIGNING_KEY_ENV, raising=False)
    assert main(["fit", "adder.icl", "-q", "--no-report", "--sign"]) == 1
    assert "no signing key: set $ICLDSL_SIGNING_KEY" in capsys.readouterr().err
    monkeypatch.setenv(artifact.SIGNING_KEY_ENV, KEY)
    assert main(["fit", "adder.icl", "-q", "--no-report", "--sign"]) == 0
    path = folder / "adder.artifact.json"
    assert artifact.read(path)[artifact.SIGNATURE_KEY]["algorithm"] == "hmac-sha256"
    run = ["run", str(path), "--input", '{"question": "2+3"}', "--verify"]
    capsys.readouterr()
    assert main(run) == 0 and json.loads(capsys.readouterr().out) == {"answer": 5.0}
    icldsl.load(path, verify=KEY.encode()).close()

    monkeypatch.setenv(artifact.SIGNING_KEY_ENV, "x" * 40)  # another key
    assert main(run) == 1 and "signed, but not with this key" in capsys.readouterr().err

    # The attack of issue 16: edit the artifact to send the key to another host, hash it again.
    monkeypatch.setenv(artifact.SIGNING_KEY_ENV, KEY)
    doc = artifact.read(path)
    doc["program"]["lms"][0]["options"]["base_url"] = "http://127.0.0.1:9/v1"
    doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    artifact.write(path, doc)
    assert main(run) == 1 and "signed, but not with this key" in capsys.readouterr().err
    with pytest.raises(artifact.ArtifactError, match="not with this key"):
        icldsl.load(path, verify=True)

    del doc[artifact.SIGNATURE_KEY]
    artifact.write(path, doc)
    assert main(run) == 1 and "is not signed" in capsys.readouterr().err


def test_a_deployment_decides_where_an_artifacts_requests_go(adder, monkeypatch, capsys) -> None:
    from tests.loopback import LoopbackServer

    folder, trained_on = adder
    assert main(["fit", "adder.icl", "-q", "--no-report"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("PROD_KEY", "prod-key")
    with LoopbackServer(sums) as production:
        del trained_on.requests[:]
        assert main(["run", "adder.artifact.json", "--input", '{"question": "2+40"}', "--no-cache",
                     "--lm", f"solver.base_url={production.openai_url}", "--lm", "solver.api_key=env:PROD_KEY"]) == 0
        assert json.loads(capsys.readouterr().out) == {"answer": 42.0}
        assert trained_on.requests == [] and len(production.requests) == 1
        assert production.requests[0].headers["authorization"] == "Bearer prod-key"
        program = icldsl.load("adder.artifact.json", lms={"solver": {"base_url": production.openai_url}})
        assert program(question="1+1").answer == 2.0
        program.close()
    for flag, message in [("other.base_url=http://h/v1", "cannot override lm `other`: the program's lms are solver"),
                          ("solver.api_key=sk-123", "option `api_key` must name an environment variable"),
                          ("solver.base_url=http://h/v1?key=sk-123", "option `base_url` holds credentials in a URL"),
                          ("solver.max_concurrency=100000000", "option `max_concurrency` must be an integer from 1 to 1024"),
                          ("solver.weights=q4_0", "openai has no option `weights`"),
                          ("solver", "write NAME.OPTION=VALUE")]:
        assert main(["run", "adder.artifact.json", "--input", "{}", "--lm", flag]) == 1
        assert message in capsys.readouterr().err


def test_credentials_in_a_url_never_reach_a_log_an_artifact_or_a_report(adder, monkeypatch, capsys, caplog) -> None:
    import logging

    folder, server = adder
    host = server.openai_url.removeprefix("http://")
    monkeypatch.setenv("ADDER_URL", f"http://team:sekrit-pass@{host}")
    text = (folder / "adder.icl").read_text(encoding="utf-8")
    (folder / "adder.icl").write_text(text.replace(json.dumps(server.openai_url), 'env("ADDER_URL")'), encoding="utf-8")
    with caplog.at_level(logging.DEBUG):
        assert main(["-v", "fit", "adder.icl", "-q"]) == 0
        assert main(["-v", "run", "adder.artifact.json", "--input", '{"question": "1+2"}', "--no-cache"]) == 0
    captured = capsys.readouterr()
    assert caplog.records and "sekrit" not in caplog.text and "sekrit" not in captured.out + captured.err
    assert all("sekrit" not in p.read_text(encoding="utf-8", errors="replace") for p in folder.iterdir() if p.is_file()
               and p.suffix in (".json", ".html", ".csv"))
    import base64  # the credentials still travel, as Basic auth (as httpx sends a URL's user-info)
    assert server.requests[-1].headers["authorization"] == "Basic " + base64.b64encode(b"team:sekrit-pass").decode()

    (folder / "adder.icl").write_text(text.replace(json.dumps(server.openai_url), '"http://team:sekrit-pass@h/v1"'))
    assert main(["check", "adder.icl"]) == 1
    err = capsys.readouterr().err
    assert "error[secret-in-source]" in err and "sekrit" not in err


def test_a_token_in_an_env_url_is_sent_but_never_logged_traced_or_stored(adder, monkeypatch, capsys, caplog) -> None:
    import logging

    folder, server = adder
    monkeypatch.setenv("ADDER_URL", f"{server.openai_url}?token=sekrit-tok")
    text = (folder / "adder.icl").read_text(encoding="utf-8")
    (folder / "adder.icl").write_text(text.replace(json.dumps(server.openai_url), 'env("ADDER_URL")'), encoding="utf-8")
    with caplog.at_level(logging.DEBUG):
        assert main(["-v", "fit", "adder.icl", "-q", "--trace", "fit.trace.jsonl"]) == 0
        assert main(["-v", "run", "adder.artifact.json", "--input", '{"question": "1+2"}', "--no-cache",
                     "--trace", "run.trace.jsonl"]) == 0
    captured = capsys.readouterr()
    assert {(r.path, r.query) for r in server.requests} == {("/v1/chat/completions", "token=sekrit-tok")}
    assert caplog.records and "sekrit" not in caplog.text + captured.out + captured.err
    written = [p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl", ".html", ".csv")]
    assert folder / "run.trace.jsonl" in written
    assert all("sekrit" not in p.read_text(encoding="utf-8", errors="replace") for p in written)

    (folder / "adder.icl").write_text(text.replace(json.dumps(server.openai_url), '["http://h/v1?token=sekrit-tok"]'))
    assert main(["check", "adder.icl"]) == 1
    err = capsys.readouterr().err
    assert "error[secret-in-source]" in err and "sekrit" not in err
