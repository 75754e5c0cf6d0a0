"""What a `code` job asks for, read from its input: the function's signature and name.

Shared by the kind (pipeline/kinds/code.py, which plans around them) and the validators that check
that the delivered function is the one asked for (signature_kept, hollow_code).
"""

from __future__ import annotations

import re
from typing import Any

from validators.sandbox.examples import example_tests

SIGNATURE_LINE = re.compile(r"^\s*(def\s+[A-Za-z_]\w*\s*\(.*\)\s*(?:->\s*[^:]+)?:)\s*$", re.MULTILINE)
BUILTIN_CALLS = {"set", "sorted", "list", "tuple", "abs", "round", "len", "math", "str", "int", "float", "isclose",
                 "all", "any", "sum", "dict"}


def last_signature(prompt: str) -> re.Match | None:
    """The prompt's last `def` line: the function to complete (helpers the user wrote come before it)."""
    matches = list(SIGNATURE_LINE.finditer(prompt))
    return matches[-1] if matches else None


def given_signature(job_input: dict[str, Any]) -> str | None:
    m = last_signature(job_input["prompt"])
    return m.group(1).strip() if m else None


def expected_name(job_input: dict[str, Any]) -> str | None:
    """The function the job asks for: the prompt's signature's, else the one its tests (or the
    prompt's examples) call."""
    sig = last_signature(job_input["prompt"])
    if sig:
        return re.match(r"\s*def\s+(\w+)", sig.group(1)).group(1)
    for test in [*(job_input.get("tests") or []), *example_tests(job_input["prompt"])]:
        m = re.search(r"^\s*assert\s+(?:not\s+)?\(?\s*(?:set\()?([A-Za-z_]\w*)\s*\(", test, re.MULTILINE)
        if m and m.group(1) not in BUILTIN_CALLS:
            return m.group(1)
    return None
