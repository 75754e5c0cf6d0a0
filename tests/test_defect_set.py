"""The labelled defect set's tooling: the label checks, the split by item, agreement and scoring."""

from __future__ import annotations

from benchmarks.defect_set.labels import (Label, agreement, check_line, gold_labels, kappa, load_outputs,
                                          second_pass_sample, split_of)
from benchmarks.defect_set.scoring import report_classes, score

OUTPUTS = {
    "a:ar:ar:s1": {"kind": "article", "input": {"topic": "tea"}, "output": "# Tea\n\n## One\n\nTea is good. Tea is good."},
    "a:plain:plain:s1": {"kind": "article", "input": {"topic": "tea"}, "output": "Sure! Tea."},
    "c:ar:ar:s1": {"kind": "code", "input": {"prompt": "p"}, "output": "def f():\n    pass\n"},
}


def test_a_label_line_is_refused_for_what_the_rubric_forbids():
    ok = {"output_id": "a:ar:ar:s1", "labeller": "L1", "defects": [
        {"class": "repetition", "severity": "minor", "evidence": "Tea is good."}]}
    assert check_line(ok, OUTPUTS) == []
    bad = dict(ok, defects=[{"class": "repetition", "severity": "minor", "evidence": "Tea is great."},
                            {"class": "hollow-code", "severity": "critical", "evidence": "Tea"},
                            {"class": "bad-tagline", "severity": "critical", "evidence": "Tea"},
                            {"class": "nonsense", "severity": "minor", "evidence": "Tea"}])
    problems = check_line(bad, OUTPUTS)
    assert any("not an exact substring" in p for p in problems)
    assert any("hollow-code does not apply to article" in p for p in problems)
    assert any("bad-tagline does not apply to article" in p for p in problems)
    assert any("unknown class 'nonsense'" in p for p in problems)
    assert check_line(dict(ok, output_id="zzz"), OUTPUTS) == ["unknown output_id 'zzz'"]


def test_the_split_keeps_every_output_of_an_item_in_one_half_and_halves_each_kind():
    outputs = load_outputs()
    half = split_of(outputs)
    by_item: dict[str, set[str]] = {}
    for output_id, row in outputs.items():
        by_item.setdefault(row["item"], set()).add(half[output_id])
    assert all(len(parts) == 1 for parts in by_item.values())
    for kind in ("article", "product", "code"):
        items = {row["item"] for row in outputs.values() if row["kind"] == kind}
        dev = {row["item"] for i, row in outputs.items() if row["kind"] == kind and half[i] == "dev"}
        assert abs(2 * len(dev) - len(items)) <= 1


def test_every_output_is_labelled_and_the_second_pass_covers_the_sample():
    outputs = load_outputs()
    gold = gold_labels(outputs)
    assert gold.refused == [] and set(gold.labels) == set(outputs)
    assert len(second_pass_sample(outputs)) >= 0.2 * len(outputs)


def test_kappa_and_agreement():
    assert kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert kappa([True, True, False, False], [False, False, True, True]) == -1.0
    first = {"a:ar:ar:s1": Label("a:ar:ar:s1", "L1", [{"class": "repetition", "severity": "critical", "evidence": ""}])}
    second = {"a:ar:ar:s1": Label("a:ar:ar:s1", "L6", [])}
    assert agreement(first, second, OUTPUTS)["raw"] == 0.0


def test_scores_count_a_class_only_when_a_report_claims_it():
    labels = {i: Label(i, "L1", d) for i, d in {
        "a:ar:ar:s1": [{"class": "repetition", "severity": "critical", "evidence": ""}],
        "a:plain:plain:s1": [{"class": "meta-debris", "severity": "minor", "evidence": ""}],
        "c:ar:ar:s1": [{"class": "hollow-code", "severity": "critical", "evidence": ""}]}.items()}
    reports = {"a:ar:ar:s1": [{"validator": "degeneration", "passed": False, "message": "sentence repeated 3 times"}],
               "a:plain:plain:s1": [{"validator": "meta_debris", "passed": False, "message": "only chat"}],
               "c:ar:ar:s1": [{"validator": "python_syntax", "passed": True, "message": ""}]}
    scores = score(OUTPUTS, labels, reports, list(OUTPUTS))
    assert scores.per_class["repetition"]["recall"] == 1.0 and scores.per_class["hollow-code"]["recall"] == 0.0
    assert scores.per_class["meta-debris"]["precision"] == 1.0, "a minor find is a true find"
    assert scores.item["precision"] == 0.5 and scores.item["recall"] == 0.5
    assert report_classes({"validator": "contradiction", "passed": False, "message": "cannot check: no JSON"}) == set()
    assert report_classes({"validator": "degeneration[description]", "passed": False,
                           "message": "cannot check: no text field; in the whole output: repetitive: 80%"}) == {"repetition"}
