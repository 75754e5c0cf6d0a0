"""The NLI-backed validators with the shipped MiniLM head, the HF adapter's label mapping, and
every validator's behaviour on malformed text (empty, huge, odd characters)."""

from __future__ import annotations

import json

import pytest

from validators.base import Report, ValidationContext
from validators.registry import KIND_VALIDATORS, ValidatorSettings, build_validators, nli_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nli():
    return nli_model("default")


def test_default_nli_separates_clear_cases(nli):
    probs = nli.predict(
        ["A man is sleeping on a couch.", "A woman plays the violin on stage.", "Two dogs run on a beach."],
        ["A man is running a marathon.", "A woman is making music.", "The dogs are at the vet."],
    )
    labels = probs.argmax(-1).tolist()
    assert labels[0] == 2 and labels[1] == 0  # contradiction, entailment
    assert probs.shape == (3, 3) and abs(float(probs.sum(-1).mean()) - 1) < 1e-5


def test_contradiction_validator_with_nli_names_both_sentences():
    validators = build_validators("article", ValidatorSettings())
    contradiction = next(v for v in validators if v.name == "contradiction")
    text = ("## The trail\n\nThe hike is easy and suitable for children. The path is well marked. "
            "The hike is very difficult and not suitable for children. Bring water.")
    report = contradiction.check(text, ValidationContext(kind="article"))
    assert not report.passed
    spans = {text[e.start:e.end] for e in report.evidence}
    assert spans == {"The hike is easy and suitable for children.",
                     "The hike is very difficult and not suitable for children."}
    from benchmarks.validators import ARTICLE  # a consistent 425-word article: no false alarm

    assert contradiction.check(ARTICLE, ValidationContext(kind="article")).passed


def test_hf_nli_reads_id2label(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from validators.contradiction.encoder import load_minilm
    from validators.contradiction.nli import HfNli

    tok, _ = load_minilm()
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3,
                        id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                        label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model = HfNli(str(tmp_path))
    assert model.order == [2, 1, 0]  # entailment, neutral, contradiction columns
    assert model.predict(["a"], ["b"]).shape == (1, 3)
    config.id2label = {0: "yes", 1: "maybe", 2: "no"}
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no 'entailment' label"):
        HfNli(str(tmp_path))


ODD_INPUTS = {
    "empty": "",
    "whitespace": " \n\t ",
    "huge": "The mug holds coffee. " * 50_000,
    "odd characters": "Caf\u00e9 \u2603 \U0001F600 \x00 \udcff tea.",
    "not json": "{\"title\": ",
}


@pytest.mark.parametrize("kind", sorted(KIND_VALIDATORS))
@pytest.mark.parametrize("name", sorted(ODD_INPUTS))
def test_every_validator_answers_odd_input_with_a_report(kind, name):
    text = ODD_INPUTS[name]
    ctx = ValidationContext(kind=kind, input={"name": "Mug", "attributes": {"capacity": "350 ml"},
                                              "tests": ["assert f() == 1"], "prompt": "x"})
    for validator in build_validators(kind, ValidatorSettings()):
        report = validator.check(text, ctx)
        assert isinstance(report, Report) and report.validator
        json.dumps(report.as_dict())  # storable
        if name in {"empty", "whitespace"}:  # emptiness is degeneration's and the syntax checks' to fail
            assert not report.passed or validator.name in {"contradiction", "sandbox_tests", "meta_debris",
                                                           "garbled", "topicality", "category", "signature_kept"}


# Product records the default model wrote for examples/product.jsonl (AR path, 2026-11-28). The head
# used to flag every one of them on sentences that name other attributes (e.g. "Its power: 8 W LED,
# ..." vs "The Lumo Desk Lamp's brightness levels is 5.", p 1.00); the mug's record says the mug is
# dishwasher safe, which it is not.
LAMP = {"name": "Lumo Desk Lamp", "attributes": {"power": "8 W LED", "colour temperature": "2700-6500 K",
                                                  "brightness levels": 5, "charging port": "USB-C", "weight": "1.2 kg"}}
LAMP_RECORD = {
    "title": "Lumo Desk Lamp", "tagline": "Lumo Desk Lamp",
    "facts": ["Power: 8 W LED", "Colour temperature: 2700-6500 K", "Brightness levels: 5", "Charging port: USB-C",
              "Weight: 1.2 kg"],
    "description": "The Lumo Desk Lamp is a stylish and eco-friendly product that offers a unique and sustainable "
                   "solution for lighting. Its power: 8 W LED, which is designed to conserve energy, and colour "
                   "temperature: 2700-6500 K, which provides a warm and inviting glow. Its brightness levels: 5, "
                   "making it a perfect choice for both lighting and ambient lighting applications. The weight: "
                   "1.2 kg, offering a balance between comfort and weight."}
MUG = {"name": "Aurora Travel Mug", "attributes": {"material": "stainless steel", "capacity": "350 ml",
                                                    "keeps drinks hot": "6 hours", "colour": "midnight blue",
                                                    "dishwasher safe": False}}
MUG_RECORD = {
    "title": "Aurora Travel Mug", "tagline": "Aurora Travel Mug",
    "facts": ["Material: stainless steel", "Capacity: 350 ml", "Keeps drinks hot: 6 hours", "Colour: midnight blue"],
    "description": "The Aurora Travel Mug is a luxury product that offers a unique and indulgent experience. The mug "
                   "is dishwasher safe, and it is also a safe option for the elderly and those with disabilities."}


def test_product_attributes_on_real_default_model_records(nli):
    from validators.contradiction.validator import ProductAttributes

    check = ProductAttributes(nli=nli, threshold=0.8)
    lamp = check.check(json.dumps(LAMP_RECORD), ValidationContext(kind="product", input=LAMP))
    assert lamp.passed, lamp.message
    mug = check.check(json.dumps(MUG_RECORD), ValidationContext(kind="product", input=MUG))
    assert not mug.passed
    assert {e.text for e in mug.evidence} == {
        "The mug is dishwasher safe, and it is also a safe option for the elderly and those with disabilities."}
