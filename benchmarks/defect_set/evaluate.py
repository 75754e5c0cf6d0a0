"""Run the validators over the labelled defect set and score them (scoring.py) on one half.

    python benchmarks/defect_set/evaluate.py [--half dev|heldout|both] [--kinds article,product,code]
                                             [--show-misses N]

Tune on dev only; score held-out once per validator version (docs/review-rubric.md §7).
Ends with one JSON line: item-level precision / recall per half, and each critical class's recall.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from benchmarks.common import emit_json, print_table  # noqa: E402
from benchmarks.defect_set.labels import gold_labels, load_outputs, split_of  # noqa: E402
from benchmarks.defect_set.scoring import score  # noqa: E402

CRITICAL_CLASSES = ("repetition", "meta-debris", "structure", "off-topic", "attribute-contradiction", "category-error",
                    "contradiction", "hollow-code", "signature-changed", "truncated", "invalid-syntax",
                    "wrong-behaviour", "garbled")


def run_validators(outputs: dict[str, dict], ids: list[str]) -> dict[str, list[dict]]:
    from pipeline.kinds import get_kind
    from pipeline.settings import Settings
    from pipeline.validation import validate

    settings = Settings.from_env()
    return {i: [r.as_dict() for r in validate(get_kind(outputs[i]["kind"]), outputs[i]["output"] or "",
                                               outputs[i]["input"], settings)] for i in ids}


def evaluate(halves: list[str], kinds: set[str], show_misses: int = 0) -> dict:
    outputs = load_outputs()
    labels = gold_labels(outputs).labels
    half = split_of(outputs)
    result: dict = {}
    for part in halves:
        ids = sorted(i for i in outputs if half[i] == part and i in labels and outputs[i]["kind"] in kinds)
        scores = score(outputs, labels, run_validators(outputs, ids), ids)
        item = scores.item
        print_table(f"{part}: has a critical defect (item level)", ["outputs", "critical", "flagged", "precision", "recall"],
                    [(item["outputs"], item["critical"], item["flagged"], item["precision"], item["recall"])])
        print_table(f"{part}: per class", ["class", "critical", "claimed", "precision", "recall"],
                    [(c, v["critical"], v["claimed"], v["precision"], v["recall"]) for c, v in scores.per_class.items()
                     if v["critical"] or v["claimed"]])
        if show_misses:
            for i in item["missed"][:show_misses]:
                print(f"missed {i}: {sorted(labels[i].classes('critical'))}")
            for i in item["false_flags"][:show_misses]:
                print(f"false flag {i}")
        result[f"{part}_item_precision"] = item["precision"]
        result[f"{part}_item_recall"] = item["recall"]
        result[f"{part}_class_recall"] = {c: scores.per_class[c]["recall"] for c in CRITICAL_CLASSES
                                          if scores.per_class[c]["critical"]}
        result[f"{part}_class_precision"] = {c: scores.per_class[c]["precision"] for c in CRITICAL_CLASSES
                                             if scores.per_class[c]["claimed"]}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("dev", "heldout", "both"), default="dev")
    ap.add_argument("--kinds", default="article,product,code")
    ap.add_argument("--show-misses", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    halves = ["dev", "heldout"] if args.half == "both" else [args.half]
    emit_json(evaluate(halves, set(args.kinds.split(",")), args.show_misses))


if __name__ == "__main__":
    main()
