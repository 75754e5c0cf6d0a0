"""Hypothesis strategies for hostile submissions, shared by the spec, CLI and HTTP API tests.

- `bad_batches()`: a JSONL body (bytes) of good lines with 1-3 corrupted ones, and for each
  corrupted line the field and the phrase its error must name (`BadBatch.expected`).
- `bad_jobs()`: one job as a Python value (for JSON-array bodies), with the field/phrase expected.
- `any_bytes()`, `json_lines()`: unstructured fuzz; whatever comes in, the answer is a SpecError
  (or a valid batch), never a crash.

Expectations are (field, phrase): `field` is the SpecProblem field exactly ("" for line-level
problems such as invalid JSON), `phrase` a substring of its message.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from service.spec import MAX_JSON_DEPTH, MAX_LINE_BYTES

GOOD_JOBS: list[dict[str, Any]] = [
    {"kind": "article", "input": {"topic": "tea", "sections": 3}},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red", "ml": 350}}},
    {"kind": "code", "input": {"prompt": "def f(x): ...", "tests": ["assert f(1) == 2"]}, "params": {"mode": "ar"}},
]
REQUIRED = {"article": ["topic"], "product": ["name", "attributes"], "code": ["prompt"]}
KNOWN_TOP = {"kind", "input", "key", "params"}
KNOWN_INPUT = {"topic", "audience", "sections", "name", "attributes", "prompt", "tests", "test_setup"}
# Bytes that are never valid UTF-8 next to ASCII: stray continuation / invalid lead bytes, a
# truncated 2-byte sequence, an encoded surrogate, a truncated 4-byte sequence.
NON_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xa0\xa1", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c\xbc"]


@dataclass
class BadJob:
    value: Any
    """The job as a Python value (what json.loads would give), or raw bytes for byte-level faults."""
    field: str
    phrase: str


@dataclass
class BadBatch:
    data: bytes
    expected: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Physical line number (1-based) -> (field, phrase) its error must name."""
    n_lines: int = 0


def good_job(i: int) -> dict[str, Any]:
    job = json.loads(json.dumps(GOOD_JOBS[i % len(GOOD_JOBS)]))
    job["key"] = f"good-{i}"
    return job


# -- wrong values per field: (field path, values that must be rejected, phrase) -------------------
_NOT_STRING = st.one_of(st.integers(), st.booleans(), st.none(), st.just([]), st.just({"a": 1}),
                        st.floats(allow_nan=False, allow_infinity=False))
_BLANK = st.sampled_from(["", " ", "\t  "])
WRONG_VALUES: list[tuple[str, int, st.SearchStrategy]] = [
    # (field path, index of a GOOD_JOBS template that has it, bad values)
    ("kind", 0, st.one_of(_NOT_STRING, st.sampled_from(["poem", "Article", "", "code "]))),
    ("input", 0, st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3), st.none())),
    ("input.topic", 0, st.one_of(_NOT_STRING, _BLANK)),
    ("input.sections", 0, st.one_of(st.integers().filter(lambda n: not 2 <= n <= 6), st.booleans(),
                                    st.text(max_size=5), st.just(["only one"]), st.just(["a", "A"]),
                                    st.just([1, 2]), st.none())),
    ("input.name", 1, st.one_of(_NOT_STRING, _BLANK)),
    ("input.attributes", 1, st.one_of(st.just({}), st.lists(st.text(max_size=3), max_size=3), st.integers(),
                                      st.text(max_size=5), st.none())),
    ("input.prompt", 2, st.one_of(_NOT_STRING, _BLANK)),
    ("input.tests", 2, st.one_of(st.text(max_size=5), st.integers(), st.just({"t": "x"}), st.just([5]),
                                 st.just([""]))),
    ("params", 2, st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))),
    ("params.mode", 2, st.one_of(st.sampled_from(["fast", "AR", "", "diffusion"]), st.integers(), st.just([]))),
    ("params.max_new_tokens", 2, st.one_of(st.integers(max_value=0), st.integers(min_value=4097),
                                          st.sampled_from(["many", "", [1], {"n": 1}]))),
    ("params.temperature", 2, st.one_of(st.floats(max_value=-0.001, allow_infinity=False),
                                       st.floats(min_value=5.001, allow_infinity=False),
                                       st.sampled_from(["hot", [], {}]))),
    ("params.seed", 2, st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31), st.just("x"))),
    ("key", 0, st.one_of(st.integers(), st.booleans(), st.just([]), _BLANK, st.just("k" * 201))),
]


def _set_path(job: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = job
    for p in parents:
        target = target[p]
    target[last] = value


@st.composite
def wrong_type(draw, i: int = 0) -> BadJob:
    path, template, values = draw(st.sampled_from(WRONG_VALUES))
    job = good_job(template)
    job["key"] = f"bad-{i}"
    value = draw(values)
    _set_path(job, path, value)
    # Where the value sits inside a list, pydantic names the element (input.tests.0).
    field_name = path + (".0" if path == "input.tests" and isinstance(value, list) and value else "")
    return BadJob(job, field_name, "")


@st.composite
def huge_field(draw, i: int = 0) -> BadJob:
    """A field past its limit (values stay under the line limit, so the field is what is named)."""
    which = draw(st.sampled_from(["topic", "prompt", "attribute", "tests"]))
    size = draw(st.integers(min_value=1, max_value=40_000))
    if which == "topic":
        job = {"kind": "article", "input": {"topic": "t" * (300 + size)}}
        return BadJob(job, "input.topic", "at most 300 characters")
    if which == "prompt":
        job = {"kind": "code", "input": {"prompt": "p" * (10_000 + size)}}
        return BadJob(job, "input.prompt", "at most 10000 characters")
    if which == "attribute":
        job = {"kind": "product", "input": {"name": "n", "attributes": {"a": "v" * (1000 + size)}}}
        return BadJob(job, "input.attributes.a", "at most 1000 characters")
    job = {"kind": "code", "input": {"prompt": "p", "tests": ["assert True"] * (51 + size % 200)}}
    return BadJob(job, "input.tests", "at most 50 items")


@st.composite
def unknown_field(draw, i: int = 0) -> BadJob:
    name = draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
        lambda n: n not in KNOWN_TOP | KNOWN_INPUT))
    job = good_job(draw(st.integers(0, 2)))
    job["key"] = f"bad-{i}"
    if draw(st.booleans()):
        job[name] = draw(st.integers())
        return BadJob(job, name, "unknown field")
    job["input"][name] = "x"
    return BadJob(job, f"input.{name}", "unknown field")


@st.composite
def missing_field(draw, i: int = 0) -> BadJob:
    template = draw(st.integers(0, 2))
    job = good_job(template)
    job["key"] = f"bad-{i}"
    where = draw(st.sampled_from(["kind", "input"] + [f"input.{f}" for f in REQUIRED[job["kind"]]]))
    if where.startswith("input."):
        del job["input"][where.split(".", 1)[1]]
    else:
        del job[where]
    return BadJob(job, where, "required field is missing")


@st.composite
def deep_nesting(draw, i: int = 0, as_value: bool = False) -> BadJob:
    """Nesting past MAX_JSON_DEPTH. As bytes it goes far deeper than Python's recursion limit (the
    parser must refuse it before recursing); as a value it stays within what json.dumps can write."""
    depth = draw(st.integers(min_value=MAX_JSON_DEPTH + 1, max_value=400 if as_value else 5_000))
    use_lists = draw(st.booleans())
    phrase = f"nested deeper than {MAX_JSON_DEPTH} levels"
    if as_value:
        nested: Any = 1
        for _ in range(depth):  # iterative: building it must not recurse either
            nested = [nested] if use_lists else {"a": nested}
        return BadJob({"kind": "article", "input": {"topic": "deep", "sections": nested}}, "", phrase)
    opener, closer = ("[", "]") if use_lists else ('{"a":', "}")
    nested_text = opener * depth + "1" + closer * depth
    raw = ('{"kind": "article", "input": {"topic": "deep", "sections": ' + nested_text + "}}").encode()
    return BadJob(raw, "", phrase)


@st.composite
def not_an_object(draw, i: int = 0) -> BadJob:
    value = draw(st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3), st.none(),
                           st.booleans()))
    return BadJob(value, "", "expected a JSON object")


@st.composite
def unstorable_value(draw, i: int = 0) -> BadJob:
    """Schema-valid values no database stores: NUL characters, NaN and infinities (as values)."""
    where = draw(st.sampled_from(["topic", "name", "prompt", "attribute-key", "attribute-nan"]))
    nul = draw(st.text(max_size=3)) + "\x00" + draw(st.text(max_size=3))
    if where == "topic":
        return BadJob({"kind": "article", "input": {"topic": "t" + nul}}, "input.topic", "NUL characters")
    if where == "name":
        return BadJob({"kind": "product", "input": {"name": "n" + nul, "attributes": {"a": 1}}}, "input.name",
                      "NUL characters")
    if where == "prompt":
        return BadJob({"kind": "code", "input": {"prompt": "p" + nul}}, "input.prompt", "NUL characters")
    if where == "attribute-key":
        return BadJob({"kind": "product", "input": {"name": "n", "attributes": {"k" + nul: 1}}}, "input.attributes",
                      "NUL characters")
    value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    return BadJob({"kind": "product", "input": {"name": "n", "attributes": {"a": value}}}, "input.attributes.a",
                  "finite number")


JOB_FAULTS = [wrong_type, huge_field, unknown_field, missing_field, deep_nesting, not_an_object, unstorable_value]


def bad_jobs() -> st.SearchStrategy[BadJob]:
    """One bad job as a Python value, for JSON-array bodies (`parse_array`, the HTTP API)."""
    return st.one_of(*(f() for f in JOB_FAULTS if f is not deep_nesting), deep_nesting(as_value=True))


# -- byte-level faults (only meaningful for JSONL) -------------------------------------------------
@st.composite
def invalid_json(draw, i: int = 0) -> BadJob:
    text = json.dumps(good_job(i))
    how = draw(st.sampled_from(["truncate", "trailing", "bare", "single-quotes"]))
    if how == "truncate":  # any proper prefix of an object is invalid JSON
        cut = draw(st.integers(min_value=1, max_value=len(text) - 1))
        raw = text[:cut].rstrip() or "{"
    elif how == "trailing":
        raw = text + " " + draw(st.sampled_from(["x", "}", "{}", ",", "]"]))
    elif how == "bare":
        raw = draw(st.sampled_from(["nope", "{kind: article}", "{'kind': 'article'}", "[1,", "{", "}"]))
    else:
        raw = text.replace('"', "'")
    return BadJob(raw.encode(), "", "invalid JSON")


@st.composite
def non_utf8(draw, i: int = 0) -> BadJob:
    raw = json.dumps(good_job(i)).encode()
    at = draw(st.integers(min_value=0, max_value=len(raw)))
    bad = draw(st.sampled_from(NON_UTF8))
    return BadJob(raw[:at] + bad + raw[at:], "", "not valid UTF-8")


@st.composite
def over_long_line(draw, i: int = 0) -> BadJob:
    extra = draw(st.integers(min_value=1, max_value=64 * 1024))
    raw = json.dumps({"kind": "article", "input": {"topic": "x" * (MAX_LINE_BYTES + extra)}}).encode()
    return BadJob(raw, "", f"at most {MAX_LINE_BYTES} allowed")


@st.composite
def bad_number(draw, i: int = 0) -> BadJob:
    """Number tokens Python's json reads but no database stores, or that it cannot read sanely."""
    token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-2E+999", "9" * 60, "-" + "1" * 5000]))
    raw = '{"kind": "product", "input": {"name": "n", "attributes": {"a": ' + token + "}}}"
    return BadJob(raw.encode(), "", "invalid JSON")


LINE_FAULTS = JOB_FAULTS + [invalid_json, non_utf8, over_long_line, bad_number]


def encode_line(job: BadJob) -> tuple[bytes, tuple[str, str]]:
    """The job as one JSONL line, and what its error must name as a line."""
    if isinstance(job.value, bytes):
        return job.value, (job.field, job.phrase)
    try:
        return json.dumps(job.value, ensure_ascii=False, allow_nan=False).encode(), (job.field, job.phrase)
    except ValueError:  # NaN / infinity: written as Python's json writes them, refused as tokens
        return json.dumps(job.value, ensure_ascii=False).encode(), ("", "invalid JSON")


@st.composite
def bad_batches(draw, max_good: int = 4, max_bad: int = 3, faults=None) -> BadBatch:
    """Good lines, blank lines and 1..max_bad bad ones, shuffled; the bad lines' numbers are known."""
    faults = faults or LINE_FAULTS
    n_good = draw(st.integers(0, max_good))
    n_bad = draw(st.integers(1, max_bad))
    lines: list[tuple[bytes, tuple[str, str] | None]] = [
        (json.dumps(good_job(i)).encode(), None) for i in range(n_good)
    ]
    for b in range(n_bad):
        fault = draw(st.sampled_from(faults))
        job = draw(fault(n_good + b))
        lines.append(encode_line(job))
    order = draw(st.permutations(range(len(lines))))
    out: list[bytes] = []
    expected: dict[int, tuple[str, str]] = {}
    for idx in order:
        if draw(st.booleans()) and draw(st.booleans()):  # sometimes a blank line before it
            out.append(draw(st.sampled_from([b"", b"   ", b"\t"])))
        raw, expect = lines[idx]
        out.append(raw)
        if expect is not None:
            expected[len(out)] = expect
    if b"\n".join(out).lstrip(b" \t\r\n").startswith(b"["):
        # a file that starts with "[" is a JSON array of jobs, not JSONL (README): lead with a good job
        out.insert(0, json.dumps(good_job(n_good + n_bad)).encode())
        expected = {n + 1: e for n, e in expected.items()}
    return BadBatch(b"\n".join(out) + draw(st.sampled_from([b"", b"\n"])), expected, len(out))


# -- unstructured fuzz ------------------------------------------------------------------------------
def any_bytes() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=2_000)


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(sorted(KNOWN_TOP | KNOWN_INPUT)) | st.text(max_size=6),
                                                 inner, max_size=5)), max_leaves=25)


def json_lines() -> st.SearchStrategy[bytes]:
    """Lines of arbitrary JSON values, sometimes shaped almost like jobs."""
    almost = st.fixed_dictionaries({"kind": st.sampled_from(["article", "product", "code", "x"]), "input": json_values},
                                   optional={"key": json_values, "params": json_values})
    line = st.one_of(json_values, almost).map(lambda v: json.dumps(v).encode())
    return st.lists(line, min_size=1, max_size=6).map(b"\n".join)
