"""Content kinds: one small module each (input fields, prompts, assembly, validators)."""

from __future__ import annotations

from pipeline.kinds.article import ARTICLE
from pipeline.kinds.base import ContentKind, Prompt
from pipeline.kinds.code import CODE
from pipeline.kinds.product import PRODUCT

KINDS: dict[str, ContentKind] = {k.name: k for k in (ARTICLE, PRODUCT, CODE)}


def get_kind(name: str) -> ContentKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown content kind {name!r}; expected one of {sorted(KINDS)}") from None


__all__ = ["KINDS", "ContentKind", "Prompt", "get_kind"]
