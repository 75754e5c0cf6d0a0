"""Small text helpers shared by the content kinds."""

from __future__ import annotations

import re

_CHAT_TOKENS = re.compile(r"<\|(?:im_start|im_end|endoftext|mask)\|>")


def strip_chat_artifacts(text: str) -> str:
    """Cut the text at the first chat control token (a model that runs past its turn)."""
    m = _CHAT_TOKENS.search(text)
    return text[: m.start()] if m else text
