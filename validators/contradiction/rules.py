"""Rule-based contradiction checks between two sentences about the same thing.

Cheap, explainable, and independent of the NLI model:
- negation: highly overlapping sentences where exactly one is negated;
- numbers: the same quantity (unit, or the noun after the number) with different values;
- antonyms: overlapping sentences that differ by a word and its antonym (a small curated list).
Each returns a short reason, or None.
"""

from __future__ import annotations

import re

from validators.text import content_words, jaccard, words

NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "cannot", "without"})
UNITS = {
    "ml": "ml", "millilitres": "ml", "milliliters": "ml", "l": "l", "litre": "l", "litres": "l", "liter": "l",
    "liters": "l", "kg": "kg", "kilograms": "kg", "g": "g", "grams": "g", "mg": "mg", "cm": "cm", "mm": "mm",
    "m": "m", "metres": "m", "meters": "m", "km": "km", "inch": "in", "inches": "in", "in": "in", "h": "h",
    "hour": "h", "hours": "h", "hrs": "h", "min": "min", "minutes": "min", "s": "s", "seconds": "s", "w": "w",
    "watts": "w", "v": "v", "volts": "v", "%": "%", "percent": "%", "gb": "gb", "tb": "tb", "mb": "mb",
    "years": "year", "year": "year", "days": "day", "day": "day", "k": "k", "mah": "mah", "db": "db",
    "degrees": "deg", "°c": "c", "c": "c", "f": "f", "lb": "lb", "lbs": "lb", "pounds": "lb", "oz": "oz",
}
ANTONYMS = [
    ("hot", "cold"), ("warm", "cool"), ("light", "heavy"), ("large", "small"), ("big", "small"), ("tall", "short"),
    ("long", "short"), ("wide", "narrow"), ("thick", "thin"), ("fast", "slow"), ("quick", "slow"), ("early", "late"),
    ("old", "new"), ("young", "old"), ("cheap", "expensive"), ("high", "low"), ("increase", "decrease"),
    ("increases", "decreases"), ("rise", "fall"), ("rises", "falls"), ("open", "closed"), ("on", "off"),
    ("full", "empty"), ("wet", "dry"), ("hard", "soft"), ("strong", "weak"), ("safe", "dangerous"),
    ("easy", "difficult"), ("easy", "hard"), ("simple", "complex"), ("true", "false"), ("always", "never"),
    ("all", "none"), ("more", "less"), ("most", "least"), ("best", "worst"), ("better", "worse"), ("good", "bad"),
    ("positive", "negative"), ("win", "lose"), ("won", "lost"), ("accept", "reject"), ("allow", "forbid"),
    ("allowed", "forbidden"), ("include", "exclude"), ("includes", "excludes"), ("included", "excluded"),
    ("present", "absent"), ("inside", "outside"), ("above", "below"), ("before", "after"), ("first", "last"),
    ("start", "end"), ("begin", "end"), ("add", "remove"), ("buy", "sell"), ("import", "export"),
    ("waterproof", "leaky"), ("durable", "fragile"), ("quiet", "loud"), ("bright", "dim"), ("dark", "bright"),
    ("heavy", "lightweight"), ("rigid", "flexible"), ("sweet", "bitter"), ("rare", "common"), ("public", "private"),
    ("male", "female"), ("indoor", "outdoor"), ("inside", "outdoors"), ("asleep", "awake"), ("sleeping", "awake"),
    ("sitting", "standing"), ("happy", "sad"), ("alive", "dead"), ("clean", "dirty"), ("rich", "poor"),
    ("success", "failure"), ("succeeded", "failed"), ("possible", "impossible"), ("legal", "illegal"),
    ("visible", "invisible"), ("available", "unavailable"), ("compatible", "incompatible"), ("safe", "unsafe"),
]
_ANTONYM: dict[str, set[str]] = {}
for a, b in ANTONYMS:
    _ANTONYM.setdefault(a, set()).add(b)
    _ANTONYM.setdefault(b, set()).add(a)

_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)?)\s*(%|°c|[a-zA-Z]+)?")


def is_negated(text: str) -> bool:
    ws = words(text)
    return any(w in NEGATIONS or w.endswith("n't") for w in ws)


def negation_conflict(a: str, b: str, min_overlap: float = 0.6, max_unshared: int = 1) -> str | None:
    """One sentence negates the other: they say the same thing (high overlap; one sentence's content
    words all appear in the other, which adds at most `max_unshared`) and exactly one is negated.

    The second condition matters for fragments: a product's tagline "Aurora Travel Mug" shares 3 of
    5 words with "The Aurora Travel Mug is not dishwasher safe." but says nothing about dishwashers.
    """
    if is_negated(a) == is_negated(b):
        return None
    ca, cb = _affirmed_words(a), _affirmed_words(b)
    overlap = jaccard(ca, cb)
    only_a, only_b = len(ca - cb), len(cb - ca)
    if overlap >= min_overlap and min(only_a, only_b) == 0 and max(only_a, only_b) <= max_unshared:
        return f"negation of a highly overlapping sentence (word overlap {overlap:.0%})"
    return None


def _affirmed_words(text: str) -> set[str]:
    """Content words without the negation itself ("isn't" is what differs, not what is said)."""
    return {w for w in content_words(text) if w not in NEGATIONS and not w.endswith("n't")}


def quantities(text: str) -> dict[str, set[float]]:
    """unit (or the noun after a bare number) -> values mentioned."""
    out: dict[str, set[float]] = {}
    for m in _QUANTITY.finditer(text.lower()):
        raw, unit = m.group(1), (m.group(2) or "")
        try:
            value = float(raw.replace(",", "")) if raw.count(",") and len(raw.split(",")[-1]) == 3 else float(raw.replace(",", "."))
        except ValueError:
            continue
        key = UNITS.get(unit, unit)
        if key:
            out.setdefault(key, set()).add(value)
    return out


def number_conflict(a: str, b: str, min_overlap: float = 0.4) -> str | None:
    qa, qb = quantities(a), quantities(b)
    shared = set(qa) & set(qb)
    if not shared:
        return None
    overlap = jaccard(content_words(a) - set(qa), content_words(b) - set(qb))
    if overlap < min_overlap:
        return None
    for unit in sorted(shared):
        if qa[unit].isdisjoint(qb[unit]):
            return f"different numbers for the same quantity: {sorted(qa[unit])} vs {sorted(qb[unit])} {unit}".rstrip()
    return None


def antonym_conflict(a: str, b: str, min_overlap: float = 0.4) -> str | None:
    wa, wb = set(words(a)), set(words(b))
    if jaccard(content_words(a), content_words(b)) < min_overlap:
        return None
    for w in wa - wb:
        for opposite in _ANTONYM.get(w, ()):
            if opposite in wb and opposite not in wa:
                return f"antonyms in otherwise similar sentences: {w!r} vs {opposite!r}"
    return None


RULES = (negation_conflict, number_conflict, antonym_conflict)


def rule_conflict(a: str, b: str) -> str | None:
    for rule in RULES:
        reason = rule(a, b)
        if reason:
            return reason
    return None


def attribute_number_conflict(key: str, value, sentence: str, attributes: dict) -> str | None:
    """A sentence quoting a quantity in the attribute's unit with another value. The subject is the
    product itself, so overlap is not required, but the unit must be unambiguous: named by the
    attribute's key in the sentence, or used by no other attribute."""
    expected = quantities(str(value))
    if not expected:
        return None
    said = quantities(sentence)
    key_words = content_words(key)
    for unit, values in expected.items():
        if unit not in said or not said[unit].isdisjoint(values):
            continue
        others = [k for k, v in attributes.items() if k != key and unit in quantities(str(v))]
        if not others or key_words & content_words(sentence):
            return f"{key} is {value}, the text says {sorted(said[unit])} {unit}"
    return None
