"""The language server shows each option as declared (`icldsl.language.catalogue`): its type with
its range, its default and its doc, on hover and in completions."""

from __future__ import annotations

from icldsl.language.catalogue.lms import PROVIDERS
from icldsl.language.catalogue.loaders import LOADERS
from icldsl.language.parser import parse
from icldsl.language.source import Source
from icldsl.lsp.completion import complete
from icldsl.lsp.symbols import Index, hover

TEXT = """model Q { question: str }
model A { answer: float }
lm m = "local/smollm2-135m" { n_ctx: 2048 }
program p { input q: Q  a = generate A from q using m  output a }
data d = jsonl("rows.jsonl", split: 0.5)
"""


def index() -> Index:
    source = Source("o.icl", TEXT)
    return Index(parse(source), source)


def test_hover_on_an_option_gives_its_declaration() -> None:
    found = index()
    n_ctx = found.at(TEXT.index("n_ctx") + 1)
    doc = PROVIDERS["local"].signature.docs["n_ctx"]
    assert hover(n_ctx.symbol, found) == \
        f"option `n_ctx` of lm `m`: an integer from 64 to 131072; default `4096`\n\n{doc}"
    split = hover(found.at(TEXT.index("split") + 1).symbol, found)
    assert split.startswith("option `split` of loader `jsonl`: a number above 0 and at most 1; default `0.8`\n\n")
    assert LOADERS["jsonl"].signature.docs["split"] in split


def test_hover_on_an_lm_lists_its_options_with_defaults_and_docs() -> None:
    found = index()
    text = hover(found.at(TEXT.index("lm m") + 3).symbol, found)
    signature = PROVIDERS["local"].signature
    assert f"- `n_parallel`: an integer of at least 1, default `8`: {signature.docs['n_parallel']}" in text
    assert f"- `temperature`: a number from 0 to 2: {signature.docs['temperature']}" in text


def test_completions_of_options_carry_type_default_and_doc() -> None:
    text = TEXT.replace("{ n_ctx: 2048 }", "{ n_ctx: 2048, ")
    at = text.index("n_ctx: 2048, ") + len("n_ctx: 2048, ")
    found = {c.label: c.detail for c in complete(text, at, index()) if c.kind == "option"}
    assert found["weights"] == 'one of "file", "q4_0", default `\'file\'`: ' + \
        PROVIDERS["local"].signature.docs["weights"]
    assert found.keys() == set(PROVIDERS["local"].signature.options)
