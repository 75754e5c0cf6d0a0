"""Finding the delivered function in generated code: the one the job asks for, else the last one defined.

Shared by the checks that look inside it (hollow_code, signature_kept); they report nothing about
code that does not parse (python_syntax does).
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from validators.base import line_span
from validators.code_task import expected_name

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def parse_quietly(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def top_level_functions(tree: ast.Module) -> list[FunctionNode]:
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def delivered_function(tree: ast.Module, job_input: dict[str, Any]) -> FunctionNode | None:
    """The function named as the job asks (the last definition wins, as at run time), else the last one."""
    functions = top_level_functions(tree)
    name = expected_name(job_input) if job_input.get("prompt") else None
    named = [f for f in functions if f.name == name]
    return (named or functions or [None])[-1]


def def_line(text: str, node: FunctionNode) -> tuple[int, int]:
    return line_span(text, node.lineno)
