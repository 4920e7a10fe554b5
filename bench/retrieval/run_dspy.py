"""DSPy's side of the retrieval benchmark: `dspy.Predict` over a signature with the task's
fields, descriptions, labels (a `Literal`) and instructions, evaluated with
`dspy.Evaluate(num_threads=concurrency)`, then `dspy.KNNFewShot(k, trainset, vectorizer)`
compiled and evaluated again. Run by run.py in bench/.venvs/dspy.

The vectorizer is a `dspy.Embedder` over a function that looks vectors up in the table
run.py computed with icldsl's MiniLM provider (`local/all-minilm-l6-v2`, unit length): the
same vectors icldsl's `nearest_few_shot(retriever: minilm)` uses. DSPy's KNN embeds
`"<field>: <text>"`; the lookup strips the field name, so each text gets the vector of its
own text, as in icldsl. KNN scores by dot product, which on unit vectors is icldsl's cosine.

KNNFewShot's `**few_shot_bootstrap_args` go to the `BootstrapFewShot` it compiles at every
call over the k neighbours (DSPy's defaults: up to 4 bootstrapped demos, 16 labelled,
1 round): variant `knn` keeps them, so each test call first runs the teacher on
neighbours until 4 succeed; variant `knn-labeled` passes `max_bootstrapped_demos=0`,
`max_labeled_demos=k`, so the k neighbours are shown with their gold labels and each
test row costs one call, as in icldsl.

The server is declared to DSPy as supporting response schemas (`dspy.lm15.register_provider`,
as bench/training/run_dspy.py's `dspy-json`) and DSPy's JSONAdapter is used, so every
request carries the signature's JSON schema as icldsl's do. DSPy's caches: in memory and
on disk in the directory run.py gives (one per task and benchmark run, empty at its
start), as icldsl's cache is, so the untrained pass reaches the server once per task.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

import dspy  # noqa: E402
import numpy as np  # noqa: E402
from worker import Phases, main  # noqa: E402

MAX_ERRORS = 10**6


def run(config: dict[str, Any]) -> dict[str, Any]:
    task, s = config["task"], config["settings"]
    inp, label = task["input"], task["label"]
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=config["cache"])
    from dspy import lm15

    provider = "benchserver"
    access = lm15.AccessPolicy(provider=provider, base_url=config["base_url"])
    lm15.register_provider(lm15.ProviderDefinition.chat(access, compat=lm15.OpenAIChatCompat.preset("vllm")),
                           supports=lm15.ModelSupport(response_schema=True))
    lm = dspy.LM(f"{provider}/{config['lm']['model']}", api_base=config["base_url"], api_key="none",
                 temperature=0.0, max_tokens=config["lm"]["max_tokens"])
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter())

    fields: dict[str, Any] = {
        inp: (str, dspy.InputField(desc=task["input_description"])),
        label: (Literal[tuple(task["labels"])], dspy.OutputField(desc=task["label_description"])),
    }
    signature = dspy.make_signature(fields, task["instructions"], signature_name="Task")

    def metric(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
        return example[label] == prediction.get(label)

    def examples(rows: list[dict]) -> list[dspy.Example]:
        return [dspy.Example(**row).with_inputs(inp) for row in rows]

    table = {text: np.asarray(v, dtype=np.float32) for text, v in config["vectors"].items()}
    prefix = f"{inp}: "
    looked_up = {"hits": 0}

    def vectors(texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            key = text[len(prefix):] if text.startswith(prefix) else text
            out.append(table[key])
            looked_up["hits"] += 1
        return np.stack(out)

    test, train = examples(config["test"]), examples(config["train"])
    evaluate = dspy.Evaluate(devset=test, metric=metric, num_threads=s["concurrency"], display_progress=False,
                             display_table=False, max_errors=MAX_ERRORS)

    def outputs(result: Any) -> list[dict | None]:
        out = []
        for _, prediction, _ in result.results:
            value = prediction.get(label) if prediction is not None else None
            out.append(None if value is None else {label: value})
        return out

    phases = Phases()
    program = dspy.Predict(signature)
    phases.start("untrained_eval")
    untrained = evaluate(program)
    phases.start("train")
    k = config["k"]
    bootstrap = {} if config["variant"] == "knn" else {"max_bootstrapped_demos": 0, "max_labeled_demos": k}
    optimizer = dspy.KNNFewShot(k, train, vectorizer=dspy.Embedder(vectors, caching=False), **bootstrap)
    trained_program = optimizer.compile(program)
    phases.start("trained_eval")
    trained = evaluate(trained_program)
    phases.stop()
    return {
        "tool": "dspy", "version": dspy.__version__,
        "untrained": outputs(untrained), "trained": outputs(trained),
        "own_reward": {"untrained": untrained.score / 100, "trained": trained.score / 100},
        "phases": phases.seconds, "spans": phases.spans, "vector_lookups": looked_up["hits"],
    }


if __name__ == "__main__":
    main(run)
