"""Input spec parsing: good batches, and every kind of bad input with a message naming line and field."""

from __future__ import annotations

import json

import pytest

from service.spec import MAX_JSON_DEPTH, MAX_LINE_BYTES, SpecError, parse_array, parse_jsonl


def line(obj) -> str:
    return json.dumps(obj)


ARTICLE = {"kind": "article", "input": {"topic": "tea"}}
PRODUCT = {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red", "ml": 350, "ok": True}}}
CODE = {"kind": "code", "input": {"prompt": "def f(x): ...", "tests": ["assert f(1) == 2"]}, "key": "c1"}


def problems(data, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_jsonl(data, **kw) if isinstance(data, (str, bytes)) else parse_array(data)
    return [str(p) for p in info.value.problems]


def test_parses_every_kind_with_defaults():
    parsed = parse_jsonl("\n".join(line(o) for o in (ARTICLE, PRODUCT, CODE)) + "\n\n")
    kinds = [j.kind for j in parsed.jobs]
    assert kinds == ["article", "product", "code"]
    assert parsed.jobs[0].input == {"topic": "tea", "audience": "general readers", "sections": 4}
    assert parsed.jobs[1].input["attributes"] == {"colour": "red", "ml": 350, "ok": True}
    assert parsed.jobs[2].key == "c1" and parsed.jobs[2].line_no == 3
    assert parsed.jobs[2].input["tests"] == ["assert f(1) == 2"]


def test_content_hash_ignores_formatting_but_not_content():
    a = parse_jsonl(line(ARTICLE))
    b = parse_jsonl(json.dumps(ARTICLE, indent=None, separators=(" ,", " : ")) + "\n")
    c = parse_jsonl(line({**ARTICLE, "input": {"topic": "coffee"}}))
    assert a.content_sha256 == b.content_sha256 != c.content_sha256


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"kind": "poem", "input": {}}, "line 1: kind: input should be 'article', 'product' or 'code', got 'poem'"),
        ({"input": {"topic": "x"}}, "line 1: kind: required field is missing"),
        ({"kind": "article"}, "line 1: input: required field is missing"),
        ({"kind": "article", "input": {"topic": ""}}, "line 1: input.topic: string should have at least 1 character"),
        ({"kind": "article", "input": {"topic": "x", "colour": 1}}, "line 1: input.colour: unknown field"),
        ({"kind": "article", "input": {"topic": "x", "sections": 9}}, "line 1: input.sections: expected a number of sections (2 to 6)"),
        ({"kind": "article", "input": {"topic": "x", "sections": True}}, "line 1: input.sections: expected a number"),
        ({"kind": "article", "input": {"topic": "x", "sections": ["A", "a"]}}, "line 1: input.sections: expected"),
        ({"kind": "product", "input": {"name": "M", "attributes": {}}}, "line 1: input.attributes: dictionary should have at least 1 item"),
        ({"kind": "product", "input": {"name": "M", "attributes": {"a": [1]}}}, "line 1: input.attributes.a:"),
        ({"kind": "code", "input": {"prompt": 5}}, "line 1: input.prompt: input should be a valid string, got 5"),
        ({"kind": "code", "input": {"prompt": "x", "tests": "assert 1"}}, "line 1: input.tests: input should be a valid list"),
        ({**ARTICLE, "params": {"mode": "fast"}}, "line 1: params.mode: input should be 'hybrid', 'ar' or 'plain', got 'fast'"),
        ({**ARTICLE, "params": {"max_new_tokens": 0}}, "line 1: params.max_new_tokens: input should be greater than or equal to 1"),
        ({**ARTICLE, "key": ""}, "line 1: key: string should have at least 1 character"),
        ({**ARTICLE, "extra": 1}, "line 1: extra: unknown field"),
        ([1, 2], "line 1: expected a JSON object, got an array"),
        ("text", "line 1: expected a JSON object, got a string"),
    ],
)
def test_bad_job_names_line_field_and_expectation(obj, expected):
    found = problems(line(obj))
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_of_a_file_are_reported_together():
    data = "\n".join([
        line(ARTICLE),
        "{not json",
        line({"kind": "poem", "input": {}}),
        line({"kind": "code", "input": {"prompt": 5}, "params": {"mode": "x"}}),
    ])
    found = problems(data)
    assert [p.split(":")[0] for p in found] == ["line 2", "line 3", "line 4", "line 4"]
    assert "invalid JSON at column 2" in found[0]


def test_non_utf8_line_is_named():
    bad = b'{"kind": "article", "input": {"topic": "t\xff"}}'
    found = problems(line(ARTICLE).encode() + b"\n" + bad + b"\n")
    at = bad.index(b"\xff")
    assert found == [f"line 2: not valid UTF-8 (byte {at}: b'\\xff')"]


def test_duplicate_key_in_one_file_names_both_lines():
    data = "\n".join([line({**ARTICLE, "key": "k"}), line(PRODUCT), line({**CODE, "key": "k"})])
    assert problems(data) == ["line 3: key: key 'k' already used on line 1"]


def test_deeply_nested_json_is_rejected_without_recursing():
    deep = '{"kind": "article", "input": {"topic": "x", "sections": ' + "[" * 5000 + "]" * 5000 + "}}"
    assert problems(deep) == [f"line 1: JSON nested deeper than {MAX_JSON_DEPTH} levels"]


def test_huge_line_is_rejected():
    huge = line({"kind": "article", "input": {"topic": "x" * (MAX_LINE_BYTES + 10)}})
    found = problems(huge)
    assert len(found) == 1 and "at most" in found[0] and found[0].startswith("line 1")


def test_huge_field_is_rejected_with_its_limit():
    found = problems(line({"kind": "article", "input": {"topic": "x" * 1000}}))
    assert len(found) == 1
    assert found[0].startswith("line 1: input.topic: string should have at most 300 characters, got 'xxx")
    assert found[0].endswith("...")  # the offending value is shown shortened, not echoed whole


@pytest.mark.parametrize("data", ["", "\n\n  \n", b""])
def test_empty_input_is_an_error(data):
    assert problems(data) == ["input: no jobs: the input is empty"]


def test_array_input_numbers_elements_like_lines():
    parsed = parse_array([ARTICLE, PRODUCT])
    assert [j.line_no for j in parsed.jobs] == [1, 2]
    assert problems([ARTICLE, {"kind": "code", "input": {}}]) == ["line 2: input.prompt: required field is missing"]
    assert problems({"kind": "article"}) == ["input: expected a JSON array of jobs, got an object"]


def test_spec_error_message_says_nothing_was_stored():
    with pytest.raises(SpecError) as info:
        parse_jsonl("nope", source="jobs.jsonl")
    assert str(info.value).startswith("jobs.jsonl: 1 problem, nothing was stored:")
