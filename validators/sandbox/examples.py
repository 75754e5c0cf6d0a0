"""The doctest-style examples a user wrote in a code prompt, as tests the sandbox runs.

    >>> add(1, 2)          ──►   assert add(1, 2) == 3
    3

The user's examples are tests they wrote; they are run like the job's own `tests` (SandboxTests).
An example counts only when its expected output is a Python value (a repr): printed output, an
expected exception, doctest directives and `...` ellipses are skipped, because `==` cannot decide
them. What shows no output (`>>> xs = [3, 1]`, `>>> xs.sort()`) is setup: it is put before each later
example that uses a name it sets or changes.
"""

from __future__ import annotations

import ast
import doctest
import re

_QUOTES = re.compile(r"""^\s*[rRuUbB]?("{3}|'{3})""")
_DIRECTIVE = re.compile(r"#\s*doctest:")


def example_tests(prompt: str) -> list[str]:
    """`assert <call> == <expected>` for each usable example, each after the setup statements before it."""
    try:
        examples = doctest.DocTestParser().get_examples(prompt)
    except ValueError:  # inconsistent indentation inside an example: not a doctest we can read
        return []
    setup: list[str] = []
    tests: list[str] = []
    for example in examples:
        source = example.source.strip()
        want = _expected(example.want)
        if example.exc_msg is not None or _DIRECTIVE.search(source) or not _parses(source, "exec"):
            continue
        if not want:  # a statement, or a call that returned None (its effect may matter later)
            setup.append(source)
            continue
        if "..." in want or not _parses(source, "eval") or not _parses(want, "eval") or _is_print(source):
            continue
        test = f"assert {_grouped(source)} == {_grouped(want)}"
        tests.append("\n".join([*_needed(setup, source), test]))
    return tests


def _needed(setup: list[str], source: str) -> list[str]:
    """The setup that sets a name the example uses, or changes one set there (`xs.sort()`), and what
    that needs in turn, in order; an example that needs none stays a single assert the sandbox's judge
    decides by itself."""
    local = set().union(*(_names(s, ast.Store) for s in setup))
    wanted = _names(source, ast.Load)
    keep: list[str] = []
    for statement in reversed(setup):
        changed = _names(statement, ast.Load) & local if _parses(statement, "eval") else set()
        if (_names(statement, ast.Store) | changed) & wanted:
            keep.append(statement)
            wanted |= _names(statement, ast.Load)
    return keep[::-1]


def _names(source: str, context: type) -> set[str]:
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, context)}
    if context is ast.Store:  # imports, functions and classes define names too
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        names |= {(a.asname or a.name).split(".")[0] for n in imports for a in n.names}
        names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return names


def _expected(want: str) -> str:
    """The expected value's text: lines up to the docstring's closing quotes (doctest reads a
    closing `\"\"\"` at the example's indentation as more output), joined."""
    lines = []
    for line in want.splitlines():
        if _QUOTES.match(line):
            break
        end = re.search(r"""("{3}|'{3})\s*$""", line)
        lines.append(line[:end.start()] if end else line)
        if end:
            break
    return "\n".join(lines).strip()


def _parses(text: str, mode: str) -> bool:
    try:
        ast.parse(text, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _is_print(source: str) -> bool:
    node = ast.parse(source, mode="eval").body
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"


def _grouped(expr: str) -> str:
    """The expression as one operand of `==`: a comparison or a lambda keeps its meaning, and a comment
    or a line break in it (`f(1)  # note`, a call over two lines) can swallow nothing after it."""
    node = ast.parse(expr, mode="eval").body
    if "#" in expr or "\n" in expr:
        return f"({ast.unparse(node)})"
    simple = (ast.Constant, ast.Name, ast.Call, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.Attribute, ast.Subscript)
    return expr if isinstance(node, simple) else f"({expr})"
