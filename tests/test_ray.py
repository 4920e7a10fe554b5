"""`icldsl.ray.predict` on a real local Ray instance over 1,000 rows against a loopback
server: every row gets its prediction or its error, and each worker keeps its
connections from batch to batch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
# Ray Data's own settings warn about themselves when the context is first built.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

from icldsl import artifact  # noqa: E402
from icldsl.lm.base import LMConfigError  # noqa: E402
from icldsl.ray import predict  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402
from tests.test_predict import label, write_artifact  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_a_dataset_of_1000_rows_is_predicted_by_two_workers(local_ray, tmp_path: Path) -> None:
    n = 1000
    rows = [{"name": f"n{i}", "tags": ["t"] * (i % 3), "key": i} for i in range(n)]
    rows[7] = {"name": "no tags", "tags": None, "key": 7}
    with LoopbackServer(label) as server:
        path = write_artifact(tmp_path / "t.artifact.json", [server.openai_url])
        started = time.monotonic()
        result = predict(ray.data.from_items(rows), path, concurrency=2, in_flight=4, batch_size=100).take_all()
        seconds = time.monotonic() - started
        requests = list(server.requests)
    by_key = {row["key"]: row for row in result}
    assert sorted(by_key) == list(range(n))
    for i, row in by_key.items():
        if i == 7:
            assert row["label"] is None and "input does not match" in row["error"]
        else:
            assert row["error"] is None and row["label"] == f"N{i}/{i % 3}" and row["name"] == f"n{i}"
    assert len(requests) == n - 1
    # 10 batches over 2 workers: each kept its connections (at most 4 each) from batch to batch
    assert len({r.client for r in requests}) <= 2 * 4
    print(f"ray: {n} rows in {seconds:.1f} s")  # shown with -s; docs/ray.md quotes it


def test_a_bad_artifact_or_a_column_clash_fails_at_once(local_ray, tmp_path: Path) -> None:
    path = write_artifact(tmp_path / "t.artifact.json", ["http://127.0.0.1:9/v1"])
    dataset = ray.data.from_items([{"name": "a", "tags": [], "label": "old"}])
    with pytest.raises(ValueError, match="label would replace the input's"):
        predict(dataset, path)
    predict(dataset, path, prefix="pred_")  # lazy: nothing runs
    doc = json.loads(path.read_text())
    doc["states"]["tagger/label"]["instructions"] = "changed"
    path.write_text(json.dumps(doc))
    with pytest.raises(artifact.ArtifactError, match="modified"):
        predict(dataset, path)


def test_verify_and_lms_are_those_of_load(local_ray, tmp_path: Path) -> None:
    key = "k" * 32
    dataset = ray.data.from_items([{"name": f"n{i}", "tags": []} for i in range(4)])
    with LoopbackServer(label) as server:
        path = write_artifact(tmp_path / "t.artifact.json", ["http://127.0.0.1:9/v1"])  # nothing listens there
        with pytest.raises(artifact.ArtifactError, match="is not signed"):
            predict(dataset, path, verify=key)
        artifact.write(path, artifact.sign(artifact.read(path), key.encode()))
        with pytest.raises(artifact.ArtifactError, match="not with this key"):
            predict(dataset, path, verify="x" * 32)
        with pytest.raises(LMConfigError, match="cannot override lm `nope`"):
            predict(dataset, path, verify=key, lms={"nope": {"target": "x"}})
        result = predict(dataset, path, verify=key, lms={"m": {"base_url": [server.openai_url]}}).take_all()
    assert sorted(row["label"] for row in result) == ["N0/0", "N1/0", "N2/0", "N3/0"]
    assert len(server.requests) == 4
