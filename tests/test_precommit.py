"""The pre-commit hooks (.pre-commit-hooks.yaml) run as pre-commit runs them: the entry with
the staged files that match `files` appended; they pass on the shipped programs and fail on bad ones."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOOKS = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}


def run_hook(hook_id: str, files: list[Path]) -> subprocess.CompletedProcess:
    hook = HOOKS[hook_id]
    command, *args = shlex.split(hook["entry"])
    assert command == "icldsl", "the hook runs the installed command"
    matching = [str(f) for f in files if re.search(hook["files"], str(f))]
    return subprocess.run([sys.executable, "-m", "icldsl", *args, *matching], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_hooks_are_declared_for_icl_files() -> None:
    assert set(HOOKS) == {"icldsl-check", "icldsl-fmt"}
    for hook in HOOKS.values():
        assert hook["language"] == "python" and re.search(hook["files"], "a/b.icl")
        assert not re.search(hook["files"], "README.md")


@pytest.mark.parametrize("hook_id", sorted(HOOKS))
def test_hooks_pass_on_the_shipped_programs(hook_id: str) -> None:
    result = run_hook(hook_id, sorted((ROOT / "programs").glob("*")))
    assert result.returncode == 0, result.stderr


def test_check_hook_fails_on_a_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.icl"
    bad.write_text("model A { x: strr }\n", encoding="utf-8")
    result = run_hook("icldsl-check", [bad])
    assert result.returncode == 1 and "error[undefined-name]" in result.stderr


def test_fmt_hook_fails_on_an_unformatted_file(tmp_path: Path) -> None:
    shutil.copy(ROOT / "programs" / "gsm8k.icl", tmp_path / "gsm8k.icl")
    path = tmp_path / "gsm8k.icl"
    path.write_text(path.read_text(encoding="utf-8").replace("    ", "  "), encoding="utf-8")
    result = run_hook("icldsl-fmt", [path])
    assert result.returncode == 1 and "would reformat" in result.stderr
