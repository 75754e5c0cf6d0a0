"""The labelled defect set: outputs, labels, the rubric's classes, the dev / held-out split, agreement.

    python benchmarks/defect_set/labels.py [--pass2 labels/pass2]      # check every label file, report agreement

- Outputs: outputs.jsonl (generate.py). Labels: labels/pass1/*.jsonl, one file per labeller, in the format
  of docs/review-rubric.md §5; labels/pass2/*.jsonl is the independent second pass on 20% of the outputs,
  labels/gold/*.jsonl (when present) the adjudicated lines, which win over pass 1.
- `check_line` is the labelling script of the rubric's §4 step 6: a line is refused when its output_id is
  unknown, its evidence is not an exact substring of the output, or its class, kind and severity do not
  match §3.
- `split_of`: by item, from sha256("split:" + kind + canonical input), alternating within each kind (§7).
Ends with one JSON line: outputs, labelled, refused lines, critical share, and the agreement (raw, kappa).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from benchmarks.common import emit_json, print_table  # noqa: E402

# The rubric's §3 table: class id -> (kinds, severities a label may carry).
CLASSES: dict[str, tuple[str, frozenset[str]]] = {
    "repetition": ("AP", frozenset({"minor", "critical"})),
    "duplicate-line": ("APC", frozenset({"minor"})),
    "meta-debris": ("APC", frozenset({"minor", "critical"})),
    "broken-heading": ("A", frozenset({"minor"})),
    "structure": ("APC", frozenset({"minor", "critical"})),
    "off-topic": ("AP", frozenset({"minor", "critical"})),
    "attribute-contradiction": ("P", frozenset({"critical"})),
    "unsupported-claim": ("P", frozenset({"minor"})),
    "category-error": ("AP", frozenset({"critical"})),
    "contradiction": ("AP", frozenset({"critical"})),
    "bad-tagline": ("P", frozenset({"minor"})),
    "hollow-code": ("C", frozenset({"critical"})),
    "signature-changed": ("C", frozenset({"minor", "critical"})),
    "truncated": ("APC", frozenset({"minor", "critical"})),
    "invalid-syntax": ("PC", frozenset({"critical"})),
    "wrong-behaviour": ("C", frozenset({"critical"})),
    "garbled": ("AP", frozenset({"minor", "critical"})),
    "factual-error": ("A", frozenset({"minor", "critical"})),
}
KIND_LETTER = {"article": "A", "product": "P", "code": "C"}


@dataclass
class Label:
    output_id: str
    labeller: str
    defects: list[dict]
    notes: str = ""

    @property
    def critical(self) -> bool:
        return any(d["severity"] == "critical" for d in self.defects)

    def classes(self, severity: str | None = None) -> set[str]:
        return {d["class"] for d in self.defects if severity is None or d["severity"] == severity}


@dataclass
class LabelFiles:
    labels: dict[str, Label] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    """"file:line: why" for every line that failed the checks."""


def load_outputs(path: Path = HERE / "outputs.jsonl") -> dict[str, dict]:
    return {r["output_id"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def check_line(raw: dict, outputs: dict[str, dict]) -> list[str]:
    problems = []
    output = outputs.get(raw.get("output_id"))
    if output is None:
        return [f"unknown output_id {raw.get('output_id')!r}"]
    if not isinstance(raw.get("labeller"), str) or not raw["labeller"]:
        problems.append("labeller missing")
    if not isinstance(raw.get("defects"), list):
        return problems + ["defects must be a list"]
    letter = KIND_LETTER[output["kind"]]
    for i, d in enumerate(raw["defects"]):
        cls = d.get("class")
        if cls not in CLASSES:
            problems.append(f"defects[{i}]: unknown class {cls!r}")
            continue
        kinds, severities = CLASSES[cls]
        if letter not in kinds:
            problems.append(f"defects[{i}]: {cls} does not apply to {output['kind']}")
        if d.get("severity") not in severities:
            problems.append(f"defects[{i}]: {cls} cannot be {d.get('severity')!r} (allowed: {sorted(severities)})")
        evidence = d.get("evidence")
        if not isinstance(evidence, str) or evidence not in (output["output"] or ""):
            problems.append(f"defects[{i}]: evidence is not an exact substring of the output: {str(evidence)[:60]!r}")
    return problems


def load_labels(folder: Path, outputs: dict[str, dict]) -> LabelFiles:
    out = LabelFiles()
    for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.relative_to(HERE)}:{n}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                out.refused.append(f"{where}: not JSON: {e.msg}")
                continue
            problems = check_line(raw, outputs)
            if problems:
                out.refused.append(f"{where}: " + "; ".join(problems))
                continue
            out.labels[raw["output_id"]] = Label(raw["output_id"], raw["labeller"], raw["defects"], raw.get("notes", ""))
    return out


def gold_labels(outputs: dict[str, dict]) -> LabelFiles:
    """Pass 1, with adjudicated lines (labels/gold) in place of the lines they settle."""
    first = load_labels(HERE / "labels" / "pass1", outputs)
    gold = load_labels(HERE / "labels" / "gold", outputs)
    first.labels.update(gold.labels)
    first.refused += gold.refused
    return first


def canonical(kind: str, input_: dict) -> str:
    return kind + json.dumps(input_, sort_keys=True, ensure_ascii=False)


def split_of(outputs: dict[str, dict]) -> dict[str, str]:
    """output_id -> "dev" | "heldout", by item group (same kind and input), alternating within each kind."""
    groups: dict[str, list[str]] = defaultdict(list)
    for output_id, row in outputs.items():
        groups[canonical(row["kind"], row["input"])].append(output_id)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key in groups:
        by_kind[outputs[groups[key][0]]["kind"]].append(key)
    half = {}
    for kind, keys in by_kind.items():
        for i, key in enumerate(sorted(keys, key=lambda k: hashlib.sha256(f"split:{k}".encode()).hexdigest())):
            for output_id in groups[key]:
                half[output_id] = "dev" if i % 2 == 0 else "heldout"
    return half


def second_pass_sample(outputs: dict[str, dict], share: float = 0.2) -> list[str]:
    """§6: within each kind, the first 20% (rounded up) of the outputs by sha256(output_id)."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for output_id, row in outputs.items():
        by_kind[row["kind"]].append(output_id)
    sample = []
    for ids in by_kind.values():
        ids.sort(key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        sample += ids[:-(-len(ids) * int(share * 100) // 100)]
    return sample


def kappa(a: list[bool], b: list[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no answers on the same items."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if expected == 1 else round((observed - expected) / (1 - expected), 3)


def agreement(first: dict[str, Label], second: dict[str, Label], outputs: dict[str, dict]) -> dict:
    both = sorted(set(first) & set(second))
    a = [first[i].critical for i in both]
    b = [second[i].critical for i in both]
    per_class = {}
    for cls, (kinds, _) in CLASSES.items():
        ids = [i for i in both if KIND_LETTER[outputs[i]["kind"]] in kinds]
        x = [cls in first[i].classes() for i in ids]
        y = [cls in second[i].classes() for i in ids]
        if ids:
            per_class[cls] = {"items": len(ids), "first": sum(x), "second": sum(y),
                              "raw": round(sum(p == q for p, q in zip(x, y)) / len(ids), 3),
                              "kappa": kappa(x, y) if min(sum(x), sum(y)) >= 5 else None}
    return {"items": len(both), "raw": round(sum(p == q for p, q in zip(a, b)) / len(both), 3) if both else None,
            "kappa": kappa(a, b), "per_class": per_class}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pass2", type=Path, default=HERE / "labels" / "pass2")
    args = ap.parse_args()
    outputs = load_outputs()
    gold = gold_labels(outputs)
    second = load_labels(args.pass2, outputs)
    for line in gold.refused + second.refused:
        print("refused:", line)
    half = split_of(outputs)
    rows = []
    for kind in ("article", "product", "code"):
        for part in ("dev", "heldout"):
            ids = [i for i, r in outputs.items() if r["kind"] == kind and half[i] == part]
            labelled = [gold.labels[i] for i in ids if i in gold.labels]
            rows.append((kind, part, len(ids), len(labelled), sum(lab.critical for lab in labelled)))
    print_table("defect set", ["kind", "half", "outputs", "labelled", "with a critical defect"], rows)
    classes = Counter(d["class"] + "/" + d["severity"] for lab in gold.labels.values() for d in lab.defects)
    print_table("entries per class", ["class/severity", "entries"], sorted(classes.items()))
    agree = agreement(gold.labels, second.labels, outputs)
    if agree["items"]:
        print_table("agreement on 'has a critical defect'", ["items", "raw", "kappa"],
                    [(agree["items"], agree["raw"], agree["kappa"])])
        print_table("agreement per class", ["class", "items", "first", "second", "raw", "kappa"],
                    [(c, v["items"], v["first"], v["second"], v["raw"], v["kappa"]) for c, v in agree["per_class"].items()])
    emit_json({"outputs": len(outputs), "labelled": len(gold.labels), "refused_lines": len(gold.refused) + len(second.refused),
               "critical_share": round(sum(lab.critical for lab in gold.labels.values()) / max(1, len(gold.labels)), 3),
               "agreement_items": agree["items"], "agreement_raw": agree["raw"], "agreement_kappa": agree["kappa"]})


if __name__ == "__main__":
    main()
