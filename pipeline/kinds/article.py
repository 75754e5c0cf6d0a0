"""`article`: a Markdown article on a topic for an audience, in 2-6 sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.kinds.base import Prompt
from pipeline.text import strip_chat_artifacts


def section_request(job_input: dict[str, Any]) -> str:
    sections = job_input.get("sections", 4)
    if isinstance(sections, list):
        return "Use exactly these section headings, in this order: " + "; ".join(sections) + "."
    return f"Use exactly {sections} sections."


@dataclass(frozen=True)
class Article:
    name: str = "article"
    max_new_tokens: int = 320

    def ar_prompt(self, job_input: dict[str, Any]) -> Prompt:
        return Prompt(
            user=(
                f"Write a short article in Markdown about {job_input['topic']} for {job_input['audience']}. "
                f"Start with a '# ' title line. {section_request(job_input)} "
                "Begin each section with a '## ' heading followed by one paragraph."
            ),
            assistant_prefix="# ",
        )

    def finish_ar(self, raw: str, job_input: dict[str, Any]) -> str:
        return strip_chat_artifacts(raw).strip() + "\n"

    def validators(self):
        return []


ARTICLE = Article()
