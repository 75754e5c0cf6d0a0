"""`code`: signature, docstring and step comments -> body lines -> a Python function."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipeline.kinds.base import Fallback, PlanRequest, Prompt, Span
from pipeline.text import strip_chat_artifacts

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
SIGNATURE_LINE = re.compile(r"^\s*(def\s+[A-Za-z_]\w*\s*\(.*\)\s*(?:->\s*[^:]+)?:)\s*$", re.MULTILINE)
TEST_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
ARGS = r"\([A-Za-z0-9_, =:\[\]\.\*]{0,80}\)"
NAME = r"[a-z_][a-z0-9_]*"
"""A function name the model picks. Unbounded on purpose: `{2,30}` before ARGS makes outlines-core's
index explode (no result after 455 s); the token budget bounds it, and check_plan checks the name."""
PLAN_REST = {"docstring": {"type": "string", "minLength": 5, "maxLength": 90},
             "steps": {"type": "array", "minItems": 1, "maxItems": 3,
                       "items": {"type": "string", "minLength": 3, "maxLength": 60}}}
PLAN_SCHEMA = {"type": "object", "properties": {
    "signature": {"type": "string", "pattern": f"^def [A-Za-z_][A-Za-z0-9_]*{ARGS}:$"}, **PLAN_REST},
    "required": ["signature", "docstring", "steps"], "additionalProperties": False}
"""A code plan. The signature is forced from the job where it is known (plan_request)."""


@cache
def after_signature() -> str:
    """The regex of the plan's JSON after its signature member: `[ ]?"docstring": ..., "steps": [...]}`
    (the rest object's own regex without its opening brace). Built on first use: the schema compiler
    imports torch, which `hybridgen submit` must not pay for."""
    from generators.constrained import schema_regex

    rest = schema_regex({"type": "object", "properties": PLAN_REST, "required": list(PLAN_REST),
                         "additionalProperties": False})
    if not rest.startswith("\\{"):
        raise RuntimeError(f"unexpected schema regex from outlines-core: {rest[:40]!r}")
    return rest[2:]


# Standard modules MBPP-style bodies use without importing them inside the function.
STDLIB = ("re", "math", "heapq", "collections", "itertools", "functools", "operator", "string", "bisect", "sys",
          "cmath", "statistics", "random")


def extract_code(text: str) -> str:
    """The first fenced code block if there is one, else the text itself."""
    m = FENCE.search(text)
    return (m.group(1) if m else text).strip("\n") + "\n"


def expected_name(job_input: dict[str, Any]) -> str | None:
    sig = SIGNATURE_LINE.search(job_input["prompt"])
    if sig:
        return re.match(r"\s*def\s+(\w+)", sig.group(1)).group(1)
    for test in job_input.get("tests") or []:
        m = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:set\()?([A-Za-z_]\w*)\s*\(", test)
        if m and m.group(1) not in {"set", "sorted", "list", "tuple", "abs", "round", "len", "math", "str", "int",
                                    "float", "isclose", "all", "any", "sum", "dict"}:
            return m.group(1)
    return None


def given_signature(job_input: dict[str, Any]) -> str | None:
    m = SIGNATURE_LINE.search(job_input["prompt"])
    return m.group(1).strip() if m else None


def with_imports(code: str) -> str:
    """The code with imports for the standard modules and typing names it uses but does not import
    (annotations such as "Callable[[int], int]" in a signature fail with NameError when it runs)."""
    used = [m for m in STDLIB if re.search(rf"\b{m}\.", code) and not re.search(rf"^\s*(import|from) {m}\b", code, re.M)]
    lines = [f"import {m}\n" for m in used]
    hints = [n for n in TYPING_NAMES if re.search(rf"(?<![\w.]){n}\b", code)
             and not re.search(rf"^\s*(from\s+\S+\s+import\b.*\b{n}\b|class\s+{n}\b|{n}\s*=)", code, re.M)]
    if hints:
        lines.append(f"from typing import {', '.join(hints)}\n")
    return "".join(lines) + ("\n" if lines else "") + code


TYPING_NAMES = ("Any", "Callable", "Dict", "Iterable", "Iterator", "List", "Optional", "Sequence", "Set", "Tuple",
                "Union")

BODY_START = "    # "  # where the body span starts (see Code.spans)


def function_body(text: str) -> str:
    """The body's lines up to the first line back at column 0 (the function has ended there)."""
    lines = text.rstrip().splitlines()
    end = next((i for i, line in enumerate(lines) if line.strip() and not line[:1].isspace()), len(lines))
    return "\n".join(lines[:end]).rstrip()


def _is_code_line(text: str) -> bool:
    """A statement, a signature, or a bare call/signature such as "max_of_three(a, b, c):"."""
    return (bool(re.match(r"\s*(def|assert|class|import|from)\s", text)) or bool(SIGNATURE_LINE.search(text))
            or bool(re.fullmatch(r"\s*[A-Za-z_]\w*\s*\(.*\)\s*(->.*)?:?\s*", text)))


def _is_prose(text: str) -> bool:
    """Starts like a sentence (a letter or digit, perhaps after a quote), has a word of 3+ letters, and
    is at least half letters: the default model sometimes filled the docstring with JSON debris
    ("] }} ...", or "] }}. The actual function is ..." that the letter count alone let through).
    Loose enough for "Add.", "Compute n!" and MBPP's "sum of series 1³+2³+…+n³"."""
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return (bool(re.match(r"\s*[\"'`(]?[^\W_]", text)) and bool(re.search(r"[^\W\d_]{3}", text))
            and letters >= 0.5 * len(text.strip()))


def description_problem(what: str, text: str) -> str | None:
    """Why a docstring or step is not a description of the function, or None."""
    if _is_code_line(text):
        return f"{what} {text!r} is code, not a description"
    if not _is_prose(text):
        return f"{what} {text!r} is not a sentence"
    return None


def step_problems(steps: list[str]) -> list[tuple[str, str | None]]:
    """Each plan step with what is wrong with it (code or debris instead of a description, a repeat), or None."""
    seen: set[str] = set()
    out = []
    for step in steps:
        key = step.strip().lower()
        out.append((step, description_problem("step", step) or (f"duplicate step {step!r}" if key in seen else None)))
        seen.add(key)
    return out


def signature_problems(signature: str, name: str | None) -> list[str]:
    problems = []
    try:
        ast.parse(f"{signature}\n    pass\n")
    except SyntaxError as e:
        problems.append(f"signature {signature!r} does not parse: {e.msg}")
    if name and not signature.startswith(f"def {name}("):
        problems.append(f"signature {signature!r} does not define {name}() that the tests call")
    return problems


def signature_from_tests(job_input: dict[str, Any]) -> str | None:
    """`def name(arg1, arg2):` with as many parameters as the first test's call passes, or None when no
    test calls the expected function (the model wrote e.g. "def f(fn: Callable[[List[Any]], Any]]):"
    twice, and a plan that never parses left the item without a body)."""
    name = expected_name(job_input)
    for test in job_input.get("tests") or []:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
                args = [f"arg{i + 1}" for i in range(len(node.args))] + [kw.arg for kw in node.keywords if kw.arg]
                return f"def {name}({', '.join(args)}):"
    return None


def task_summary(job_input: dict[str, Any], limit: int = 90) -> str:
    """One line saying what the function does: the task's own docstring when the prompt is a stub, else
    the prompt's first sentence."""
    prompt = job_input["prompt"]
    doc = re.search(r'"""\s*(.+?)\s*(?:"""|$)', prompt, re.DOTALL)
    text = doc.group(1) if doc else SIGNATURE_LINE.sub("", prompt)
    text = " ".join(text.split())
    text = re.sub(r"^[^\w\"'`(]+", "", text)  # markdown left before the words ("## write a function ...")
    # "Write a function f(x) that returns ..." -> "Returns ...": a docstring describes, it does not ask
    text = re.sub(r"^(?:write|create) an? (?:python )?function(?: [A-Za-z_]\w*(?:\([^)]*\))?)? (?:that|which|to) (\w)",
                  lambda m: m.group(1).upper(), text, flags=re.IGNORECASE)
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return (first[:limit - 3].rstrip() + "...") if len(first) > limit else first


@dataclass(frozen=True)
class Code:
    name: str = "code"
    schema: dict | None = None
    span_tokens: int = 180

    def plan_request(self, job_input: dict[str, Any]) -> PlanRequest:
        # What is known of the signature is written into the reply as a forced prefix, and the model
        # continues under one of three fixed regexes: a regex naming the job's own signature would
        # compile a new token index per job (~1 s and ~150 MB each with SmolLM2's vocabulary).
        sig = given_signature(job_input)
        name = expected_name(job_input)
        # Each prefix ends where SmolLM2's tokenizer ends a token (never on a lone space: the space
        # belongs to the next word's token, as in the text the model was trained on).
        if sig:
            prefix, continuation = '{"signature": ' + json.dumps(sig, ensure_ascii=False) + ",", after_signature()
        elif name:
            prefix, continuation = '{"signature": "def ' + name, ARGS + ':",' + after_signature()
        else:
            prefix, continuation = '{"signature": "def', " " + NAME + ARGS + ':",' + after_signature()
        user = (f"Plan a Python function for this task: {job_input['prompt']}\n"
                + (f"Tests: {' ; '.join(job_input['tests'][:2])}\n" if job_input.get("tests") else "")
                + "Reply with JSON: the signature line (def ...:), a one-line docstring, and one to three short steps.")
        return PlanRequest(Prompt(user, assistant_prefix=prefix), PLAN_SCHEMA, 140, continuation_regex=continuation)

    def normalise_plan(self, job_input: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        return raw

    def check_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[str]:
        problems = signature_problems(plan.get("signature", ""), expected_name(job_input))
        # The default model often fills the docstring and steps with copies of the signature or the
        # tests; as comments above the body they led it to write no body at all.
        doc_problem = description_problem("docstring", plan.get("docstring", ""))
        return (problems + ([doc_problem] if doc_problem else [])
                + [problem for _, problem in step_problems(plan.get("steps", [])) if problem])

    def repair_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        """After re-planning failed: keep the signature if it is right (else take it from the tests),
        take the docstring from the task, keep only the steps that describe (none is fine: the body is
        written from the docstring)."""
        steps = [step for step, problem in step_problems(plan.get("steps", [])) if not problem]
        signature = plan.get("signature", "")
        if signature_problems(signature, expected_name(job_input)):
            signature = signature_from_tests(job_input) or signature
        return {"signature": signature, "docstring": task_summary(job_input), "steps": steps}

    def _prefix(self, plan: dict[str, Any]) -> str:
        doc = plan["docstring"].replace('"""', "'").strip()
        steps = "".join(f"    # {i + 1}. {s.strip()}\n" for i, s in enumerate(plan["steps"]))
        return f"{plan['signature']}\n    \"\"\"{doc}\"\"\"\n{steps}"

    def _task(self, job_input: dict[str, Any]) -> str:
        tests = job_input.get("tests") or []
        return (f"Write a Python function for this task. Reply with only the code.\n{job_input['prompt']}"
                + (f"\nIt must pass these tests:\n" + "\n".join(tests[:2]) if tests else ""))

    def spans(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[Span]:
        # The prefix ends inside the body, at an indented comment: after a bare newline (or bare
        # indentation) the default model left the function empty and wrote the tests' asserts at
        # column 0; from "    # " it writes a step and then the code under it.
        prefix = "```python\n" + self._prefix(plan) + BODY_START
        return [Span(name="body", prompt=Prompt(self._task(job_input), assistant_prefix=prefix),
                     max_new_tokens=self.span_tokens,
                     stop=("```", "\ndef ", "\nassert ", "\nprint(", "\nif __name__", "\n# Test", "\n#Test", "<|im_start|>"))]

    def assemble(self, job_input: dict[str, Any], plan: dict[str, Any], texts: list[str]) -> str:
        return with_imports(self._prefix(plan) + function_body(BODY_START + strip_chat_artifacts(texts[0])) + "\n")

    def fallback(self, job_input: dict[str, Any], plan: dict[str, Any]) -> Fallback:
        sig = given_signature(job_input)
        name = expected_name(job_input) or r"[a-z_][a-z0-9_]{2,30}"
        header = re.escape(sig) if sig else f"def {name}{ARGS}:"
        regex = header + r"\n(    [ -~]{0,100}\n){1,25}"  # printable ASCII lines (see product.SAFE_TEXT)
        return Fallback("guidance", Prompt(self._task(job_input)),
                        [("text", "```python\n"), ("gen", {"name": "code", "regex": regex, "max_tokens": 240})])

    def finish_fallback(self, values: dict[str, str], job_input: dict[str, Any]) -> str:
        return with_imports(values["code"].rstrip() + "\n")


CODE = Code()
