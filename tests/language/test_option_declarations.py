"""`Option` and `Signature.declare`/`resolve`: one declaration gives the checker's type and
range, the default, the doc, and the constructor's refusal in the checker's words."""

import pytest

from icldsl.language.options import URLS, AtLeast, Choice, Option, Signature, Within

SIGNATURE = Signature.declare({
    "n_ctx": Option(Within(int, 64, 131072), 2048, "context window in tokens"),
    "temperature": Option(AtLeast(float, 0), doc="sampling temperature"),
    "weights": Option(Choice(("a", "b")), "a"),
    "base_url": Option(URLS),
})


def test_declare_splits_types_defaults_and_docs():
    assert SIGNATURE.options["n_ctx"] == Within(int, 64, 131072)
    assert SIGNATURE.defaults == {"n_ctx": 2048, "weights": "a"}
    assert SIGNATURE.docs == {"n_ctx": "context window in tokens", "temperature": "sampling temperature"}


def test_resolve_fills_defaults_and_keeps_given_values():
    assert SIGNATURE.resolve({"temperature": 0.5, "n_ctx": None}) == {"n_ctx": 2048, "weights": "a", "temperature": 0.5}


@pytest.mark.parametrize("name, value, message", [
    ("n_ctx", 32, "option `n_ctx`: expected an integer from 64 to 131072, found the integer 32"),
    ("temperature", -1, "option `temperature`: expected a number of at least 0, found the integer -1"),
    ("weights", "c", 'option `weights`: expected one of "a", "b", found the string "c"'),
    ("n_ctx", 2048.5, "option `n_ctx`: expected an integer from 64 to 131072, found the number 2048.5"),
    ("n_ctx", True, "option `n_ctx`: expected an integer from 64 to 131072, found true"),
    ("base_url", [], "option `base_url`: expected a URL or a non-empty list of them"),
    ("nope", 1, "unknown option `nope`"),
])
def test_refusal_speaks_as_the_checker(name, value, message):
    assert SIGNATURE.refusal(name, value).startswith(message)
    with pytest.raises(ValueError, match="^" + message[:20]):
        SIGNATURE.resolve({name: value})


def test_values_that_fit_are_not_refused():
    for name, value in [("n_ctx", 64), ("n_ctx", 131072), ("temperature", 0), ("weights", "b"),
                        ("base_url", "http://127.0.0.1:8000/v1"), ("base_url", ["http://a/v1", "http://b/v1"])]:
        assert SIGNATURE.refusal(name, value) is None
