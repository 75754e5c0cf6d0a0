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
        if name in {"empty", "whitespace"}:
            assert not report.passed or validator.name in {"contradiction", "sandbox_tests"}
