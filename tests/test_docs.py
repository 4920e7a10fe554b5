"""The docs site builds with warnings as errors, and its command-line reference is the parser's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from icldsl.cli import reference
from icldsl.cli.arguments import build_parser
from icldsl.errors import EXIT_STATUSES

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_page_is_current_with_the_parser() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == reference.markdown(), "run: python -m icldsl.cli.reference docs/cli.md"


def test_the_cli_page_has_every_verb_flag_and_exit_status() -> None:
    page = reference.markdown()
    for verb in ("check", "fit", "eval", "fmt", "render", "run", "plan", "diff", "graph", "plot", "lsp",
                 "cache stats", "cache clear", "init", "completion"):
        assert f"## `icldsl {verb}`" in page
    assert "`--stop-after N`" in page and "`--no-cache`" in page and "`-o OUTPUT`, `--output OUTPUT`" in page
    for status, _ in EXIT_STATUSES:
        assert f"\n| {status} | " in page


def test_help_ends_with_the_exit_statuses() -> None:
    epilog = build_parser().format_help().split("exit status:")[1]
    assert [int(line.split()[0]) for line in epilog.splitlines() if line[:6].strip().isdigit()] == [
        status for status, _ in EXIT_STATUSES]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    pages = sorted(p.parent.relative_to(tmp_path / "site").as_posix()
                   for p in (tmp_path / "site").rglob("index.html"))
    sources = sorted(p.relative_to(ROOT / "docs").with_suffix("").as_posix().removesuffix("index").rstrip("/")
                     or "." for p in (ROOT / "docs").rglob("*.md"))
    assert pages == sources and len(pages) >= 20
    api = (tmp_path / "site" / "python-api" / "index.html").read_text(encoding="utf-8")
    assert "ArtifactError" in api and "verify" in api and "abatch" in api  # mkdocstrings rendered the names
