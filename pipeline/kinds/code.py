"""`code`: a Python function from a prompt (signature + docstring, or task text), with optional tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.kinds.base import Prompt
from pipeline.text import strip_chat_artifacts
from validators.python_syntax import PythonSyntax

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The first fenced code block if there is one, else the text itself."""
    m = FENCE.search(text)
    return (m.group(1) if m else text).strip("\n") + "\n"


@dataclass(frozen=True)
class Code:
    name: str = "code"
    max_new_tokens: int = 256

    def ar_prompt(self, job_input: dict[str, Any]) -> Prompt:
        tests = job_input.get("tests") or []
        test_text = ("\nIt must pass these tests:\n" + "\n".join(tests[:3])) if tests else ""
        return Prompt(
            user=f"Write a Python function for this task. Reply with only the code.\n{job_input['prompt']}{test_text}",
            assistant_prefix="```python\n",
        )

    def finish_ar(self, raw: str, job_input: dict[str, Any]) -> str:
        return extract_code(strip_chat_artifacts(raw))

    def validators(self):
        return [PythonSyntax()]


CODE = Code()
