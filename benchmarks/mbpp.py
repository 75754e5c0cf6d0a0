"""MBPP jobs for the benchmarks, in two shapes, and hidden-test scoring.

    visible_jobs(tasks)  the task text as the prompt, its tests given to the pipeline (MBPP style)
    hidden_jobs(tasks)   the held-out shape: a signature and a docstring holding the task text and one
                         example; the pipeline sees no tests (the example is the user's own, and runs
                         as one); `hidden_pass` scores the output afterwards against all of the task's tests

The tasks are a deterministic sample of the test split (task ids 11-510) of ../shared/data/mbpp.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

MBPP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"


def mbpp_tasks(n: int, offset: int = 0) -> list[dict]:
    """n tasks spread over the test split: every (500 // n)th from id 11 + offset."""
    if n <= 0 or not MBPP.exists():
        return []
    tasks = [json.loads(line) for line in MBPP.read_text().splitlines() if line.strip()]
    step = max(1, 500 // n)
    return [t for t in tasks if 11 <= t["task_id"] <= 510 and (t["task_id"] - 11 - offset) % step == 0][:n]


def visible_jobs(tasks: list[dict]) -> list[dict]:
    return [{"kind": "code", "input": {"prompt": t["text"], "tests": t["test_list"],
                                       "test_setup": t.get("test_setup_code", "")}} for t in tasks]


def hidden_jobs(tasks: list[dict]) -> list[dict]:
    """One job per task that has a recoverable signature (see `hidden_prompt`)."""
    jobs = []
    for t in tasks:
        prompt = hidden_prompt(t)
        if prompt is not None:
            jobs.append({"kind": "code", "input": {"prompt": prompt}, "hidden": t})
    return jobs


def hidden_prompt(task: dict) -> str | None:
    """`def name(args):` from the reference solution, then a docstring: the task text and the first
    test as a doctest example. None when the tested function's header or its example can't be read."""
    first = task["test_list"][0]
    call = re.match(r"\s*assert\s+(.+?)\s*==\s*(.+)$", first)
    name = _called_name(first)
    header = re.search(rf"^def {re.escape(name)}\(.*\):", task["code"].replace("\r", ""), re.M) if name else None
    if call is None or header is None:
        return None
    example, expected = call.group(1).strip(), call.group(2).strip()
    if example.startswith("(") and example.endswith(")") and _parses(example[1:-1]):
        example = example[1:-1]
    if not (_parses(example) and _parses(expected)):
        return None
    text = task["text"].strip()
    return f'{header.group(0)}\n    """{text}\n\n    >>> {example}\n    {expected}\n    """\n'


def hidden_pass(code: str, task: dict) -> bool:
    """Whether `code` passes every one of the task's tests, in the same sandbox as the pipeline's."""
    from validators.sandbox.runner import Limits, run_tests

    if not code.strip():
        return False
    return bool(run_tests(code, task["test_list"], task.get("test_setup_code", ""), Limits()).passed)


def _called_name(test: str) -> str | None:
    try:
        tree = ast.parse(test.strip())
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in {
                "set", "sorted", "list", "tuple", "abs", "round", "math", "str", "int", "float", "len"}:
            return node.func.id
    return None


def _parses(expr: str) -> bool:
    try:
        ast.parse(expr, mode="eval")
        return True
    except SyntaxError:
        return False
