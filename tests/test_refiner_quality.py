"""The refiner quality benchmark's pure functions, on a tiny random model and hand-made inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks.refiner_quality import (
    Arm,
    check_span,
    generated_nll,
    heldout_prompts,
    pass_rate,
    perplexity,
    plot_tau_sweep,
    prompt_facts,
    prompt_tests,
    span_caps,
    training_curve,
)
from generators.prompts import chat_ids
from generators.results import RowResult
from generators.tiny import tiny_model, tiny_tokenizer

TOK = tiny_tokenizer()


@pytest.fixture(scope="module")
def model():
    return tiny_model("tiny-llama").eval()


def hand_nll(model, prompt, output):
    """-sum log p(output | prompt) from a single unpadded forward, computed step by step."""
    ids = torch.tensor([list(prompt) + list(output)])  # (1, T)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()  # (T, V)
    total = 0.0
    for j, tok in enumerate(output):
        row = logits[len(prompt) + j - 1]  # the position before token j predicts it
        total -= float(row[tok] - torch.logsumexp(row, dim=-1))
    return total


def test_perplexity_is_exp_of_mean_nll_and_batch_invariant(model):
    prompts = [chat_ids(TOK, "Hello"), chat_ids(TOK, "A much longer prompt with more bytes"), chat_ids(TOK, "x")]
    g = torch.Generator().manual_seed(0)
    outputs = [torch.randint(4, 260, (n,), generator=g).tolist() for n in (7, 3, 12)]
    nll = generated_nll(model, prompts, outputs, pad_token_id=TOK.pad_token_id, batch_size=3)
    for (got, count), p, o in zip(nll, prompts, outputs):
        assert count == len(o)
        assert got == pytest.approx(hand_nll(model, p, o), rel=1e-4)
    by_hand = math.exp(sum(hand_nll(model, p, o) for p, o in zip(prompts, outputs)) / sum(map(len, outputs)))
    assert perplexity(nll) == pytest.approx(by_hand, rel=1e-4)
    one_by_one = generated_nll(model, prompts, outputs, pad_token_id=TOK.pad_token_id, batch_size=1)
    assert [n for n, _ in one_by_one] == pytest.approx([n for n, _ in nll], rel=1e-4)


def test_empty_outputs_count_no_tokens(model):
    nll = generated_nll(model, [chat_ids(TOK, "Hi")] * 2, [[], [40, 41]], pad_token_id=TOK.pad_token_id)
    assert nll[0] == (0.0, 0) and nll[1][1] == 2
    assert math.isnan(perplexity([(0.0, 0)]))
    assert perplexity([(2.0, 1), (0.0, 0), (4.0, 3)]) == pytest.approx(math.exp(6.0 / 4))  # token-weighted


def test_pass_rate_needs_every_check():
    checks = [{"a": True, "b": True}, {"a": True, "b": False}, {"a": False}, {"a": True}]
    assert pass_rate(checks) == 0.5
    assert math.isnan(pass_rate([]))
    arm = Arm("x", [RowResult([1, 2, 3, 4], 2, 0.1, "eos"), RowResult([5, 6], 2, 0.1, "length")], 1.0,
              nll=[(4.0, 4), (2.0, 2)], checks=checks[:2])
    assert arm.tokens == 6 and arm.tokens_per_forward == 1.5
    assert arm.pass_rate() == 0.5 and arm.pass_rate([0]) == 1.0
    assert arm.gen_ppl([1]) == pytest.approx(math.e)


CODE_PROMPT = ("Write a Python function for this task. Reply with only the code.\nWrite a function to add two numbers.\n"
               "It must pass these tests:\nassert add(1, 2) == 3\nassert add(0, 0) == 0")
PRODUCT_PROMPT = ("Write a product description for the Nova Kettle. Facts: capacity: 1.7 litres; power: 2200 W; "
                  "auto shut-off: True; brightness levels: 5. Use only these facts. Write one paragraph.")


def test_prompt_parsers():
    assert prompt_tests(CODE_PROMPT) == ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
    assert prompt_facts(PRODUCT_PROMPT) == ("Nova Kettle", {"capacity": "1.7 litres", "power": "2200 W",
                                                           "auto shut-off": True, "brightness levels": 5})


def test_code_checks_parse_and_run_the_fenced_block():
    good = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds numbers."
    assert check_span("code", CODE_PROMPT, good) == {"python_syntax": True, "sandbox_tests": True}
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert check_span("code", CODE_PROMPT, wrong) == {"python_syntax": True, "sandbox_tests": False}
    truncated = "```python\ndef add(a, b):\n    return (a +"
    assert check_span("code", CODE_PROMPT, truncated) == {"python_syntax": False, "sandbox_tests": False}


def test_prose_checks():
    good = ("The Nova Kettle holds 1.7 litres of water and heats it quickly with 2200 W of power. "
            "Its automatic shut-off switches it off once the water boils, so it is safe to leave.")
    assert all(check_span("product", PRODUCT_PROMPT, good).values())
    wrong_fact = good.replace("1.7 litres", "3 litres")
    assert check_span("product", PRODUCT_PROMPT, wrong_fact)["product_attributes"] is False
    cut = good[:-30]  # ends mid-sentence
    assert check_span("product", PRODUCT_PROMPT, cut)["degeneration"] is False
    article = 'Write the section "Tools you need" of an article about tea for students. Write one paragraph.'
    assert check_span("article", article, "Tea is good.")["degeneration"] is False  # under 60 words


def test_heldout_prompts_and_caps_without_mbpp():
    prompts = heldout_prompts(2, mbpp_path=None)
    assert [p.kind for p in prompts] == ["article", "article", "product", "product"]
    assert prompts == heldout_prompts(2, mbpp_path=None)  # deterministic
    # a missing MBPP file is an error, not a quietly smaller prompt set that no longer compares
    with pytest.raises(FileNotFoundError, match="MBPP tasks not found at .*nowhere.jsonl"):
        heldout_prompts(2, mbpp_path=Path("/nowhere.jsonl"))
    assert span_caps(["article", "product", "code"]) == [140, 150, 180]
    assert span_caps(["article", "code"], 48) == [48, 48]


def test_sweep_plot_writes_a_png(tmp_path):
    points = [{"tau": t, "tokens_per_forward": 1 + (1 - t), "gen_ppl": 2 + t, "pass_rate": 0.5} for t in (0.5, 0.9, 1.0)]
    path = plot_tau_sweep(points, {"gen_ppl": 1.9, "pass_rate": 0.6}, tmp_path / "sub" / "sweep.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_training_curve(tmp_path):
    f = tmp_path / "m.jsonl"
    records = [{"step": s, "tokens_seen": 10 * s, "diff_acc": 0.1, "tokens_per_forward": 1.2, "agreement_with_ar": 0.05,
                "verify_tokens_per_forward": 1.5 + s / 1000, "extra": 1} for s in (0, 100)]
    records.append({**records[-1], "tag": "final"})  # a final record at the last evaluation's step
    records.insert(0, {"step": -1, "tokens_seen": 0, "diff_acc": 0.1})  # an older run: no verify numbers
    f.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert training_curve(f) == [(-1, 0, 0.1, None, None, None), (0, 0, 0.1, 1.2, 0.05, 1.5),
                                 (100, 1000, 0.1, 1.2, 0.05, 1.6)]


def test_speed_drafts_flag_names_a_bad_value():
    import argparse

    from benchmarks.refiner import _draft_counts

    assert _draft_counts("3,4") == [3, 4] and _draft_counts("2") == [2]
    for bad in ("3,x", "0", "", "3,,4"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"'{bad}': expected comma-separated draft counts"):
            _draft_counts(bad)
