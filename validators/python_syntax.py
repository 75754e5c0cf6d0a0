"""Python syntax: the code must parse and compile; the failing line is reported."""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass

from validators.base import Evidence, Report, ValidationContext, line_span


@dataclass(frozen=True)
class PythonSyntax:
    name: str = "python_syntax"

    def check(self, text: str, context: ValidationContext) -> Report:
        if not text.strip():
            return Report(self.name, False, 0.0, "no code: the output is empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                tree = ast.parse(text)
                compile(tree, "<generated>", "exec")
        except SyntaxError as e:
            line = e.lineno or 1
            start, end = line_span(text, line)
            return Report(
                self.name, False, 0.0,
                f"line {line}: {e.msg}",
                (Evidence(start, end, text[start:end], e.msg),),
                {"line": line, "offset": e.offset},
            )
        except (ValueError, RecursionError, MemoryError) as e:  # e.g. NUL bytes, absurd nesting
            return Report(self.name, False, 0.0, f"cannot compile: {e}")
        functions = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return Report(self.name, True, 1.0, "parses and compiles", details={"functions": functions})
