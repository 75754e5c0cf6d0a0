"""Hollow code: the delivered function has no working body, or never returns the value it must.

    def count_vowels(text: str) -> int:
        \"\"\"Count the vowels.\"\"\"
        # Count the vowels in the text        ──► hollow: no statement but comments and the docstring
        pass

A body is hollow when all it holds is the docstring, `pass`, `...`, `return` / `return None` or
`raise NotImplementedError`. A function that must return a value (a return annotation other than
None, a task text that says "return", or tests and examples that compare its result) is hollow too
when no path returns an expression, e.g. one that only prints. Critical in the rubric
(docs/review-rubric.md `hollow-code`): a reviewer has to write the function.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from validators.base import Evidence, Report, ValidationContext, line_span
from validators.code_function import FunctionNode, def_line, delivered_function, parse_quietly
from validators.sandbox.examples import example_tests

RETURN_WORDS = re.compile(r"\breturns?\b", re.IGNORECASE)


@dataclass(frozen=True)
class HollowCode:
    name: str = "hollow_code"

    def check(self, text: str, context: ValidationContext) -> Report:
        tree = parse_quietly(text)
        if tree is None:
            return Report(self.name, True, 1.0, "does not parse (python_syntax reports it)")
        fn = delivered_function(tree, context.input)
        if fn is None:
            return Report(self.name, False, 0.0, "no function is defined", (Evidence(0, min(len(text), 80),
                                                                             text[:80], "no def"),))
        working = [s for s in body_without_docstring(fn) if not is_placeholder(s)]
        if not working:
            start, end = first_body_line(text, fn)
            return Report(self.name, False, 0.0, f"{fn.name}() has no working body: only the docstring, comments "
                          "or a placeholder", (Evidence(start, end, text[start:end], "hollow body"),))
        if must_return_value(fn, context) and not returns_value(fn):
            start, end = def_line(text, fn)
            return Report(self.name, False, 0.0, f"{fn.name}() must return a value but no path returns one",
                          (Evidence(start, end, text[start:end], "no return <value>"),))
        return Report(self.name, True, 1.0, f"{fn.name}() has a body")


def body_without_docstring(fn: FunctionNode) -> list[ast.stmt]:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


def is_placeholder(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):  # `...`, a stray string
        return True
    if isinstance(stmt, ast.Return):
        return stmt.value is None or (isinstance(stmt.value, ast.Constant) and stmt.value.value is None)
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def must_return_value(fn: FunctionNode, context: ValidationContext) -> bool:
    if fn.returns is not None:
        return not (isinstance(fn.returns, ast.Constant) and fn.returns.value is None)
    prompt = context.input.get("prompt", "")
    compared = [t for t in [*(context.input.get("tests") or []), *example_tests(prompt)] if f"{fn.name}(" in t]
    return bool(compared) or bool(RETURN_WORDS.search(prompt))


def returns_value(fn: FunctionNode) -> bool:
    """Some `return <expr>` (not None) or `yield` of the function itself (nested functions do not count)."""
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return) and node.value is not None \
                and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def first_body_line(text: str, fn: FunctionNode) -> tuple[int, int]:
    body = body_without_docstring(fn) or fn.body
    return line_span(text, body[0].lineno) if body else def_line(text, fn)
