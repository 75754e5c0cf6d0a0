"""Input spec: one job per JSONL line (or per element of a JSON array).

    {"kind": "article"|"product"|"code", "input": {...}, "key": "optional client key", "params": {...}}

Every problem is reported with the line, the field and what was expected; parsing collects all
problems of a file (up to MAX_REPORTED_ERRORS) so a user fixes them in one go. A batch is either
valid as a whole or rejected as a whole: nothing is stored from a file with any error.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterable, Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from service.modes import MODES

MAX_LINE_BYTES = 256 * 1024
MAX_JOBS = 100_000
MAX_REPORTED_ERRORS = 50
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 50

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
AttrValue = Union[Annotated[str, StringConstraints(max_length=1000)], int, float, bool]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ArticleInput(_Strict):
    topic: ShortText
    audience: ShortText = "general readers"
    sections: int | list[str] = Field(
        default=4, description="number of sections (2-6) or the section headings to use"
    )

    @field_validator("sections", mode="before")
    @classmethod
    def _sections_shape(cls, v: Any) -> int | list[str]:
        expected = "expected a number of sections (2 to 6) or a list of 2 to 6 distinct headings"
        if isinstance(v, int) and not isinstance(v, bool):
            if not 2 <= v <= 6:
                raise ValueError(expected)
            return v
        if isinstance(v, list):
            if not all(isinstance(h, str) and h.strip() and len(h) <= 300 for h in v):
                raise ValueError(expected + " (each heading a non-empty string of at most 300 characters)")
            headings = [h.strip() for h in v]
            if not 2 <= len(headings) <= 6 or len({h.lower() for h in headings}) != len(headings):
                raise ValueError(expected)
            return headings
        raise ValueError(expected)


class ProductInput(_Strict):
    name: ShortText
    attributes: dict[Annotated[str, StringConstraints(min_length=1, max_length=100)], AttrValue] = Field(
        min_length=1, max_length=30
    )


class CodeInput(_Strict):
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
    tests: list[Annotated[str, StringConstraints(min_length=1, max_length=5_000)]] = Field(
        default_factory=list, max_length=50
    )
    test_setup: Annotated[str, StringConstraints(max_length=5_000)] = ""


INPUT_MODELS: dict[str, type[_Strict]] = {
    "article": ArticleInput,
    "product": ProductInput,
    "code": CodeInput,
}
KINDS = tuple(INPUT_MODELS)


class JobParams(_Strict):
    """Per-job overrides of the batch / settings defaults."""

    mode: Literal[MODES] | None = None  # type: ignore[valid-type]  # the one list (service/modes.py)
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class JobLine(_Strict):
    kind: Literal["article", "product", "code"]
    input: dict[str, Any]
    key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    params: JobParams = Field(default_factory=JobParams)


@dataclass(frozen=True)
class Job:
    line_no: int
    kind: str
    input: dict[str, Any]
    key: str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class SpecProblem:
    line_no: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line_no}" if self.line_no else "input"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SpecError(ValueError):
    """The submission has problems; nothing from it was stored."""

    def __init__(self, problems: list[SpecProblem], source: str = ""):
        self.problems = problems
        self.source = source
        shown = "\n".join(f"  {p}" for p in problems[:MAX_REPORTED_ERRORS])
        more = len(problems) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        head = f"{source}: " if source else ""
        count = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
        super().__init__(f"{head}{count}, nothing was stored:\n{shown}{tail}")

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{"line": p.line_no, "field": p.field, "message": p.message} for p in self.problems]


@dataclass
class ParsedBatch:
    jobs: list[Job]
    content_sha256: str
    problems: list[SpecProblem] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
def parse_jsonl(data: bytes | str, source: str = "") -> ParsedBatch:
    """Parse a JSONL submission. Raises SpecError listing every problem found."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    problems: list[SpecProblem] = []
    objects: list[tuple[int, Any]] = []
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            problems.append(SpecProblem(line_no, "", f"line is {len(line)} bytes; at most {MAX_LINE_BYTES} allowed"))
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(SpecProblem(line_no, "", f"not valid UTF-8 (byte {e.start}: {line[e.start:e.start+1]!r})"))
            continue
        obj, problem = _loads(text, line_no)
        if problem:
            problems.append(problem)
        else:
            objects.append((line_no, obj))
        if len(objects) > MAX_JOBS:
            problems.append(SpecProblem(line_no, "", f"more than {MAX_JOBS} jobs in one batch"))
            break
    if not objects and not problems:
        problems.append(SpecProblem(0, "", "no jobs: the input is empty"))
    return _validate_all(objects, problems, source)


def parse_array(items: Any, source: str = "") -> ParsedBatch:
    """Parse a JSON array of job objects (HTTP API). Element i is reported as line i+1."""
    if not isinstance(items, list):
        raise SpecError([SpecProblem(0, "", f"expected a JSON array of jobs, got {_type_name(items)}")], source)
    if not items:
        raise SpecError([SpecProblem(0, "", "no jobs: the array is empty")], source)
    if len(items) > MAX_JOBS:
        raise SpecError([SpecProblem(0, "", f"more than {MAX_JOBS} jobs in one batch")], source)
    problems = []
    for i, obj in enumerate(items, start=1):
        depth_problem = _depth_problem(obj, i)
        if depth_problem:
            problems.append(depth_problem)
    return _validate_all(list(enumerate(items, start=1)), problems, source)


def parse_submission(data: bytes, source: str = "", fmt: str = "auto") -> ParsedBatch:
    """A request body: JSONL (`fmt="jsonl"`), a JSON array of jobs (`"json"`), or either (`"auto"`:
    an array when the body starts with `[`)."""
    if fmt not in ("auto", "jsonl", "json"):
        raise ValueError(f"fmt must be auto, jsonl or json, got {fmt!r}")
    head = data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if fmt == "jsonl" or (fmt == "auto" and head != b"["):
        return parse_jsonl(data, source)
    if head != b"[":
        raise SpecError([SpecProblem(0, "", "expected a JSON array of jobs (send JSONL as application/x-ndjson)")],
                        source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError([SpecProblem(0, "", f"not valid UTF-8 (byte {e.start}: {data[e.start:e.start+1]!r})")],
                        source) from None
    # Refuse too-deep elements before json.loads recurses into them, naming each one.
    deep = _too_deep_elements(text)
    if deep:
        raise SpecError([SpecProblem(n, "", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") for n in deep],
                        source)
    try:
        items = loads_strict(text)
    except json.JSONDecodeError as e:
        raise SpecError([SpecProblem(0, "", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")],
                        source) from None
    except ValueError as e:  # a number loads_strict refuses
        raise SpecError([SpecProblem(0, "", f"invalid JSON: {e}")], source) from None
    except RecursionError:
        raise SpecError([SpecProblem(0, "", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")], source) from None
    return parse_array(items, source)


def _validate_all(objects: Iterable[tuple[int, Any]], problems: list[SpecProblem], source: str) -> ParsedBatch:
    jobs: list[Job] = []
    key_lines: dict[str, int] = {}
    for line_no, obj in objects:
        job, job_problems = validate_job(obj, line_no)
        problems.extend(job_problems)
        key = obj.get("key") if isinstance(obj, dict) else None
        if isinstance(key, str) and key.strip():
            key = key.strip()
            if key in key_lines:
                problems.append(SpecProblem(line_no, "key", f"key {key!r} already used on line {key_lines[key]}"))
                continue
            key_lines[key] = line_no
        if job is not None:
            jobs.append(job)
    if problems:
        problems.sort(key=lambda p: p.line_no)
        raise SpecError(problems, source)
    return ParsedBatch(jobs=jobs, content_sha256=content_hash(jobs))


def validate_job(obj: Any, line_no: int) -> tuple[Job | None, list[SpecProblem]]:
    if not isinstance(obj, dict):
        return None, [SpecProblem(line_no, "", f"expected a JSON object, got {_type_name(obj)}")]
    problems: list[SpecProblem] = _unstorable_values(obj, line_no)
    line = model = None
    try:
        line = JobLine.model_validate(obj)
    except ValidationError as e:
        problems.extend(_pydantic_problems(e, line_no, prefix=""))
    # Check the input against its kind even when another top-level field is wrong, so that one
    # round of fixes is enough.
    input_model = INPUT_MODELS.get(obj.get("kind")) if isinstance(obj.get("kind"), str) else None
    if input_model is not None and isinstance(obj.get("input"), dict):
        try:
            model = input_model.model_validate(obj["input"])
        except ValidationError as e:
            problems.extend(_pydantic_problems(e, line_no, prefix="input."))
    if problems or line is None or model is None:
        return None, problems
    return (
        Job(
            line_no=line_no,
            kind=line.kind,
            input=model.model_dump(),
            key=line.key,
            params=line.params.model_dump(exclude_none=True),
        ),
        [],
    )


def _unstorable_values(obj: Any, line_no: int) -> list[SpecProblem]:
    """Values that pass the schema but no database stores: NUL characters (PostgreSQL text and
    JSONB refuse them) and NaN / infinite numbers (JSON has none; JSONB refuses them).

    Iterative and depth-bounded: parse_array gets objects that were never depth-checked as text.
    """
    problems: list[SpecProblem] = []
    stack: list[tuple[str, Any, int]] = [("", obj, 0)]
    while stack and len(problems) < 5:
        path, value, depth = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            problems.append(SpecProblem(line_no, path, "NUL characters (\\u0000) are not allowed in text"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(SpecProblem(line_no, path, f"expected a finite number, got {value}"))
        elif depth <= MAX_JSON_DEPTH and isinstance(value, (dict, list)):
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in pairs:
                if isinstance(key, str) and "\x00" in key:
                    problems.append(SpecProblem(line_no, path, "NUL characters (\\u0000) are not allowed in keys"))
                    continue
                stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
    return sorted(problems, key=lambda p: p.field)


def content_hash(jobs: list[Job]) -> str:
    """Hash of the jobs' meaning (not formatting): resubmitting the same jobs is recognised."""
    canonical = [
        {"kind": j.kind, "input": j.input, "key": j.key, "params": j.params} for j in jobs
    ]
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
def _loads(text: str, line_no: int) -> tuple[Any, SpecProblem | None]:
    depth_problem = _raw_depth_problem(text, line_no)
    if depth_problem:
        return None, depth_problem
    try:
        return loads_strict(text), None
    except json.JSONDecodeError as e:
        return None, SpecProblem(line_no, "", f"invalid JSON at column {e.colno}: {e.msg}")
    except ValueError as e:  # a number loads_strict refuses
        return None, SpecProblem(line_no, "", f"invalid JSON: {e}")
    except RecursionError:
        return None, SpecProblem(line_no, "", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def loads_strict(text: str) -> Any:
    """json.loads that accepts only numbers every database can store.

    Python's json reads NaN / Infinity (not JSON at all), turns 1e400 into inf, and fails on an
    integer of over 4300 digits with a ValueError that suggests changing interpreter limits.
    PostgreSQL's JSONB rejects NaN and infinities, so they would surface as a DataError at insert.
    """
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_short(text)} is out of range")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"integer with {digits} digits is too long (at most {MAX_INT_DIGITS})")
    return int(text)


def _structure(text: str) -> Iterator[tuple[str, int]]:
    """(character, nesting depth after it) for each bracket or comma outside strings: a cheap scan
    that lets deep nesting be refused before json.loads recurses into it."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            yield ch, depth
        elif ch in "]},":
            depth -= ch != ","
            yield ch, depth


def _raw_depth_problem(text: str, line_no: int) -> SpecProblem | None:
    """Reject deeply nested JSON before json.loads recurses into it."""
    if any(depth > MAX_JSON_DEPTH for ch, depth in _structure(text) if ch in "[{"):
        return SpecProblem(line_no, "", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return None


def _too_deep_elements(text: str) -> list[int]:
    """1-based numbers of the top-level array's elements nested deeper than MAX_JSON_DEPTH
    (elements counted by the commas at depth 1)."""
    element = 1
    deep: list[int] = []
    for ch, depth in _structure(text):
        if ch == "," and depth == 1:
            element += 1
        elif ch in "[{" and depth > MAX_JSON_DEPTH + 1 and (not deep or deep[-1] != element):
            deep.append(element)
    return deep


def _depth_problem(obj: Any, line_no: int, depth: int = 0) -> SpecProblem | None:
    if depth > MAX_JSON_DEPTH:
        return SpecProblem(line_no, "", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for child in children:
        problem = _depth_problem(child, line_no, depth + 1)
        if problem:
            return problem
    return None


def _pydantic_problems(e: ValidationError, line_no: int, prefix: str) -> list[SpecProblem]:
    out = []
    for err in e.errors(include_url=False):
        loc = prefix + ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        problem = SpecProblem(line_no, loc.rstrip("."), _explain(err))
        if not any(o.field == problem.field for o in out):  # one message per field (unions)
            out.append(problem)
    return out


def _is_union_tag(part: Any) -> bool:
    # pydantic puts union member names (e.g. 'str', 'constrained-str') into the location.
    return isinstance(part, str) and (part in {"int", "float", "bool", "str"} or "constrained-str" in part)


def _explain(err: dict[str, Any]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"{err['msg'].lower()}, got {_short(got)}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{msg[0].lower() + msg[1:]}, got {_short(got)}"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else _type_name(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
