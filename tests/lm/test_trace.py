"""The trace of every LM call (`--trace FILE` and OpenTelemetry's spans), through the
command line against a real loopback server: what each line holds, lines that are never
torn, no key in either, a judge whose fallback answers for it, and costs counted under
the LM that answered."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from icldsl.cli import main
from icldsl.language.compiler import compile_file
from icldsl.lm.base import LMRequest, Message
from icldsl.lm.trace import Call, JSONLTrace, OTelTrace, Site
from icldsl.training.session import eval_compiled, program_of
from tests.loopback import LoopbackServer, error_reply
from tests.cli.test_cache_cli import usage_rows

KEY = "sk-trace-secret-4242"  # in the environment, read by env("...")
PASSWORD = "pw-in-the-url-9191"  # in a base_url's credentials, in the environment too (the checker refuses it in the file)

SOURCE = """
model Q {{ question: str "A question" }}
model A {{ answer: str "The answer" }}
lm solver = "openai/solver" {{ base_url: "{url}", api_key: env("ICLDSL_TRACE_KEY"), temperature: 0.0 }}
lm judge = "openai/judge-model" {{ base_url: env("ICLDSL_TRACE_URL"), max_retries: 1, fallback: backup }}
lm backup = "anthropic/backup-model" {{ base_url: "{plain}", api_key: env("ICLDSL_TRACE_KEY") }}
program qa {{ input q: Q  a = generate A from q using solver  output a }}
data rows = jsonl("train.jsonl", test: "test.jsonl")
train qa on rows {{
    reward lm_judge(lm: judge, instructions: "accuracy", scale: 3)
    optimizer random_few_shot()
}}
"""

ROWS = [{"question": "Capital of France?", "answer": "Paris"}, {"question": "Capital of Peru?", "answer": "Lima"}]


def answer(request) -> object:
    """The solver knows France only; the judge's own server is down; its fallback judges."""
    if request.path == "/v1/chat/completions" and request.json["model"] == "judge-model":
        return error_reply(503, "judge down", {"Retry-After": "0"})
    if request.path == "/v1/chat/completions":
        return {"answer": "Paris" if "France" in request.last_user_message else "no idea"}
    candidate = json.loads(request.last_user_message)["candidate"]["answer"]
    return {"critique": "Matches." if candidate == "Paris" else "Says nothing.", "score": 3 if candidate == "Paris" else 1}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ICLDSL_TRACE_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / "train.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with LoopbackServer(answer) as server:
        secret_url = server.openai_url.replace("http://", f"http://user:{PASSWORD}@")
        monkeypatch.setenv("ICLDSL_TRACE_URL", secret_url)
        (tmp_path / "qa.icl").write_text(SOURCE.format(url=server.openai_url, plain=server.url), encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        yield tmp_path, server


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_eval_traces_every_call_and_the_judges_fallback_answers(project, capsys) -> None:
    tmp_path, server = project
    assert main(["eval", "qa.icl", "--quiet", "--no-cache", "--trace", "calls.jsonl"]) == 0
    out = capsys.readouterr().out
    rows = usage_rows(out)
    # The judge's calls were answered by its fallback, and are counted under it.
    assert rows["lm backup"][:3] == ["2", "0", "0"] and rows["lm solver"][:3] == ["2", "0", "0"]
    assert "lm judge" not in rows
    assert "0.500" in out  # Paris right (3 of 3: 1.0), Lima wrong (1 of 3: 0.0)

    trace = lines(tmp_path / "calls.jsonl")
    solver = [t for t in trace if t["lm"] == "solver"]
    judged = [t for t in trace if t["lm"] == "judge"]
    assert len(solver) == len(judged) == 2 and len(trace) == 4
    first = next(t for t in solver if "France" in t["messages"][-1]["content"])
    assert (first["program"], first["step"], first["target"]) == ("qa", "qa/a", "openai/solver")
    assert first["messages"][0]["role"] == "system" and json.loads(first["answer"]) == {"answer": "Paris"}
    assert first["output"] == {"answer": "Paris"} and first["error"] is None and first["refused"] is None
    assert first["usage"]["prompt_tokens"] > 0 and first["latency"] > 0 and first["cached"] is False
    assert first["fallback"] is None and first["answered_by"] == "solver" and first["retries"] == 0
    for line in judged:
        assert (line["program"], line["step"]) == (None, "reward lm_judge")
        assert line["answered_by"] == line["fallback"] == "backup"
        assert line["retries"] == 1  # the primary was asked twice (max_retries: 1) before the fallback
        assert set(line["output"]) == {"critique", "score"}
    # The primary judge was tried (twice per call), then the fallback answered.
    assert sum(r.path == "/v1/messages" for r in server.requests) == 2

    text = (tmp_path / "calls.jsonl").read_text(encoding="utf-8")
    assert KEY not in text and PASSWORD not in text
    assert KEY not in out and PASSWORD not in out


def test_a_fit_appends_its_calls_and_the_cache_shows_in_the_trace(project, capsys) -> None:
    tmp_path, server = project
    assert main(["fit", "qa.icl", "--quiet", "--no-report", "--trace", "fit.jsonl"]) == 0
    made = lines(tmp_path / "fit.jsonl")
    assert any(not t["cached"] and t["latency"] > 0 for t in made)
    assert {t["step"] for t in made} == {"qa/a", "reward lm_judge"}
    # Again, from the cache: the same calls, appended, each answered by the cache.
    assert main(["fit", "qa.icl", "--quiet", "--no-report", "--trace", "fit.jsonl"]) == 0
    again = lines(tmp_path / "fit.jsonl")[len(made):]
    assert len(again) == len(made) and all(t["cached"] and t["latency"] is None for t in again)
    assert sorted(json.dumps(t["messages"]) for t in again) == sorted(json.dumps(t["messages"]) for t in made)
    text = (tmp_path / "fit.jsonl").read_text(encoding="utf-8")
    assert KEY not in text and PASSWORD not in text


def test_run_traces_to_a_file_and_says_so_when_it_cannot(project, capsys) -> None:
    tmp_path, _ = project
    assert main(["fit", "qa.icl", "--quiet", "--no-report", "--no-cache"]) == 0
    assert main(["run", "qa.artifact.json", "--input", '{"question": "Capital of France?"}', "--no-cache",
                 "--trace", "run.jsonl"]) == 0
    [line] = lines(tmp_path / "run.jsonl")
    assert line["output"] == {"answer": "Paris"} and line["program"] == "qa"
    capsys.readouterr()
    assert main(["run", "qa.artifact.json", "--input", '{"question": "x"}', "--trace", "no/such/dir/t.jsonl"]) == 1
    assert "cannot write the trace to no/such/dir/t.jsonl" in capsys.readouterr().err


def test_spans_follow_the_genai_conventions_and_hold_no_key(project) -> None:
    tmp_path, _ = project
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    compiled = compile_file(tmp_path / "qa.icl")
    program = program_of(compiled, "qa", tracers=[OTelTrace(provider)])
    scores = asyncio.run(eval_compiled(compiled, compiled.train(), program))
    assert [s.reward for s in scores.runs[0].scored] == [1.0, 0.0]
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    solver = [s for s in spans if s.attributes["icldsl.lm"] == "solver"]
    judged = [s for s in spans if s.attributes["icldsl.lm"] == "judge"]
    assert len(solver) == len(judged) == 2
    span = solver[0]
    assert span.name == "chat solver" and span.kind.name == "CLIENT"
    attributes = span.attributes
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "solver" and attributes["gen_ai.request.temperature"] == 0.0
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    messages = json.loads(attributes["gen_ai.input.messages"])
    assert messages[0]["role"] == "system" and messages[0]["parts"][0]["type"] == "text"
    assert json.loads(attributes["gen_ai.output.messages"])[0]["role"] == "assistant"
    assert attributes["icldsl.program"] == "qa" and attributes["icldsl.step"] == "qa/a"
    assert span.end_time >= span.start_time
    assert all(s.attributes["icldsl.answered_by"] == "backup" and s.attributes["icldsl.retries"] == 1
               for s in judged)
    everything = json.dumps([{**s.attributes, "name": s.name, "status": s.status.description} for s in spans])
    assert KEY not in everything and PASSWORD not in everything


def test_a_call_that_failed_is_a_span_in_error() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    call = Call(Site("p/s", "p"), "solver", "ollama/m", LMRequest((Message("user", "{}"),)),
                error="ollama/m: no answer after 1 attempt(s); last: HTTP 503")
    OTelTrace(provider).record(call)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == "icldsl.LMError"
    assert "gen_ai.output.messages" not in span.attributes


def test_lines_written_at_once_by_many_threads_are_never_torn(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    traces = [JSONLTrace(path), JSONLTrace(path)]  # two writers on one file, as two processes would be

    def write(n: int) -> None:
        for i in range(50):
            content = f"{n}:{i}:" + "x" * (20_000 + 997 * i)  # lines longer than any buffer
            call = Call(Site("p/s", "p"), "lm", "fake/m", LMRequest((Message("user", content),)), text="{}")
            traces[n % 2].record(call)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for trace in traces:
        trace.close()
    got = lines(path)
    assert len(got) == 200
    assert sorted(t["messages"][0]["content"].split(":")[0] + ":" + t["messages"][0]["content"].split(":")[1]
                  for t in got) == sorted(f"{n}:{i}" for n in range(4) for i in range(50))
