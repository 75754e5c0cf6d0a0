"""The batched AR decoder on tiny models: parity with HF generate, batching, EOS, caps, sampling."""

from __future__ import annotations

import pytest
import torch

from generators.decoding.ar import ARConfig, generate_ar
from generators.prompts import chat_ids, left_pad
from generators.sampling import choose_tokens, row_generators, top_p_filter
from generators.tiny import tiny_model, tiny_tokenizer

TOK = tiny_tokenizer()
PROMPTS = [chat_ids(TOK, "Hello there"), chat_ids(TOK, "A much longer prompt, with more bytes in it."), chat_ids(TOK, "x")]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2"])
def model(request):
    return tiny_model(request.param)


def hf_greedy(model, prompt, n):
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def test_greedy_matches_hf_generate_for_every_row(model):
    rows = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, config=ARConfig(max_new_tokens=10))
    for prompt, row in zip(PROMPTS, rows):
        assert row.token_ids == hf_greedy(model, prompt, 10)
        assert row.finish_reason == "length" and row.generated_tokens == 10
        assert row.forward_passes == 10  # prefill gives the first token, then one forward per token


def test_batched_equals_one_at_a_time(model):
    batched = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, config=ARConfig(max_new_tokens=8))
    single = [generate_ar(model, [p], eos_token_ids=[-1], pad_token_id=0, config=ARConfig(max_new_tokens=8))[0]
              for p in PROMPTS]
    assert [r.token_ids for r in batched] == [r.token_ids for r in single]


def test_rows_stop_at_eos_and_leave_the_batch(model):
    # Force row 1 to emit EOS (id 2) as its 3rd token; the others run to the cap.
    def force_eos(rows, generated, logits):
        logits = logits.clone()
        for b, (r, gen) in enumerate(zip(rows, generated)):
            if r == 1 and len(gen) == 2:
                logits[b, :] = -1e9
                logits[b, 2] = 0
            else:
                logits[b, 2] = -1e9
        return logits

    rows = generate_ar(model, PROMPTS, eos_token_ids=[2], pad_token_id=0, config=ARConfig(max_new_tokens=9),
                       logits_transform=force_eos)
    assert rows[1].finish_reason == "eos" and rows[1].generated_tokens == 2 and rows[1].forward_passes == 3
    assert 2 not in rows[1].token_ids
    assert [rows[0].forward_passes, rows[2].forward_passes] == [9, 9]


def test_per_row_caps_and_stop_checker(model):
    def stop_after_four(row, generated):
        return 4 if row == 0 and len(generated) >= 5 else None

    rows = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=[20, 3, 6],
                       stop_checker=stop_after_four)
    assert [(r.generated_tokens, r.finish_reason) for r in rows] == [(4, "stop"), (3, "length"), (6, "length")]


def test_seeded_sampling_is_deterministic_and_independent_of_batch(model):
    cfg = ARConfig(max_new_tokens=12, temperature=1.0)
    a = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, config=cfg, seeds=[1, 2, 3])
    b = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, config=cfg, seeds=[1, 2, 3])
    alone = generate_ar(model, PROMPTS[1:2], eos_token_ids=[-1], pad_token_id=0, config=cfg, seeds=[2])
    other = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, config=cfg, seeds=[1, 99, 3])
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    assert a[1].token_ids == alone[0].token_ids
    assert a[1].token_ids != other[1].token_ids
    greedy = generate_ar(model, PROMPTS, eos_token_ids=[-1], pad_token_id=0, config=ARConfig(max_new_tokens=12))
    assert any(x.token_ids != g.token_ids for x, g in zip(a, greedy))


def test_top_p_keeps_smallest_set_reaching_mass():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = top_p_filter(logits, 0.75).isfinite()[0].tolist()
    assert kept == [True, True, False, False]
    assert top_p_filter(logits, 0.1).isfinite()[0].tolist() == [True, False, False, False]


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).repeat(1, 1)
    gens = row_generators([0], torch.device("cpu"))
    draws = [int(choose_tokens(logits, temperature=1.0, generators=gens)[0]) for _ in range(3000)]
    freq = [draws.count(i) / len(draws) for i in range(3)]
    assert abs(freq[0] - 0.7) < 0.04 and abs(freq[1] - 0.2) < 0.04 and abs(freq[2] - 0.1) < 0.03


def test_left_pad_and_bad_prompts():
    ids, mask = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    with pytest.raises(ValueError, match="at least one token"):
        left_pad([[1], []], pad_id=0)
    model = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match="cap >= 1"):
        generate_ar(model, [[1, 2]], eos_token_ids=[2], pad_token_id=0, max_new_tokens=[0])
