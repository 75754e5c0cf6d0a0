"""The NLI head's training command end to end on a few pairs: it trains, keeps the best epoch, and
writes a head (adapter, classifier, metadata, card) that the validator's default loader reads."""

from __future__ import annotations

import json
import re

import pytest
import torch

from validators.contradiction.nli import MiniLmNli
from validators.contradiction.train_nli import SPLITS, load_pairs, main, split_of

pytestmark = pytest.mark.slow

PAIRS = [
    ("A man is sleeping on a couch.", "A man is running a marathon.", "contradiction"),
    ("A woman plays the violin on stage.", "A woman is making music.", "entailment"),
    ("Two dogs run on a beach.", "The dogs are brothers.", "neutral"),
]


def write_data(folder, copies: int) -> None:
    folder.mkdir()
    for source in ("snli", "mnli"):
        with open(folder / f"{source}_dev.jsonl", "w") as fh:
            for i in range(copies):
                for premise, hypothesis, label in PAIRS:
                    fh.write(json.dumps({"premise": f"{premise} ({source} {i})", "hypothesis": hypothesis,
                                         "label": label}) + "\n")
            fh.write(json.dumps({"premise": "x", "hypothesis": "y", "label": "-"}) + "\n")  # unlabelled: skipped


def test_split_is_deterministic_and_covers_every_bucket():
    names = {split_of(f"premise {i}", "hypothesis") for i in range(200)}
    assert names == set(SPLITS)
    assert split_of("a", "b") == split_of("a", "b")


def test_training_writes_a_head_the_default_loader_reads(tmp_path, monkeypatch):
    import validators.contradiction.train_nli as train_nli

    full = train_nli.product_pairs
    monkeypatch.setattr(train_nli, "product_pairs", lambda part, seed=0: full(part, seed)[:24])  # keep it quick
    data, out = tmp_path / "nli", tmp_path / "head"
    write_data(data, copies=30)
    pairs = load_pairs(data)
    assert sum(len(rows) for rows in pairs.values()) == 2 * 30 * len(PAIRS)  # unlabelled rows dropped
    meta = main(["--data", str(data), "--out", str(out), "--epochs", "2", "--rank", "4", "--batch-size", "8",
                 "--lr", "1e-3", "--product-seeds", "1"])
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert meta["rank"] == 4 and meta["bf16_autocast"] is True
    assert {"snli", "mnli", "product"} == set(meta["validation"])
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model-00001-of-00001.safetensors", "classifier.safetensors",
        "head.json"]
    assert "epoch 2" in (out / "README.md").read_text()
    loaded = MiniLmNli(out)
    probs = loaded.predict([p for p, _, _ in PAIRS], [h for _, h, _ in PAIRS])
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-4)
    # The trained head has learnt something from ~60 training copies of three pairs.
    assert probs.argmax(-1).tolist() == [2, 0, 1]

    # Continuing from it: same rank whatever --rank says, half the NLI pairs replayed, and a card
    # that lists both commands in order.
    again = main(["--data", str(data), "--out", str(tmp_path / "again"), "--init-from", str(out), "--epochs", "1",
                  "--rank", "16", "--replay", "0.5", "--batch-size", "8", "--lr", "1e-4", "--product-seeds", "1"])
    assert again["rank"] == 4 and again["init_from"]["command"] == meta["command"]
    assert again["data"]["train"] < meta["data"]["train"]
    card = (tmp_path / "again" / "README.md").read_text()
    assert card.index(meta["command"]) < card.index(again["command"]) and "--init-from" in again["command"]
    assert MiniLmNli(tmp_path / "again").predict(["A man is sleeping on a couch."],
                                                 ["A man is running a marathon."]).argmax(-1).item() == 2


def test_too_little_data_is_refused_with_the_split_named(tmp_path):
    data = tmp_path / "nli"
    write_data(data, copies=1)
    with pytest.raises(ValueError, match=r"split has no labelled (snli|mnli) pairs"):
        load_pairs(data)


def test_product_pairs_hold_out_products_and_phrasings():
    from validators.contradiction.product_pairs import product_pairs
    from validators.contradiction.validator import attribute_statement

    train, heldout = product_pairs("train"), product_pairs("heldout")
    assert product_pairs("train") == train  # deterministic
    assert product_pairs("train", seed=1) != train
    for rows in (train, heldout):
        labels = [r["label"] for r in rows]
        # per attribute: 1 entailing, 2 contradicting (one short, one long) and 6 neutral sentences
        assert labels.count("neutral") == 6 * labels.count("entailment") == 3 * labels.count("contradiction")

    def product(premise: str) -> str:
        return premise.removeprefix("The ").split("'s ")[0].split(" is ")[0]

    assert {product(r["premise"]) for r in train}.isdisjoint({product(r["premise"]) for r in heldout})
    def phrasings(rows: list[dict]) -> set[str]:  # "Key: value" facts are the record's format, in both parts
        return {r["hypothesis"] for r in rows if not re.fullmatch(r"[A-Z][a-z ]+: .+", r["hypothesis"])}

    assert phrasings(train).isdisjoint(phrasings(heldout))
    assert any(re.fullmatch(r"Colour: .+", r["hypothesis"]) for r in train + heldout)
    # premises are worded exactly as the validator words attributes at run time
    assert attribute_statement("Drift Yoga Mat", "colour", "teal") == "The Drift Yoga Mat's colour is teal."
    assert any(r["premise"].endswith(" is not dishwasher safe.") for r in train + heldout)
    assert attribute_statement("Trailhead 30 Backpack", "rain cover", True) == "The Trailhead 30 Backpack comes with rain cover."
    # long sentences naming several attributes: one with this attribute's wrong value contradicts
    long_contradictions = [r for r in train if r["label"] == "contradiction" and r["hypothesis"].count(",") >= 1]
    assert len(long_contradictions) >= len(train) // 10
    with pytest.raises(ValueError, match="part must be"):
        product_pairs("test")
