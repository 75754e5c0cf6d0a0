"""Which validators each content kind runs, built from one settings dataclass.

Heavy pieces (the MiniLM encoder, the NLI model) are loaded once per process and shared by every
validator that needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from validators.base import Validator
from validators.category import CategoryError
from validators.degeneration import Degeneration
from validators.garbled import Garbled
from validators.hollow_code import HollowCode
from validators.json_field import OnJsonField
from validators.json_syntax import JsonSyntax
from validators.markdown_structure import MarkdownStructure
from validators.meta_debris import MetaDebris
from validators.python_syntax import PythonSyntax
from validators.sandbox.runner import Limits
from validators.sandbox.validator import SandboxTests
from validators.signature_kept import SignatureKept
from validators.topicality import Topicality

log = logging.getLogger(__name__)

KIND_VALIDATORS: dict[str, tuple[str, ...]] = {
    "article": ("markdown_structure", "degeneration", "meta_debris", "garbled", "topicality", "contradiction"),
    "product": ("json_schema", "degeneration", "meta_debris", "garbled", "category", "product_attributes",
                "contradiction"),
    "code": ("python_syntax", "signature_kept", "hollow_code", "sandbox_tests"),
}
ALL_VALIDATORS = ("markdown_structure", "degeneration", "meta_debris", "garbled", "topicality", "category",
                  "contradiction", "json_schema", "product_attributes", "python_syntax", "signature_kept",
                  "hollow_code", "sandbox_tests")


@dataclass(frozen=True)
class ValidatorSettings:
    disabled: frozenset[str] = frozenset()
    """Validators turned off everywhere (names from ALL_VALIDATORS)."""
    nli_model: str = "default"
    """'default' (MiniLM cross-encoder + shipped head), 'none' (rules only), or an HF NLI model path."""
    contradiction_threshold: float = 0.9
    attribute_threshold: float = 0.8
    topic_threshold: float = 0.25
    """Cosine (MiniLM) to the topic under which a sentence is off-topic (tuned on the defect set's dev half)."""
    use_rules: bool = True
    sandbox: Limits = field(default_factory=Limits)
    min_words: tuple[tuple[str, int], ...] = (("article", 60), ("product", 15))
    """Fewest words an output of each kind may have (degeneration check)."""

    def __post_init__(self):
        unknown = set(self.disabled) - set(ALL_VALIDATORS)
        if unknown:
            raise ValueError(f"unknown validators {sorted(unknown)}; known: {', '.join(ALL_VALIDATORS)}")
        for name in ("contradiction_threshold", "attribute_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")


@lru_cache(maxsize=4)
def nli_model(spec: str) -> Any:
    if spec == "none":
        return None
    from validators.contradiction.nli import HfNli, MiniLmNli

    return MiniLmNli() if spec == "default" else HfNli(spec)


@lru_cache(maxsize=1)
def sentence_encoder() -> Any:
    from validators.contradiction.encoder import SentenceEncoder

    return SentenceEncoder()


def build_validators(kind: str, settings: ValidatorSettings = ValidatorSettings(),
                     schema: dict | None = None) -> list[Validator]:
    if kind not in KIND_VALIDATORS:
        raise ValueError(f"unknown content kind {kind!r}; expected one of {sorted(KIND_VALIDATORS)}")
    out: list[Validator] = []
    for name in KIND_VALIDATORS[kind]:
        if name in settings.disabled:
            continue
        out.append(_build(name, kind, settings, schema))
    return out


def _build(name: str, kind: str, s: ValidatorSettings, schema: dict | None) -> Validator:
    from validators.contradiction.validator import Contradictions, ProductAttributes

    if name == "markdown_structure":
        return MarkdownStructure()
    if name == "degeneration":
        d = Degeneration(min_words=dict(s.min_words).get(kind, 8))
        return OnJsonField(d, "description") if kind == "product" else d
    if name == "json_schema":
        return JsonSyntax(schema)
    if name == "python_syntax":
        return PythonSyntax()
    if name == "meta_debris":
        return MetaDebris()
    if name == "garbled":
        return Garbled()
    if name == "category":
        return CategoryError()
    if name == "signature_kept":
        return SignatureKept()
    if name == "hollow_code":
        return HollowCode()
    if name == "sandbox_tests":
        return SandboxTests(s.sandbox)
    if name == "topicality":
        return Topicality(sentence_encoder(), threshold=s.topic_threshold)
    nli = nli_model(s.nli_model)
    if name == "product_attributes":
        return ProductAttributes(nli=nli, threshold=s.attribute_threshold, use_rules=s.use_rules)
    if name == "contradiction":
        encoder = sentence_encoder() if nli is not None else None
        return Contradictions(nli=nli, encoder=encoder, threshold=s.contradiction_threshold, use_rules=s.use_rules,
                              field_name="description" if kind == "product" else None)
    raise ValueError(f"unknown validator {name!r}")
