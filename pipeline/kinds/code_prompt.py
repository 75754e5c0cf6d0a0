"""What the user wrote in a `code` job, read without changing it.

A prompt is either
    code: imports, helpers, the signature and its docstring (with examples), to be completed;
          it is kept verbatim at the top of the delivered function (`user_code`);
    text: a task ("Write a function to ..."); the plan writes the signature and the text becomes the
          function's docstring, verbatim (`docstring_block`).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from validators.code_function import parse_quietly
from validators.code_task import expected_name, last_signature
from validators.sandbox.examples import example_tests

def body_indent(job_input: dict[str, Any]) -> str:
    """The indentation of the body of the function to complete: its docstring's, else one level
    (4 spaces) below its `def`."""
    prompt = job_input["prompt"]
    sig = last_signature(prompt)
    if not sig:
        return "    "
    def_indent = re.match(r"[ \t]*", prompt[prompt.rfind("\n", 0, sig.start(1)) + 1:]).group(0)
    after = [line for line in prompt[sig.end():].splitlines() if line.strip()]
    own = re.match(r"[ \t]*", after[0]).group(0) if after else ""
    return own if len(own) > len(def_indent) else def_indent + "    "


def user_code(job_input: dict[str, Any]) -> str | None:
    """The prompt itself when it is code to complete (it parses once the function gets a body), else None."""
    prompt = job_input["prompt"].rstrip()
    if not last_signature(prompt):
        return None
    return prompt if _parses(f"{prompt}\n{body_indent(job_input)}pass\n") else None


def docstring_block(text: str, indent: str = "    ") -> str:
    """`text` as a function's docstring, verbatim (its own lines kept, each indented), ending in a newline.

    The quotes are chosen so the text needs no change: triple single quotes when it holds triple
    double ones (or ends in a double quote), a raw string when it holds backslashes; only text that
    breaks every form is escaped."""
    text = text.strip()
    lines = text.splitlines()
    body = lines[0] + "".join(f"\n{indent}{line}" if line.strip() else "\n" for line in lines[1:])
    raw = "r" if "\\" in text else ""
    for quote in ('"""', "'''"):
        if quote in text or text.endswith((quote[0], "\\")):
            continue
        closing = f"\n{indent}{quote}" if len(lines) > 1 else quote
        block = f"{indent}{raw}{quote}{body}{closing}\n"
        if _parses(f"def f():\n{block}"):
            return block
    escaped = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'{indent}"""{escaped}\n{indent}"""\n'


def _parses(source: str) -> bool:
    return parse_quietly(source) is not None


def signature_from_tests(job_input: dict[str, Any]) -> str | None:
    """`def name(arg1, arg2):` with as many parameters as the first test's call passes, or None when no
    test calls the expected function (the model wrote e.g. "def f(fn: Callable[[List[Any]], Any]]):"
    twice, and a plan that never parses left the item without a body)."""
    name = expected_name(job_input)
    for test in [*(job_input.get("tests") or []), *example_tests(job_input["prompt"])]:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
                args = [f"arg{i + 1}" for i in range(len(node.args))] + [kw.arg for kw in node.keywords if kw.arg]
                return f"def {name}({', '.join(args)}):"
    return None
