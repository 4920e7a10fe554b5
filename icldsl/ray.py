"""Predicting over a Ray Dataset, for data and workers spread over a cluster
(`pip install "icldsl[ray]"`):

    predictions = icldsl.ray.predict(dataset, "model.artifact.json", concurrency=4)

The artifact is read and verified once on the driver and its content shipped to the
workers, so they need no shared file system. Each worker (a Ray actor of the callable
class `Predictor`) builds the program once and keeps its LM clients, and their
connections, open from batch to batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import ray.data

from . import artifact


class Predictor:
    """One worker's program: called on each batch (an Arrow table of input rows), it adds
    a column per output field (`prefix` + name; null where the row failed) and
    `prefix + "error"` (null where it predicted). `in_flight` rows of a batch run at once."""

    def __init__(self, doc: Mapping[str, Any], *, in_flight: int, prefix: str,
                 lms: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.program = artifact.program_from(doc, lms=lms)
        self.fields = [f.name for f in next(m for m in self.program.spec.models
                                            if m.name == self.program.spec.output_model).fields]
        self.in_flight, self.prefix = in_flight, prefix
        self.runner = asyncio.Runner()  # one loop for the worker's life: its connections stay open

    def __call__(self, batch: pa.Table) -> pa.Table:
        predictions = self.runner.run(self.program.abatch(batch.to_pylist(), concurrency=self.in_flight))
        outputs = [p.output or {} for p in predictions]
        for name in self.fields:
            batch = batch.append_column(self.prefix + name, pa.array([o.get(name) for o in outputs]))
        return batch.append_column(self.prefix + "error", pa.array([p.error for p in predictions], pa.string()))


def predict(dataset: ray.data.Dataset, artifact_path: str | Path, *, concurrency: int = 1, in_flight: int = 8,
            batch_size: int = 256, prefix: str = "", verify: bool | str | bytes = False,
            lms: Mapping[str, Mapping[str, Any]] | None = None, **map_batches_options: Any) -> ray.data.Dataset:
    """The rows of `dataset` with the program's predictions: a column per output field and
    `error`, as `Predictor` adds them (lazily, as Ray Datasets are).

    `concurrency` is how many workers (actors) Ray runs, `in_flight` how many rows each
    keeps in flight, so an LM gets up to `concurrency` x `in_flight` calls at once.
    `verify` and `lms` are `icldsl.load`'s: the signature is checked here, on the driver
    (True: with the key in its $ICLDSL_SIGNING_KEY), and the LM settings replaced on every
    worker (a key's `{"env": NAME}` is read in the worker's environment). Other keyword
    arguments go to `Dataset.map_batches` (`num_cpus`, ...). An artifact that does not
    verify raises ArtifactError here, an `lms` it cannot take LMConfigError, and an
    output column that would replace an input column ValueError (choose a `prefix`).
    """
    doc = artifact.read_verified(artifact_path, verify)
    spec = artifact.program_from(doc, lms=lms, path=artifact_path).spec
    output = next(m for m in spec.models if m.name == spec.output_model)
    added = [prefix + f.name for f in output.fields] + [prefix + "error"]
    clash = sorted(set(added) & set(dataset.schema().names)) if dataset.schema() is not None else []
    if clash:
        raise ValueError(
            f"the predictions' column{'s' if len(clash) > 1 else ''} {', '.join(clash)} would replace the input's; "
            "pass prefix=\"pred_\" (or another) to predict()")
    return dataset.map_batches(Predictor, fn_constructor_kwargs={"doc": doc, "in_flight": in_flight,
                                                                 "prefix": prefix, "lms": lms},
                               compute=ray.data.ActorPoolStrategy(size=concurrency), batch_size=batch_size,
                               batch_format="pyarrow",
                               **map_batches_options)
