"""`code`: the user's code (or task text as its docstring), the signature and step comments -> body
lines -> a Python function.

    prompt is code:  user's imports, helpers, signature, docstring (verbatim) + steps + body
    prompt is text:  planned signature + the text as docstring (verbatim)    + steps + body

The plan adds the signature when the user gave none, and step comments; it never replaces what the
user wrote (pipeline/kinds/code_prompt.py reads it).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipeline.kinds.base import Fallback, PlainReply, PlanRequest, Prompt, Span
from pipeline.kinds.code_prompt import body_indent, docstring_block, signature_from_tests, user_code
from pipeline.text import strip_chat_artifacts
from validators.code_task import SIGNATURE_LINE, expected_name, given_signature

FENCE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
ARGS = r"\([A-Za-z0-9_, =:\[\]\.\*]{0,80}\)"
NAME = r"[a-z_][a-z0-9_]*"
"""A function name the model picks. Unbounded on purpose: `{2,30}` before ARGS makes outlines-core's
index explode (no result after 455 s); the token budget bounds it, and check_plan checks the name."""
SIGNATURE = {"type": "string", "pattern": f"^def [A-Za-z_][A-Za-z0-9_]*{ARGS}:$"}
PLAN_REST = {"steps": {"type": "array", "minItems": 1, "maxItems": 3,
                       "items": {"type": "string", "minLength": 3, "maxLength": 60}}}
"""The plan's members after the signature when it has steps (Code.steps)."""


def plan_schema(steps: bool) -> dict[str, Any]:
    """A code plan: the signature (forced from the job where it is known: plan_request), and the steps
    if the kind uses them. There is no docstring in it: the user's own text is the docstring (the
    model's one-line summaries dropped the user's examples and were cut at their length limit)."""
    properties = {"signature": SIGNATURE, **(PLAN_REST if steps else {})}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


@cache
def after_signature() -> str:
    """The regex of a plan with steps after its signature member: `[ ]?"steps": [...]}` (the rest
    object's own regex without its opening brace). Built on first use: the schema compiler imports
    torch, which `hybridgen submit` must not pay for."""
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


@cache
def body_ends(indent: str):
    """A body span's end: just after the first complete `return` line at the body's own indentation,
    since nothing after it runs (the default model went on writing calls and asserts there, to its
    token limit). A return spread over several lines ends where its line parses."""
    line = re.compile(rf"^{re.escape(indent)}return\b[^\n]*\n", re.M)

    def ends(text: str) -> int | None:
        for m in line.finditer(text):
            try:
                with warnings.catch_warnings():  # the model's code may draw SyntaxWarnings: not ours to print
                    warnings.simplefilter("ignore")
                    compile("def _f():\n" + m.group(0), "<body>", "exec")
            except SyntaxError:
                continue
            return m.end()
        return None

    return ends


def function_body(text: str, indent: str = "    ") -> str:
    """The body's lines up to the first line indented less than the body (the function has ended there)."""
    lines = text.rstrip().splitlines()
    end = next((i for i, line in enumerate(lines) if line.strip() and len(line) - len(line.lstrip()) < len(indent)),
               len(lines))
    return "\n".join(lines[:end]).rstrip()


def _is_code_line(text: str) -> bool:
    """A statement, a signature, or a bare call/signature such as "max_of_three(a, b, c):"."""
    return (bool(re.match(r"\s*(def|assert|class|import|from)\s", text)) or bool(SIGNATURE_LINE.search(text))
            or bool(re.fullmatch(r"\s*[A-Za-z_]\w*\s*\(.*\)\s*(->.*)?:?\s*", text)))


CODE_MARKS = re.compile(r"->|==|!=|<=|>=|\w\(|[\[\]{}|`;=]|\b(?:int|str|bool|float|None|True|False)\)|:\s*$")
NUMBERING_RUN = re.compile(r"\d+\s*[.)]\s*\d+\s*[.)]")
LEADING_NUMBER = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):]\s*", re.IGNORECASE)


def _is_prose(text: str) -> bool:
    """Starts like a sentence (a letter or digit, perhaps after a quote), has two words one of them of 3+
    letters, and is at least half letters: the default model sometimes filled the plan with JSON debris
    ("] }} ...") and signature fragments ("int) -> bool | (int, int) -> bool")."""
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return (bool(re.match(r"\s*[\"'(]?[^\W_]", text)) and bool(re.search(r"[^\W\d_]{3}", text))
            and len(text.split()) >= 2 and letters >= 0.5 * len(text.strip()))


def step_problem(step: str) -> str | None:
    """Why a plan step is not a sentence describing the code (it is code, a numbering run, debris), or None."""
    if NUMBERING_RUN.search(step):
        return f"step {step!r} is a numbering run, not a description"
    if _is_code_line(step) or CODE_MARKS.search(step):
        return f"step {step!r} is code, not a description"
    if not _is_prose(step):
        return f"step {step!r} is not a sentence"
    return None


def usable_steps(steps: list[str]) -> list[str]:
    """The plan's steps that are prose, without their own numbering ("1. Sort" -> "Sort"), each once.
    Any other step text is never used: as comments above the body, copies of the signature or the
    tests led the default model to write no body at all."""
    out: list[str] = []
    for step in steps:
        text = LEADING_NUMBER.sub("", step).strip()
        if not step_problem(text) and text.lower() not in {s.lower() for s in out}:
            out.append(text)
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


def user_context(code: str, job_input: dict[str, Any]) -> str:
    """`code` (a model's whole function) placed in the user's file: the imports and finished helper
    functions of the user's own code that it lacks go above it, as they would where the user pastes it."""
    prompt = user_code(job_input)
    if prompt is None:
        return code
    try:
        theirs = ast.parse(f"{prompt}\n{body_indent(job_input)}pass\n")
        ours = ast.parse(code)
    except SyntaxError:
        return code
    defined = {n.name for n in ours.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    imported = {ast.unparse(n) for n in ours.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    lines, target = prompt.splitlines(), expected_name(job_input)
    kept = []
    for node in theirs.body:
        missing_import = isinstance(node, (ast.Import, ast.ImportFrom)) and ast.unparse(node) not in imported
        missing_helper = (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                          and node.name not in defined and node.name != target)
        if missing_import or missing_helper:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[first - 1:node.end_lineno]))
    return "\n\n".join(kept) + "\n\n\n" + code if kept else code


CODE_START = re.compile(r"^(?:def |class |import |from |@)", re.M)


def unfenced_code(reply: str) -> str | None:
    """The code of a reply without an opening fence: from its first line that starts a definition or an
    import, up to a closing fence if one follows; None when that is not Python."""
    start = CODE_START.search(reply)
    if start is None:
        return None
    code = reply[start.start():].split("```", 1)[0]
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    return code


def _defines(code: str, name: str | None) -> bool:
    return name is None or bool(re.search(rf"^\s*def\s+{name}\s*\(", code, re.M))


PLAIN_REPLY = "Reply with the whole function in one ```python block."


@dataclass(frozen=True)
class Code:
    name: str = "code"
    schema: dict | None = None
    span_tokens: int = 180
    steps: bool = False
    """Plan step comments above the body. Off: with the default model not one plan of 40 MBPP tasks had
    a step that was prose, so steps cost plan tokens and never reached the output (docs/benchmarks.md,
    "Code plan steps"; benchmarks/code_steps.py measures it again, e.g. for another model)."""

    def known_plan(self, job_input: dict[str, Any]) -> dict[str, Any] | None:
        """The plan when the job already holds all of it (the user's signature, and no steps to write):
        the planner then has nothing to decode."""
        sig = given_signature(job_input)
        return {"signature": sig} if sig and not self.steps else None

    def plan_request(self, job_input: dict[str, Any]) -> PlanRequest:
        # What is known of the signature is written into the reply as a forced prefix, and the model
        # continues under one of three fixed regexes: a regex naming the job's own signature would
        # compile a new token index per job (~1 s and ~150 MB each with SmolLM2's vocabulary).
        sig = given_signature(job_input)
        name = expected_name(job_input)
        # Each prefix ends where SmolLM2's tokenizer ends a token (never on a lone space: the space
        # belongs to the next word's token, as in the text the model was trained on).
        rest = ("," + after_signature()) if self.steps else r"\}"
        if sig:  # (known_plan holds the whole plan when there are no steps)
            prefix = '{"signature": ' + json.dumps(sig, ensure_ascii=False) + ("," if self.steps else "")
            continuation = after_signature() if self.steps else r"\}"
        elif name:
            prefix, continuation = '{"signature": "def ' + name, ARGS + ':"' + rest
        else:
            prefix, continuation = '{"signature": "def', " " + NAME + ARGS + ':"' + rest
        ask = ("the signature line (def ...:) and one to three steps, each a short sentence in words (no code) "
               "saying what the function does" if self.steps else "the signature line (def ...:)")
        user = (f"Plan a Python function for this task: {job_input['prompt']}\n"
                + (f"Tests: {' ; '.join(job_input['tests'][:2])}\n" if job_input.get("tests") else "")
                + f"Reply with JSON: {ask}.")
        return PlanRequest(Prompt(user, assistant_prefix=prefix), plan_schema(self.steps), 110 if self.steps else 40,
                           continuation_regex=continuation)

    def normalise_plan(self, job_input: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        return {**raw, "steps": usable_steps(raw["steps"])} if "steps" in raw else raw

    def check_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[str]:
        # Steps are not checked: the ones that are not prose are dropped (usable_steps), and none is fine.
        return signature_problems(plan.get("signature", ""), expected_name(job_input))

    def repair_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        """After re-planning failed: the user's signature, else the plan's if it is right, else one
        from the tests; only the steps that describe (none is fine: the body is written from the task)."""
        signature = given_signature(job_input) or plan.get("signature", "")
        if signature_problems(signature, expected_name(job_input)):
            signature = signature_from_tests(job_input) or signature
        return {"signature": signature, **({"steps": usable_steps(plan.get("steps") or [])} if self.steps else {})}

    def _prefix(self, job_input: dict[str, Any], plan: dict[str, Any]) -> str:
        """Everything above the body: the user's code, or the planned signature with the task text as its
        docstring; then the step comments."""
        indent = body_indent(job_input)
        steps = usable_steps(plan.get("steps") or []) if self.steps else []
        comments = "".join(f"{indent}# {i + 1}. {s}\n" for i, s in enumerate(steps))
        code = user_code(job_input)
        if code is not None:
            return f"{code}\n{comments}"
        return f"{plan['signature']}\n{docstring_block(job_input['prompt'], indent)}{comments}"

    def _task(self, job_input: dict[str, Any],
              ask: str = "Write a Python function for this task. Reply with only the code.") -> str:
        tests = job_input.get("tests") or []
        return (f"{ask}\n{job_input['prompt']}"
                + (f"\nIt must pass these tests:\n" + "\n".join(tests[:2]) if tests else ""))

    def spans(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[Span]:
        # The prefix ends inside the body, at an indented comment: after a bare newline (or bare
        # indentation) the default model left the function empty and wrote the tests' asserts at
        # column 0; from "    # " it writes a step and then the code under it.
        prefix = "```python\n" + self._prefix(job_input, plan) + body_indent(job_input) + "# "
        return [Span(name="body", prompt=Prompt(self._task(job_input), assistant_prefix=prefix),
                     max_new_tokens=self.span_tokens,
                     stop=("```", "\ndef ", "\nassert ", "\nprint(", "\nif __name__", "\n# Test", "\n#Test", "<|im_start|>"),
                     ends=body_ends(body_indent(job_input)))]

    def assemble(self, job_input: dict[str, Any], plan: dict[str, Any], texts: list[str]) -> str:
        indent = body_indent(job_input)
        lead, _, rest = strip_chat_artifacts(texts[0]).partition("\n")
        # The body starts inside a comment (spans), which the default model often fills with a numbering
        # run ("1. 1. 2. 3. 4. ..." to the token limit): like a plan step, it is kept only if it is prose.
        first = "" if step_problem(LEADING_NUMBER.sub("", lead).strip()) else f"{indent}# {lead.strip()}\n"
        return with_imports(self._prefix(job_input, plan) + function_body(first + rest, indent) + "\n")

    def fallback(self, job_input: dict[str, Any], plan: dict[str, Any]) -> Fallback:
        indent = body_indent(job_input)
        # the body: printable ASCII lines (see product.SAFE_TEXT) at the body's indentation
        body = ("gen", {"name": "body", "regex": rf"({indent}[ -~]{{0,100}}\n){{1,25}}", "max_tokens": 240})
        code = user_code(job_input)
        if code is not None:
            template = [("text", f"```python\n{code}\n"), body]
        else:
            sig = given_signature(job_input)
            name = expected_name(job_input) or r"[a-z_][a-z0-9_]{2,30}"
            header = ("text", sig) if sig else ("gen", {"name": "signature", "regex": f"def {name}{ARGS}:",
                                                        "max_tokens": 40})
            docstring = ("text", "\n" + docstring_block(job_input["prompt"], indent))
            template = [("text", "```python\n"), header, docstring, body]
        return Fallback("guidance", Prompt(self._task(job_input)), template, ends=body_ends(indent))

    def finish_fallback(self, values: dict[str, str], job_input: dict[str, Any]) -> str:
        code = user_code(job_input)
        if code is None:
            signature = given_signature(job_input) or values["signature"]
            code = signature + "\n" + docstring_block(job_input["prompt"], body_indent(job_input)).rstrip("\n")
        body = values["body"]
        end = body_ends(body_indent(job_input))(body)  # the program's body runs to its caps; its code ends here
        return with_imports(code + "\n" + (body[:end] if end is not None else body).rstrip() + "\n")

    def plain_span(self, job_input: dict[str, Any], cap: int) -> Span:
        """`plain` mode: the task as a user would ask for it, the whole function in one reply. Its budget
        is the body's plus the user's code restated (about 3 characters a token), and HYBRIDGEN_MAX_NEW_TOKENS
        caps the two parts each, as it caps the planned path's calls."""
        code = user_code(job_input)
        ask = "Complete this Python function." if code else "Write a Python function for this task."
        restated = len(code or "") // 3 + 40
        return Span(name="reply", prompt=Prompt(self._task(job_input, f"{ask} {PLAIN_REPLY}")),
                    max_new_tokens=min(self.span_tokens, cap) + min(restated, cap), stop=("\n```\n", "<|im_start|>"))

    def parse_plain(self, job_input: dict[str, Any], reply: str) -> PlainReply:
        """The function from a plain reply: the ```python block that defines the function asked for (else
        the reply's unfenced code that does, else the first block), placed in the user's file (user_context)."""
        reply = strip_chat_artifacts(reply)
        found = [(b, "the reply's ```python block") for b in FENCE.findall(reply) if b.strip()]
        found += [(c, "the reply's code (it has no ```python block)") for c in [unfenced_code(reply)] if c]
        if not found:
            return PlainReply(reply, False, "no ```python block in the reply, and no Python code in it")
        name = expected_name(job_input)
        chosen, how = next(((c, how) for c, how in found if _defines(c, name)), found[0])
        code = with_imports(user_context(chosen.strip("\n") + "\n", job_input))
        if not _defines(code, name):
            return PlainReply(code, False, f"the code in {how} does not define {name}()")
        return PlainReply(code, True, f"the function from {how}")


CODE = Code()
