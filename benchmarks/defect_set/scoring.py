"""The validators scored against the labelled defect set: per class and per item, on one half.

    reports_for(outputs)  ──►  which classes each failing report claims (report_classes)
                          ──►  per-class precision / recall, item-level "has a critical defect" P / R

The validators run as the pipeline runs them (pipeline.validation.validate, the default settings),
without the plan, which outputs.jsonl does not keep: they check against the job's input, as in
`plain` mode.

- A class's recall: of the outputs with a critical entry of that class, the share that a report
  claiming the class fails.
- A class's precision: of the outputs a report claiming the class fails, the share with an entry of
  that class (either severity: a minor find is still a true one).
- Item level: "some validator fails the output" against "the output has a critical entry".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchmarks.defect_set.labels import KIND_LETTER, CLASSES, Label

# Which rubric classes a failing report of each validator claims. Degeneration finds several things:
# its message says which.
VALIDATOR_CLASSES: dict[str, tuple[str, ...]] = {
    "markdown_structure": ("structure",),
    "json_schema": ("structure", "invalid-syntax", "truncated"),
    "python_syntax": ("invalid-syntax", "truncated"),
    "product_attributes": ("attribute-contradiction",),
    "contradiction": ("contradiction",),
    "sandbox_tests": ("wrong-behaviour",),
    "hollow_code": ("hollow-code",),
    "signature_kept": ("signature-changed",),
    "meta_debris": ("meta-debris",),
    "garbled": ("garbled",),
    "category": ("category-error",),
    "topicality": ("off-topic",),
    "plain_reply": ("structure", "invalid-syntax"),
}
DEGENERATION_MESSAGES = (
    (re.compile(r"too short"), "structure"),
    (re.compile(r"repetitive|repeated"), "repetition"),
    (re.compile(r"mid-sentence"), "truncated"),
    (re.compile(r"prompt text leaked|special token"), "meta-debris"),
    (re.compile(r"non-printable"), "garbled"),
)


def report_classes(report: dict) -> set[str]:
    name = report["validator"].split("[")[0]
    if report.get("message", "").startswith("cannot check") and name != "degeneration":
        return set()  # the record is no JSON object: json_schema's find, not this validator's
    if name == "degeneration":
        return {cls for pattern, cls in DEGENERATION_MESSAGES if pattern.search(report.get("message", ""))}
    return set(VALIDATOR_CLASSES.get(name, ()))


@dataclass
class Scores:
    per_class: dict[str, dict]
    item: dict


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def score(outputs: dict[str, dict], labels: dict[str, Label], reports: dict[str, list[dict]], ids: list[str]) -> Scores:
    """Scores over `ids` (one half), which must all be labelled and have reports."""
    flagged_by = {i: set().union(*[report_classes(r) for r in reports[i] if not r["passed"]] or [set()]) for i in ids}
    failed = {i: any(not r["passed"] for r in reports[i]) for i in ids}
    per_class = {}
    for cls, (kinds, _) in CLASSES.items():
        applies = [i for i in ids if KIND_LETTER[outputs[i]["kind"]] in kinds]
        critical = [i for i in applies if cls in labels[i].classes("critical")]
        claimed = [i for i in applies if cls in flagged_by[i]]
        per_class[cls] = {
            "critical": len(critical), "claimed": len(claimed),
            "recall": ratio(sum(cls in flagged_by[i] for i in critical), len(critical)),
            "precision": ratio(sum(cls in labels[i].classes() for i in claimed), len(claimed)),
        }
    positives = [i for i in ids if labels[i].critical]
    flagged = [i for i in ids if failed[i]]
    true_pos = sum(labels[i].critical for i in flagged)
    item = {"outputs": len(ids), "critical": len(positives), "flagged": len(flagged),
            "recall": ratio(true_pos, len(positives)), "precision": ratio(true_pos, len(flagged)),
            "missed": [i for i in positives if not failed[i]], "false_flags": [i for i in flagged if not labels[i].critical]}
    return Scores(per_class, item)
