"""`product`: a JSON product record (title, tagline, facts, description) from given attributes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.kinds.base import Prompt
from pipeline.text import strip_chat_artifacts
from validators.json_syntax import JsonSyntax

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "tagline": {"type": "string", "minLength": 1, "maxLength": 300},
        "facts": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 3, "maxItems": 5},
        "description": {"type": "string", "minLength": 1},
    },
    "required": ["title", "tagline", "facts", "description"],
    "additionalProperties": False,
}


def attribute_lines(job_input: dict[str, Any]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in job_input["attributes"].items())


@dataclass(frozen=True)
class Product:
    name: str = "product"
    max_new_tokens: int = 256

    def ar_prompt(self, job_input: dict[str, Any]) -> Prompt:
        return Prompt(
            user=(
                f"Write a product record for \"{job_input['name']}\" as JSON with the keys "
                "\"title\", \"tagline\", \"facts\" (a list of 3 to 5 short facts taken from the attributes) "
                "and \"description\" (one paragraph). Use only these attributes:\n"
                f"{attribute_lines(job_input)}"
            ),
            assistant_prefix='{"title": "',
        )

    def finish_ar(self, raw: str, job_input: dict[str, Any]) -> str:
        text = strip_chat_artifacts(raw).strip()
        # Keep the first complete JSON object if the model rambles on after it.
        try:
            value, end = json.JSONDecoder().raw_decode(text)
            return json.dumps(value, ensure_ascii=False, indent=2)
        except json.JSONDecodeError:
            return text

    def validators(self):
        return [JsonSyntax(RECORD_SCHEMA)]


PRODUCT = Product()
