"""DSPy's side of the training benchmark: `dspy.Predict` over a signature built from the
task, evaluated with `dspy.Evaluate(num_threads=concurrency)`, trained with
`BootstrapFewShot(max_bootstrapped_demos=k, max_labeled_demos=k, max_rounds=1)`, caches
off. Run by `run.py` in bench/.venvs/dspy, as one of two variants:

- `dspy`: DSPy's defaults, `dspy.LM("openai/<model>", api_base=...)` and the ChatAdapter
  (which retries with its JSONAdapter when an answer does not parse). DSPy does not know
  the model, so it assumes the server cannot take a JSON schema and sends none, in
  either adapter: the answers are free text.
- `dspy-json`: the server declared to DSPy 3.4 as a provider whose models support
  response schemas (`dspy.lm15.register_provider(..., supports=ModelSupport(
  response_schema=True))`, the way DSPy's documentation gives for an OpenAI-compatible
  server it does not list) and `dspy.JSONAdapter()`: every request carries the
  signature's JSON schema in `response_format`, as icldsl's and Synalinks's do.

DSPy's few-shot optimizers take no seed (they use `random.Random(0)`); the benchmark
shuffles the training rows with the repetition's seed before handing them over, so
repetitions draw different examples. DSPy has no epochs: BootstrapFewShot makes one pass
over the training rows (`max_rounds=1`), stopping once it has k successful traces.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of litellm's price list
os.environ.setdefault("DSPY_CACHEDIR", str(Path(__file__).resolve().parents[1] / ".venvs" / "dspy-cache"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dspy  # noqa: E402
from worker import Phases, main  # noqa: E402

TYPES = {"str": str, "float": float, "int": int}
MAX_ERRORS = 10**6  # DSPy stops an evaluation after dspy.settings.max_errors (10) failed predictions


def signature(task: dict[str, Any]) -> type[dspy.Signature]:
    inp = task["input"]
    fields: dict[str, Any] = {inp["name"]: (str, dspy.InputField(desc=inp["description"]))}
    for o in task["outputs"]:
        kind = Literal[tuple(o["labels"])] if o["type"] == "enum" else TYPES[o["type"]]
        fields[o["name"]] = (kind, dspy.OutputField(desc=o["description"]))
    return dspy.make_signature(fields, task["instructions"], signature_name="Task")


def same(expected: Any, got: Any, kind: str) -> bool:
    if kind in ("float", "int"):
        try:
            return float(expected) == float(got)
        except (TypeError, ValueError):
            return False
    return expected == got


def run(config: dict[str, Any]) -> dict[str, Any]:
    task, lm_settings, s = config["task"], config["lm"], config["settings"]
    kinds = {o["name"]: o["type"] for o in task["outputs"]}
    names = [o["name"] for o in task["outputs"]]
    inp = task["input"]["name"]

    def metric(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
        return all(same(example[f], prediction.get(f), kinds[f]) for f in task["reward_fields"])

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    provider, adapter = "openai", None
    if config.get("variant") == "json":
        from dspy import lm15

        provider = "benchserver"
        access = lm15.AccessPolicy(provider=provider, base_url=config["base_url"])
        lm15.register_provider(lm15.ProviderDefinition.chat(access, compat=lm15.OpenAIChatCompat.preset("vllm")),
                               supports=lm15.ModelSupport(response_schema=True))
        adapter = dspy.JSONAdapter()
    lm = dspy.LM(f"{provider}/{lm_settings['model']}", api_base=config["base_url"], api_key="none", cache=False,
                 temperature=float(lm_settings["temperature"]), max_tokens=lm_settings["max_tokens"])
    dspy.configure(lm=lm, adapter=adapter)

    def examples(rows: list[dict]) -> list[dspy.Example]:
        return [dspy.Example(**row).with_inputs(inp) for row in rows]

    test = examples(config["test"])
    train = examples(config["train"])
    random.Random(s["seed"]).shuffle(train)
    evaluate = dspy.Evaluate(devset=test, metric=metric, num_threads=s["concurrency"], display_progress=False,
                             display_table=False, max_errors=MAX_ERRORS)

    def outputs(result: Any) -> list[dict | None]:
        out = []
        for example, prediction, _ in result.results:
            values = {f: prediction.get(f) for f in names} if prediction is not None else {}
            out.append(values if values and all(v is not None for v in values.values()) else None)
        return out

    phases = Phases()
    program = dspy.Predict(signature(task))
    phases.start("untrained_eval")
    untrained = evaluate(program)
    phases.start("train")
    optimizer = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=s["examples"],
                                      max_labeled_demos=s["examples"], max_rounds=1, max_errors=MAX_ERRORS)
    trained_program = optimizer.compile(program, trainset=train)
    phases.start("trained_eval")
    trained = evaluate(trained_program)
    phases.stop()

    demos = [d.toDict() for d in trained_program.demos]
    return {
        "tool": "dspy-json" if config.get("variant") == "json" else "dspy", "version": dspy.__version__,
        "untrained": outputs(untrained), "trained": outputs(trained),
        "own_reward": {"untrained": untrained.score / 100, "trained": trained.score / 100},
        "phases": phases.seconds, "spans": phases.spans,
        "demos": {"predict": [{**d, "augmented": bool(d.get("augmented", False))} for d in demos]},
        "bootstrapped": sum(bool(d.get("augmented", False)) for d in demos),
    }


if __name__ == "__main__":
    main(run)
