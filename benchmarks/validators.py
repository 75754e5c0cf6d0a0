"""Validator quality and cost.

    python benchmarks/validators.py [--quick] [--sandbox-only] [--feedback-db URL]

- contradiction-vs-rest precision / recall / F1 of the default NLI model on the validation parts
  of SNLI dev and MNLI dev-matched (../shared/data/nli; the split the head never trained or was
  selected on: see validators/contradiction/train_nli.py);
- the same on the held-out synthetic product-attribute pairs (validators/contradiction/product_pairs.py:
  products and phrasings the head never trained on), plus how often a neutral pair (a general claim,
  or another attribute) reaches the `product_attributes` validator's threshold: its false-flag rate;
- the time to run every `article` validator on an article of about 500 words (median of runs);
- the overhead of one sandboxed test run (median, the OS sandbox and the harness), beside a bare
  interpreter start measured in turns with it.
Ends with one JSON line: snli_contradiction_f1, mnli_contradiction_f1, article_validate_ms, sandbox_ms
(plus product_attribute_f1, product_neutral_flag_rate, interpreter_start_ms, sandbox_over_interpreter_start).
`--sandbox-only` measures the sandbox alone (no models).
`--feedback-db URL` adds reviewers' feedback from the review app's database (service/feedback.py) as one
more labelled set: per validator, how many of its failing reports reviewers called false flags, and the
missed defects per rubric class (JSON: feedback_outputs, feedback_false_flags, feedback_missed_defects).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit_json, print_table  # noqa: E402

ARTICLE = """# A Beginner's Guide to Tea

## Where Tea Comes From

Tea comes from the leaves of the Camellia sinensis plant, an evergreen shrub that grows best in warm,
humid climates with plenty of rain. The plant was first cultivated in southwest China, where people
have brewed its leaves for thousands of years. Traders carried tea along the old caravan routes, and
by the seventeenth century it had reached Europe. Today the largest producers are China, India, Kenya
and Sri Lanka, and each region gives its leaves a character of its own.

## The Main Types

All true teas come from the same plant; what differs is how the leaves are processed after picking.
Green tea is heated soon after harvest, which stops oxidation and keeps a fresh, grassy flavour.
Black tea is rolled and left to oxidise fully, which darkens the leaves and deepens the taste. Oolong
sits between the two, partly oxidised, and white tea is simply withered and dried. Herbal infusions
such as chamomile or peppermint contain no tea leaves at all, although people often call them tea.

## Brewing a Good Cup

Good tea starts with fresh, cold water brought to the right temperature for the leaf. Black tea likes
water just off the boil, while green tea tastes best at around eighty degrees, because hotter water
draws out bitterness. Use about one teaspoon of loose leaves for each cup and steep black tea for three
to five minutes. Green tea needs only two or three minutes. Taste as you go, and remove the leaves when
the flavour is as strong as you like it, since leaving them in makes the drink harsh.

## Storing Tea

Tea keeps its flavour longest in an airtight container away from light, heat and strong smells. A cool
cupboard works well, but the fridge does not, because moisture and the smells of other food seep in.
Green and white teas are delicate and are best within a year, while black tea can last two years or
more. Buying small amounts more often is an easy way to make sure every cup tastes fresh.

## Tea and Health

Tea contains caffeine, though usually less than a cup of coffee, along with antioxidants called
polyphenols. Many people find a cup calming in the afternoon. Drinking tea in moderation fits well into
a balanced diet, and a plain cup without sugar has almost no calories. As with any drink that contains
caffeine, it is wise to drink less late in the evening if you want to sleep well.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="evaluate on at most 600 pairs per dataset")
    ap.add_argument("--sandbox-only", action="store_true", help="measure only the sandbox's cost (no models)")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "nli")
    ap.add_argument("--feedback-db", metavar="URL", help="also report reviewers' false flags and missed defects "
                    "stored in this database (the review app's)")
    args = ap.parse_args()
    if args.sandbox_only:
        costs = sandbox_costs(5 if args.quick else 30)
        print_table("sandbox cost (median)", ["what", "milliseconds"], list(costs.items()))
        emit_json({**sandbox_json(costs), **feedback_json(args.feedback_db), "quick": args.quick})
        return

    import torch

    from pipeline.kinds import get_kind
    from pipeline.settings import Settings
    from pipeline.validation import validate, validators_for
    from validators.contradiction.train_nli import contradiction_prf, load_pairs
    from validators.registry import nli_model
    from validators.sandbox.runner import run_tests
    from validators.contradiction.nli import LABELS
    from validators.contradiction.product_pairs import product_pairs

    nli = nli_model("default")
    validation = load_pairs(args.data)["validation"]
    rows, result = [], {}

    def score(name: str, pairs: list[dict]) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Contradiction-vs-rest metrics of one data set, added to the table; also (probs, gold)."""
        probs = nli.predict([r["premise"] for r in pairs], [r["hypothesis"] for r in pairs])
        gold = torch.tensor([LABELS.index(r["label"]) for r in pairs])
        m = contradiction_prf(probs.argmax(-1), gold)
        rows.append((name, m["pairs"], m["precision"], m["recall"], m["f1"], m["accuracy_3way"]))
        return m, probs, gold

    for source in ("snli", "mnli"):
        m, _, _ = score(source.upper(), [r for r in validation if r["source"] == source][: 600 if args.quick else None])
        result[f"{source}_contradiction_f1"] = m["f1"]
    settings = Settings.from_env()
    m, probs, gold = score("product (synthetic)", product_pairs("heldout"))
    neutral = gold == LABELS.index("neutral")
    flagged = probs[:, 2] >= settings.attribute_threshold
    result["product_attribute_f1"] = m["f1"]
    result["product_neutral_flag_rate"] = round(float(flagged[neutral].float().mean()), 4)
    print_table(f"contradiction vs rest on the validation split ({nli.name})",
                ["data", "pairs", "precision", "recall", "F1", "3-way acc"], rows)
    print(f"neutral product pairs at p(contradiction) >= {settings.attribute_threshold} (would be flagged): "
          f"{int(flagged[neutral].sum())} of {int(neutral.sum())}")
    kind = get_kind("article")
    validators_for(kind, settings)  # load models outside the timing
    plan = {"title": "A Beginner's Guide to Tea", "sections": [
        {"heading": h, "points": []} for h in ("Where Tea Comes From", "The Main Types", "Brewing a Good Cup",
                                               "Storing Tea", "Tea and Health")]}
    validate(kind, ARTICLE, {"topic": "tea"}, settings, plan)
    times, reports = [], []
    for _ in range(5 if args.quick else 11):
        t0 = time.perf_counter()
        reports = validate(kind, ARTICLE, {"topic": "tea"}, settings, plan)
        times.append((time.perf_counter() - t0) * 1000)
    article_ms = statistics.median(times)
    print_table(f"article validators on {len(ARTICLE.split())} words (median of {len(times)} runs)",
                ["validator", "passed", "message"], [(r.validator, r.passed, r.message[:60]) for r in reports])

    costs = sandbox_costs(5 if args.quick else 15)
    print_table("cost", ["what", "milliseconds"], [("all article validators", round(article_ms, 1)),
                                                  *[(k, v) for k, v in costs.items()]])
    emit_json({**result, "article_validate_ms": round(article_ms, 1), **sandbox_json(costs),
               "article_words": len(ARTICLE.split()), **feedback_json(args.feedback_db), "quick": args.quick})


def sandbox_costs(runs: int) -> dict[str, float]:
    """Median ms of one sandboxed test run, and of a bare interpreter start (`python -I -S -B -c pass`,
    the floor any subprocess sandbox pays); they take turns so noise hits both."""
    import subprocess

    from validators.sandbox.runner import run_tests

    def sandboxed() -> None:
        result = run_tests("def f(x):\n    return x\n", ["assert f(1) == 1"])
        if not result.passed:
            raise SystemExit(f"sandbox benchmark: a passing test did not pass: {result.problem}")

    def bare() -> None:
        subprocess.run([sys.executable, "-I", "-S", "-B", "-c", "pass"], check=True)

    modes = {SANDBOXED: sandboxed, BARE_START: bare}
    times: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(runs + 1):  # the first round warms up (bwrap's probe, page cache)
        for name, run in modes.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: round(statistics.median(t[1:]), 1) for name, t in times.items()}


SANDBOXED, BARE_START = "one sandboxed test run (bwrap + harness)", "a bare interpreter start"


def sandbox_json(costs: dict[str, float]) -> dict[str, float]:
    return {"sandbox_ms": costs[SANDBOXED], "interpreter_start_ms": costs[BARE_START],
            "sandbox_over_interpreter_start": round(costs[SANDBOXED] / costs[BARE_START], 2)}


def feedback_json(url: str | None) -> dict:
    """Reviewers' feedback as a labelled set (nothing without --feedback-db): printed as two tables,
    returned for the JSON line. A false-flag share is over the failing reports of outputs a person
    looked at (reviewed, or given feedback), since only those could be called false."""
    if not url:
        return {}
    from service.feedback import false_flag_counts, feedback_labels, missed_defect_counts
    from service.storage.db import session_factory

    with session_factory(url)() as session:
        flags, missed = false_flag_counts(session), missed_defect_counts(session)
        outputs = sum(1 for _ in feedback_labels(session))
    by_validator = {name: {**c, "false_flag_share": round(c["false_flags"] / c["failing"], 4) if c["failing"] else None}
                    for name, c in sorted(flags.items())}
    print_table(f"reviewers' feedback: false flags per validator ({outputs} outputs labelled)",
                ["validator", "failing reports (looked at)", "called false flags", "share"],
                [(n, c["failing"], c["false_flags"], c["false_flag_share"]) for n, c in by_validator.items()])
    print_table("reviewers' feedback: missed defects per rubric class", ["class", "missed"],
                sorted(missed.items(), key=lambda kv: (-kv[1], kv[0])) or [("(none)", 0)])
    return {"feedback_outputs": outputs, "feedback_false_flags": by_validator, "feedback_missed_defects": missed}


if __name__ == "__main__":
    main()
