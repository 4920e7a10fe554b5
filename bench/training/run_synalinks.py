"""Synalinks's side of the training benchmark: one `Generator` over data models built from
the task (structured output through `response_format`), `program.predict(batch_size=
concurrency)` on the test rows before and after `program.fit` with `RandomFewShot(
nb_min_examples=k, nb_max_examples=k)`, `ExactMatch(in_mask=reward fields)`, on the same
training and validation rows as icldsl's split of them, caching off, seeded with
`synalinks.set_seed`. Run by `run.py` in bench/.venvs/synalinks (Python 3.12)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of litellm's price list
os.environ.setdefault("OPENAI_API_KEY", "none")  # the local server ignores it; litellm wants one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pydantic  # noqa: E402
import synalinks  # noqa: E402
from worker import Phases, main  # noqa: E402

TYPES = {"str": str, "float": float, "int": int}


def data_models(task: dict[str, Any]) -> tuple[type, type]:
    inp = task["input"]
    x_model = pydantic.create_model(
        "TaskInput", __base__=synalinks.DataModel,
        **{inp["name"]: (str, synalinks.Field(description=inp["description"]))},
    )
    fields = {}
    for o in task["outputs"]:
        kind = Literal[tuple(o["labels"])] if o["type"] == "enum" else TYPES[o["type"]]
        fields[o["name"]] = (kind, synalinks.Field(description=o["description"]))
    y_model = pydantic.create_model("TaskOutput", __base__=synalinks.DataModel, **fields)
    return x_model, y_model


def run(config: dict[str, Any]) -> dict[str, Any]:
    task, lm_settings, s = config["task"], config["lm"], config["settings"]
    x_model, y_model = data_models(task)
    inp = task["input"]["name"]
    names = [o["name"] for o in task["outputs"]]

    def arrays(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([x_model(**{inp: r[inp]}) for r in rows], dtype="object")
        y = np.array([y_model(**{n: r[n] for n in names}) for r in rows], dtype="object")
        return x, y

    async def go() -> dict[str, Any]:
        synalinks.set_seed(s["seed"])
        lm = synalinks.LanguageModel(model=f"openai/{lm_settings['model']}", api_base=config["base_url"],
                                     caching=False)
        inputs = synalinks.Input(data_model=x_model)
        outputs = await synalinks.Generator(
            data_model=y_model, language_model=lm, instructions=task["instructions"],
            temperature=float(lm_settings["temperature"]), max_tokens=lm_settings["max_tokens"],
        )(inputs)
        program = synalinks.Program(inputs=inputs, outputs=outputs, name="task")
        reward = synalinks.rewards.ExactMatch(in_mask=task["reward_fields"])
        program.compile(
            reward=reward,
            optimizer=synalinks.optimizers.RandomFewShot(nb_min_examples=s["examples"],
                                                         nb_max_examples=s["examples"]),
        )
        x_test, y_test = arrays(config["test"])
        x_fit, y_fit = arrays(config["fit"])
        x_val, y_val = arrays(config["val"])

        async def predictions() -> tuple[list[dict | None], float]:
            y_pred = await program.predict(x_test, batch_size=s["concurrency"], verbose=0)
            out, total = [], 0.0
            for truth, pred in zip(y_test, y_pred):
                values = None
                if pred is not None:
                    got = pred.get_json()
                    values = {n: got.get(n) for n in names}
                    total += float(await reward(truth, pred))
                out.append(values)
            return out, total / len(out)

        phases = Phases()
        phases.start("untrained_eval")
        untrained, own_untrained = await predictions()
        phases.start("train")
        history = await program.fit(x=x_fit, y=y_fit, validation_data=(x_val, y_val), epochs=s["epochs"],
                                    batch_size=s["batch_size"], validation_batch_size=s["concurrency"], verbose=0)
        phases.start("trained_eval")
        trained, own_trained = await predictions()
        phases.stop()
        demos = {}
        for variable in program.trainable_variables:
            examples = variable.get("examples")
            if examples is not None:
                demos[variable.name] = examples
        return {
            "tool": "synalinks", "version": synalinks.__version__,
            "untrained": untrained, "trained": trained,
            "own_reward": {"untrained": own_untrained, "trained": own_trained},
            "phases": phases.seconds, "spans": phases.spans,
            "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
            "demos": demos,
        }

    return asyncio.run(go())


if __name__ == "__main__":
    main(run)
