"""The contradiction validators.

Contradictions: sentence pairs inside one text (chosen by `pairs.py`) are checked by the rules
and, when available, the NLI model (both directions; the pair's contradiction probability is the
larger). ProductAttributes: every description sentence against a statement made from each given
attribute ("The Aurora Mug's capacity is 350 ml."). Evidence names both sentences.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from validators.base import Evidence, Report, ValidationContext
from validators.contradiction.pairs import lexical_pairs, similar_pairs
from validators.contradiction.rules import attribute_number_conflict, rule_conflict
from validators.text import Sentence, sentences, words


@dataclass
class Finding:
    a: Sentence
    b: Sentence
    reason: str
    probability: float

    def evidence(self) -> tuple[Evidence, Evidence]:
        return (Evidence(self.a.start, self.a.end, self.a.text, f"contradicts: {self.b.text[:80]}"),
                Evidence(self.b.start, self.b.end, self.b.text, f"contradicts: {self.a.text[:80]}"))


MAX_SENTENCES = 2000
"""Longer texts are checked on their first MAX_SENTENCES distinct sentences (the report says so)."""


def prose_sentences(text: str, min_words: int = 4) -> list[Sentence]:
    """Prose sentences, each distinct text once (a repeated sentence cannot contradict itself)."""
    seen: set[str] = set()
    out = []
    for s in sentences(text):
        if s.text.startswith("#") or len(s.text.split()) < min_words or s.text.lower() in seen:
            continue
        seen.add(s.text.lower())
        out.append(s)
    return out


@dataclass
class Contradictions:
    """Contradictions between sentences of one text."""

    nli: Any = None
    encoder: Any = None
    threshold: float = 0.9
    """NLI contradiction probability (the lower of the two directions) above which a pair is reported."""
    use_rules: bool = True
    neighbours: int = 2
    min_similarity: float = 0.75
    """Only sentences this similar (embedding cosine) are given to the NLI model: real contradictions
    restate the same thing, and the small NLI head calls merely related sentences contradictory far
    too often (measured: 0.97-0.99 on pairs like "Tea contains caffeine..." / "Drinking tea in
    moderation..." at cosine 0.64)."""
    max_pairs: int = 24
    name: str = "contradiction"
    field_name: str | None = None
    """For JSON outputs (product records): check this field's text instead of the raw output."""

    def check(self, text: str, context: ValidationContext) -> Report:
        if self.field_name:
            try:
                text = str(json.loads(text).get(self.field_name, ""))
            except (json.JSONDecodeError, AttributeError):
                return Report(self.name, False, 0.0, f"cannot check: output is not a JSON object with {self.field_name!r}")
        sents = prose_sentences(text)
        truncated = len(sents) > MAX_SENTENCES
        sents = sents[:MAX_SENTENCES]
        findings = find_contradictions(sents, nli=self.nli, encoder=self.encoder, threshold=self.threshold,
                                       use_rules=self.use_rules, k=self.neighbours, min_similarity=self.min_similarity,
                                       max_pairs=self.max_pairs)
        report = findings_report(self.name, findings, checked=len(sents))
        if truncated:
            return Report(report.validator, report.passed, report.score,
                          report.message + f" (checked the first {MAX_SENTENCES} distinct sentences only)",
                          report.evidence, {**report.details, "truncated": True})
        return report


def find_contradictions(sents: list[Sentence], *, nli, encoder, threshold: float, use_rules: bool, k: int,
                        min_similarity: float, max_pairs: int) -> list[Finding]:
    if len(sents) < 2:
        return []
    texts = [s.text for s in sents]
    if encoder is not None:
        pairs = similar_pairs(encoder.encode(texts), k=k, min_similarity=min_similarity, max_pairs=max_pairs)
    else:
        pairs = lexical_pairs(texts, k=k, max_pairs=max_pairs)
    findings: list[Finding] = []
    flagged: set[tuple[int, int]] = set()
    if use_rules:
        # rules are cheap: every selected pair plus lexically overlapping ones
        for i, j, _ in pairs + lexical_pairs(texts, k=k, max_pairs=max_pairs * 2):
            if (i, j) in flagged:
                continue
            reason = rule_conflict(texts[i], texts[j])
            if reason:
                findings.append(Finding(sents[i], sents[j], f"rule: {reason}", 1.0))
                flagged.add((i, j))
    if nli is not None:
        todo = [(i, j) for i, j, _ in pairs if (i, j) not in flagged]
        if todo:
            premises = [texts[i] for i, j in todo] + [texts[j] for i, j in todo]
            hypotheses = [texts[j] for i, j in todo] + [texts[i] for i, j in todo]
            probs = nli.predict(premises, hypotheses)[:, 2]  # contradiction
            n = len(todo)
            for idx, (i, j) in enumerate(todo):
                # contradiction is symmetric: both directions must agree (one direction alone fires
                # on merely related sentences far too often)
                p = min(float(probs[idx]), float(probs[n + idx]))
                if p >= threshold:
                    findings.append(Finding(sents[i], sents[j], f"NLI contradiction p={p:.2f}", p))
    return findings


def findings_report(name: str, findings: list[Finding], checked: int) -> Report:
    if not findings:
        return Report(name, True, 1.0, f"no contradictions among {checked} sentences", details={"sentences": checked})
    findings.sort(key=lambda f: -f.probability)
    evidence = tuple(e for f in findings[:5] for e in f.evidence())
    message = "; ".join(f"{f.a.text[:70]!r} vs {f.b.text[:70]!r} ({f.reason})" for f in findings[:3])
    return Report(name, False, 0.0, f"{len(findings)} contradiction(s): {message}", evidence,
                  {"pairs": [{"a": f.a.text, "b": f.b.text, "reason": f.reason, "probability": round(f.probability, 3)}
                             for f in findings[:10]]})


# Yes/no attribute keys that read as adjectives ("dishwasher safe", "waterproof", "foldable"): the
# statement says the product "is" one. Other keys are things it has ("rain cover", "laptop sleeve"):
# "is rain cover" misled the NLI model, so those say "comes with".
_ADJECTIVE_ENDINGS = ("safe", "proof", "able", "ible", "ed", "ful", "less", "free", "ive", "ant", "ent", "ic",
                      "al", "ous", "stick")


def attribute_statement(product: str, key: str, value: Any) -> str:
    """The sentence the NLI model checks description sentences against, e.g. "The Aurora Travel Mug's
    capacity is 350 ml." or "The Aurora Travel Mug is not dishwasher safe."."""
    if isinstance(value, bool):
        if key.lower().endswith(_ADJECTIVE_ENDINGS):
            return f"The {product} is {'' if value else 'not '}{key}."
        return f"The {product} {'comes' if value else 'does not come'} with {key}."
    return f"The {product}'s {key} is {value}."


@dataclass
class ProductAttributes:
    """Description sentences must not contradict the attributes the product was given."""

    nli: Any = None
    threshold: float = 0.8
    use_rules: bool = True
    fields: tuple[str, ...] = ("tagline", "facts", "description")
    name: str = "product_attributes"

    def check(self, text: str, context: ValidationContext) -> Report:
        try:
            record = json.loads(text)
            assert isinstance(record, dict)
        except (json.JSONDecodeError, AssertionError):
            return Report(self.name, False, 0.0, "cannot check attributes: output is not a JSON object")
        product = str(context.input.get("name", "product"))
        attributes = context.input.get("attributes") or {}
        claims = "\n\n".join(
            "\n\n".join(str(x) for x in record[f]) if isinstance(record.get(f), list) else str(record.get(f, ""))
            for f in self.fields
        )
        name_words = set(words(product))
        # A sentence made only of the product's name (a tagline that repeats it) claims nothing.
        sents = [s for s in prose_sentences(claims, min_words=3) if not set(words(s.text)) <= name_words]
        facts = [Sentence(0, 0, attribute_statement(product, k, v)) for k, v in attributes.items()]
        # (claim, attribute, value, statement) to check; "Weight: 900 g" is about the weight only, so
        # no other attribute can clash with it
        checks = [(s, key, value, fact) for s in sents for (key, value), fact in zip(attributes.items(), facts)
                  if fact_key(s.text, attributes) in (None, key)]
        findings: list[Finding] = []
        for s, key, value, fact in checks if self.use_rules else ():
            reason = attribute_number_conflict(key, value, s.text, attributes) or rule_conflict(fact.text, s.text)
            if reason:
                findings.append(Finding(s, fact, f"rule: {reason}", 1.0))
        # The NLI model reads one claim at a time: on the default model's long sentences ("It is made of
        # steel, and it keeps drinks hot for 6 hours, ensuring ...") it called unrelated attributes
        # contradicted. A sentence's score is its most contradicting clause's.
        pairs = [(s, f, c) for s, _, _, f in checks for c in clauses(s.text)]
        if self.nli is not None and pairs:
            probs = self.nli.predict([f.text for _, f, _ in pairs], [c for _, _, c in pairs])[:, 2]
            worst: dict[tuple[int, int], tuple[float, Sentence, Sentence]] = {}
            for (s, f, _), p in zip(pairs, probs.tolist()):
                if p > worst.get((id(s), id(f)), (-1.0,))[0]:
                    worst[(id(s), id(f))] = (p, s, f)
            for p, s, f in worst.values():
                if p >= self.threshold and not any(x.a is s and x.b is f for x in findings):
                    findings.append(Finding(s, f, f"NLI contradiction p={p:.2f}", p))
        report = findings_report(self.name, findings, checked=len(sents))
        if not report.passed:
            # spans point into the JSON output where the sentence appears verbatim; the attribute
            # statement is not in the output, so it is named in the note
            evidence = tuple(_span_in(text, f.a.text, f"contradicts the attribute: {f.b.text}") for f in findings[:5])
            return Report(report.validator, False, 0.0, report.message, evidence, report.details)
        return report


# Where a long sentence joins one claim to the next: ", and it ...", ", which ...", ", making ...", "; ".
_CLAUSE_BREAK = re.compile(r",\s+(?:and|but|while|which|making|ensuring|offering|providing|so|as well as)\s+|;\s+")


def clauses(sentence: str) -> list[str]:
    """The claims of one sentence; the sentence itself when it does not split into clauses of 3+ words."""
    parts = [p.strip(" ,;.") for p in _CLAUSE_BREAK.split(sentence)]
    kept = [p for p in parts if len(p.split()) >= 3]
    return kept if len(kept) > 1 else [sentence]


def fact_key(sentence: str, attributes: dict[str, Any]) -> str | None:
    """The attribute a "Key: value" fact is about ("Weight: 900 g" -> "weight"), if its key names one."""
    head, colon, _ = sentence.partition(":")
    if not colon:
        return None
    wanted = " ".join(words(head))
    return next((k for k in attributes if " ".join(words(k)) == wanted), None)


def _span_in(text: str, sentence: str, note: str) -> Evidence:
    at = text.find(sentence)
    return Evidence(at, at + len(sentence), sentence, note) if at >= 0 else Evidence(0, 0, sentence, note)
