"""Contradiction rules, pair selection, JSON-field wrapper and the registry (no NLI model needed)."""

from __future__ import annotations

import json

import pytest
import torch

from validators.base import ValidationContext
from validators.contradiction.pairs import lexical_pairs, similar_pairs
from validators.contradiction.rules import antonym_conflict, negation_conflict, number_conflict, quantities
from validators.contradiction.validator import Contradictions, ProductAttributes
from validators.degeneration import Degeneration
from validators.json_field import OnJsonField
from validators.registry import KIND_VALIDATORS, ValidatorSettings, build_validators


@pytest.mark.parametrize("a, b, rule", [
    ("The lamp has five brightness levels.", "The lamp does not have five brightness levels.", negation_conflict),
    ("The Aurora Mug is dishwasher safe.", "The Aurora Mug is not dishwasher safe.", negation_conflict),
    ("The strap is adjustable.", "The strap isn't adjustable at all.", negation_conflict),
    ("The mug holds 350 ml of coffee.", "The mug holds 500 ml of coffee.", number_conflict),
    ("The lamp has 5 brightness levels.", "The lamp has 7 brightness levels.", number_conflict),
    ("The backpack weighs 900 g and is light.", "The backpack weighs 900 g and is heavy.", antonym_conflict),
])
def test_rules_find_contradictions(a, b, rule):
    assert rule(a, b) is not None and rule(b, a) is not None


@pytest.mark.parametrize("a, b", [
    ("The mug holds 350 ml of coffee.", "The mug holds 350 ml of tea or coffee."),
    ("The lamp is bright.", "Our shop opens at nine every day."),
    ("The mug holds 350 ml.", "The kettle takes 1.7 l of water and boils fast."),
    ("Tea is not coffee.", "Bicycles do not need fuel."),
    # a fragment naming the subject says nothing about the negated property
    ("Aurora Travel Mug", "The Aurora Travel Mug is not dishwasher safe."),
    ("The Lumo Desk Lamp is bright", "The Lumo Desk Lamp is not heavy."),
])
def test_rules_do_not_fire_on_consistent_or_unrelated_sentences(a, b):
    assert negation_conflict(a, b) is None and number_conflict(a, b) is None and antonym_conflict(a, b) is None


def test_quantities_normalise_units():
    assert quantities("It holds 0.5 litres, weighs 900 g and lasts 6 hours") == {"l": {0.5}, "g": {900.0}, "h": {6.0}}


def test_similar_pairs_are_bounded_and_ranked():
    emb = torch.nn.functional.normalize(torch.randn(50, 16), dim=-1)
    pairs = similar_pairs(emb, k=3, min_similarity=-1.0, max_pairs=1000)
    assert len(pairs) <= 50 * 3 and all(i < j for i, j, _ in pairs)
    assert [s for *_, s in pairs] == sorted((s for *_, s in pairs), reverse=True)


def test_lexical_pairs_link_sentences_sharing_words():
    pairs = lexical_pairs(["The mug holds coffee.", "Bikes are fast.", "The mug holds tea."], k=2)
    assert (0, 2) in {(i, j) for i, j, _ in pairs}


def test_rules_only_contradiction_validator_reports_both_sentences():
    text = "The mug holds 350 ml of coffee. It is made of steel. The mug holds 500 ml of coffee."
    report = Contradictions(nli=None, encoder=None).check(text, ValidationContext(kind="article"))
    assert not report.passed
    spans = {text[e.start:e.end] for e in report.evidence}
    assert spans == {"The mug holds 350 ml of coffee.", "The mug holds 500 ml of coffee."}
    assert Contradictions().check("The mug is steel. It holds coffee well.", ValidationContext(kind="article")).passed


def test_product_attributes_rules():
    record = {"title": "Aurora Mug", "tagline": "Hot drinks, all day.", "facts": ["Holds 500 ml", "Steel body", "Blue"],
              "description": "The Aurora Mug is dishwasher safe. It keeps drinks hot for 6 hours."}
    ctx = ValidationContext(kind="product", input={"name": "Aurora Mug", "attributes": {
        "capacity": "350 ml", "dishwasher safe": False, "keeps drinks hot": "6 hours"}})
    text = json.dumps(record)
    report = ProductAttributes(nli=None).check(text, ctx)
    assert not report.passed
    flagged = {e.text for e in report.evidence}
    assert "The Aurora Mug is dishwasher safe." in flagged and "Holds 500 ml" in flagged
    assert all(text[e.start:e.end] == e.text for e in report.evidence)
    assert "6 hours" not in " ".join(flagged)
    assert not ProductAttributes().check("not json", ctx).passed


def test_json_field_wrapper():
    v = OnJsonField(Degeneration(min_words=3), "description")
    good = json.dumps({"description": "A sturdy mug that keeps coffee hot."})
    assert v.check(good, ValidationContext(kind="product")).passed
    assert v.name == "degeneration[description]"
    assert "cannot check" in v.check("[1, 2]", ValidationContext(kind="product")).message


def test_registry_builds_each_kind_and_honours_settings():
    settings = ValidatorSettings(nli_model="none")
    for kind, names in KIND_VALIDATORS.items():
        built = build_validators(kind, settings)
        assert len(built) == len(names)
    code = build_validators("code", ValidatorSettings(nli_model="none", disabled=frozenset({"sandbox_tests"})))
    assert [v.name for v in code] == ["python_syntax", "signature_kept", "hollow_code"]
    with pytest.raises(ValueError, match="unknown validators"):
        ValidatorSettings(disabled=frozenset({"spellcheck"}))
    with pytest.raises(ValueError, match="contradiction_threshold must be in"):
        ValidatorSettings(contradiction_threshold=0)
    with pytest.raises(ValueError, match="unknown content kind"):
        build_validators("poem")


def test_similar_pairs_on_long_texts_stay_local_and_bounded():
    from validators.contradiction.pairs import WINDOW

    emb = torch.nn.functional.normalize(torch.randn(3 * WINDOW + 17, 8), dim=-1)
    pairs = similar_pairs(emb, k=2, min_similarity=-1.0, max_pairs=100_000)
    assert pairs and all(j - i <= 2 * WINDOW for i, j, _ in pairs)
    assert len(pairs) <= emb.shape[0] * 2


def test_repeated_sentences_are_checked_once():
    from validators.contradiction.validator import prose_sentences

    text = "The mug holds coffee well. " * 1000 + "The lid seals tightly."
    assert [s.text for s in prose_sentences(text)] == ["The mug holds coffee well.", "The lid seals tightly."]


class RecordingNli:
    """Stands in for the NLI model to show which (attribute statement, claim) pairs reach it; calls
    a claim a contradiction when it contains `contradicting`."""

    name = "recording"

    def __init__(self, contradicting: str = "\0"):
        self.pairs: list[tuple[str, str]] = []
        self.contradicting = contradicting

    def predict(self, premises, hypotheses):
        import torch

        self.pairs += list(zip(premises, hypotheses))
        return torch.tensor([[0.0, 0.0, 1.0] if self.contradicting in h else [0.0, 1.0, 0.0] for h in hypotheses])


def test_product_attributes_checks_key_value_facts_against_their_own_attribute_only():
    attributes = {"weight": "900 g", "colour": "red", "rain cover": True}
    record = {"title": "Trailhead Pack", "tagline": "Trailhead Pack",
              "facts": ["Weight: 900 g", "Colour: red", "Rain cover: yes"], "description": "It is a great bag for hikes."}
    nli = RecordingNli()
    report = ProductAttributes(nli=nli).check(json.dumps(record), ValidationContext(
        kind="product", input={"name": "Trailhead Pack", "attributes": attributes}))
    assert report.passed, report.message
    checked = {(p, h) for p, h in nli.pairs}
    assert ("The Trailhead Pack's weight is 900 g.", "Weight: 900 g") in checked
    assert ("The Trailhead Pack's colour is red.", "Weight: 900 g") not in checked
    assert ("The Trailhead Pack comes with rain cover.", "Rain cover: yes") in checked
    assert not any(h == "Trailhead Pack" for _, h in checked)  # a tagline that only names the product
    # prose is still checked against every attribute
    assert sum(h == "It is a great bag for hikes." for _, h in checked) == 3


def test_product_attributes_scores_each_clause_of_a_long_sentence():
    from validators.contradiction.validator import clauses

    long = "It is made of steel, and it holds 500 ml, making it a perfect choice for commuters."
    assert clauses(long) == ["It is made of steel", "it holds 500 ml", "it a perfect choice for commuters"]
    assert clauses("It weighs 2 kg.") == ["It weighs 2 kg."]
    nli = RecordingNli(contradicting="holds 500 ml")
    record = {"title": "Mug", "tagline": "A mug for the road.", "facts": ["Steel body", "Red", "Big"], "description": long}
    report = ProductAttributes(nli=nli, use_rules=False).check(json.dumps(record), ValidationContext(
        kind="product", input={"name": "Mug", "attributes": {"capacity": "350 ml"}}))
    assert not report.passed
    assert [e.text for e in report.evidence] == [long]  # evidence is the whole sentence
    assert ("The Mug's capacity is 350 ml.", "it holds 500 ml") in nli.pairs
