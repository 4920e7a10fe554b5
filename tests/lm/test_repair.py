"""The lenient reader of model answers (icldsl.lm.repair)."""

from __future__ import annotations

import json

import pytest

from icldsl.lm.repair import RepairError, read_object


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # clean JSON, including raw control characters inside strings, as before
        ('{"answer": 4, "thinking": "2+2"}', {"answer": 4, "thinking": "2+2"}),
        ('{"thinking": "line1\nline2", "answer": 3}', {"thinking": "line1\nline2", "answer": 3}),
        # markdown fences, with or without a language, closed or not
        ('```json\n{"answer": 4}\n```', {"answer": 4}),
        ('```\n{"answer": 4}\n```\nDone.', {"answer": 4}),
        ('```json\n{"answer": 4\n```', {"answer": 4}),
        # prose around the object, and a brace in the prose before it
        ('Sure! Here it is:\n{"answer": 4}\nHope this helps {:', {"answer": 4}),
        ('Use {x} notation. {"answer": 2}', {"answer": 2}),
        # trailing and missing commas
        ('{"a": [1, 2,], "b": 3,}', {"a": [1, 2], "b": 3}),
        ('{"a": "x"\n "b": 2}', {"a": "x", "b": 2}),
        # single quotes, Python literals, unquoted keys
        ("{'thinking': 'It\\'s easy', 'ok': True, 'none': None, 'no': False}",
         {"thinking": "It's easy", "ok": True, "none": None, "no": False}),
        ('{thinking: "easy", answer: 4.5}', {"thinking": "easy", "answer": 4.5}),
        # quotes inside a string that were not escaped
        ('{"thinking": "He said "hi" to me", "answer": 3}', {"thinking": 'He said "hi" to me', "answer": 3}),
        # comments, escapes, numbers JSON does not allow
        ('{"a": 1, // one\n "b": 2 /* two */}', {"a": 1, "b": 2}),
        ('{"a": "\\u00e9\\ud83d\\ude00\\n"}', {"a": "é😀\n"}),
        ('{"a": -.5e3, "b": +3, "c": 1.}', {"a": -500.0, "b": 3, "c": 1.0}),
        # words where a value should be stay words, for validation to judge
        ('{"answer": 3 apples}', {"answer": "3 apples"}),
        # only the first object counts
        ('{"a": 1} and then {"b": 2}', {"a": 1}),
    ],
)
def test_what_models_emit_is_read(text: str, expected: dict) -> None:
    assert read_object(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cut inside a string: the string is closed
        ('{"thinking": "Janet has 16 eggs. She eats 3', {"thinking": "Janet has 16 eggs. She eats 3"}),
        # cut inside an array or a nested object: both are closed
        ('{"steps": ["a", "b"], "inner": {"x": "y', {"steps": ["a", "b"], "inner": {"x": "y"}}),
        # cut after a key, or after its colon: the member is dropped
        ('{"thinking": "t", "answer"', {"thinking": "t"}),
        ('{"thinking": "t", "answer":', {"thinking": "t"}),
        ('{"thinking": "t", "ans', {"thinking": "t"}),
        # cut inside a number or a word: it may be short, so it is dropped, not read wrong
        ('{"thinking": "t", "answer": 12', {"thinking": "t"}),
        ('{"ok": tr', {}),
        ('{"xs": [1, 2', {"xs": [1]}),
        # a number followed by a newline was complete
        ('{"thinking": "t", "answer": 125\n', {"thinking": "t", "answer": 125}),
        # cut in an escape
        ('{"a": "x\\', {"a": "x"}),
    ],
)
def test_truncated_objects_are_closed(text: str, expected: dict) -> None:
    assert read_object(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "[1, 2]", "42", "{:}", "{[}"])
def test_text_without_an_object_is_refused_with_an_excerpt(text: str) -> None:
    with pytest.raises(RepairError, match="no JSON object"):
        read_object(text)


def test_the_error_excerpt_is_bounded() -> None:
    with pytest.raises(RepairError) as info:
        read_object("x" * 5000)
    assert len(str(info.value)) < 300


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(RepairError):
        read_object("{'a': " * 2000)


def test_clean_json_reads_exactly_as_json_does() -> None:
    value = {"s": 'quote " and \\ backslash', "n": [1, 2.5, -3e-2], "b": [True, False, None], "o": {"k": {}}}
    assert read_object(json.dumps(value)) == value


def test_an_answer_nested_past_pythons_limit_is_refused_not_a_recursion_error() -> None:
    for text in ("[" * 5000, '{"a": ' * 5000 + "1" + "}" * 5000):
        with pytest.raises(RepairError):
            read_object(text)
