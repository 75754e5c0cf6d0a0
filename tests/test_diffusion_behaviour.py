"""Decoder behaviour: never stalls, stops at EOS / cap / stop sequences, drops finished rows,
is deterministic for a seed; strategies and adapter table on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

from generators.decoding.families import FAMILIES, get_family
from generators.decoding.block_decoder import generate_diffusion
from generators.decoding.proposals import DecodeConfig
from generators.decoding.commit_rules import CommitRule, Verify, factor_select, fixed_k_select, threshold_select
from tests.diffusion_helpers import MASK, PROMPTS, TOK, decode, model


@pytest.mark.parametrize("family", ["tiny-shifted", "tiny-unshifted"])
def test_never_stalls_even_when_nothing_is_confident(family):
    rows = decode(model("tiny-llama"), family=family, strategy=CommitRule("threshold", threshold=1.0),
                  block_size=4, max_new_tokens=10)
    for r in rows:
        # one committed token per step at worst; shifted families also take each block's first token
        assert r.generated_tokens == 10 and r.forward_passes <= 10 and r.finish_reason == "length"


@pytest.mark.parametrize("cap", [1, 5, 7, 8])
def test_hard_cap_even_when_not_a_multiple_of_the_block(cap):
    rows = decode(model("tiny-qwen2"), block_size=4, max_new_tokens=cap)
    assert all(r.generated_tokens == cap and r.finish_reason == "length" for r in rows)


def test_per_row_caps():
    m = model("tiny-llama")
    from generators.decoding.block_decoder import generate_diffusion as gen

    rows = gen(m, PROMPTS, family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1],
               pad_token_id=0, config=DecodeConfig(block_size=4), strategy=CommitRule("threshold", threshold=0.05),
               max_new_tokens=[3, 9, 6])
    assert [r.generated_tokens for r in rows] == [3, 9, 6]
    assert rows[0].forward_passes < rows[1].forward_passes  # a finished row left the batch


def test_eos_ends_a_row_early_and_it_leaves_the_batch():
    m = model("tiny-llama")
    plain = decode(m, max_new_tokens=20, block_size=1)  # block 1: AR-like, EOS position is exact
    eos = plain[0].token_ids[6]
    first = plain[0].token_ids.index(eos)
    rows = decode(m, max_new_tokens=20, block_size=1, eos=(eos,))
    assert rows[0].finish_reason == "eos" and rows[0].token_ids == plain[0].token_ids[:first]
    assert eos not in rows[0].token_ids
    assert rows[0].forward_passes == first + 1 < max(r.forward_passes for r in rows)


def test_eos_in_parallel_blocks_truncates_and_never_leaks():
    m = model("tiny-qwen2")
    plain = decode(m, max_new_tokens=24, block_size=8, sub_block_size=4)
    eos = plain[1].token_ids[9]
    rows = decode(m, max_new_tokens=24, block_size=8, sub_block_size=4, eos=(eos,))
    for r in rows:
        assert eos not in r.token_ids
        assert r.finish_reason == ("eos" if r.generated_tokens < 24 else "length")


def test_stop_checker_cuts_the_output():
    m = model("tiny-llama")
    plain = decode(m, max_new_tokens=16)
    target = plain[2].token_ids[3:5]

    def stop(row, ids):
        for i in range(len(ids) - 1):
            if ids[i:i + 2] == target:
                return i
        return None

    rows = generate_diffusion(m, PROMPTS, family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1],
                              pad_token_id=0, config=DecodeConfig(block_size=4, max_new_tokens=16),
                              strategy=CommitRule("threshold", threshold=0.05), stop_checker=stop)
    assert rows[2].finish_reason == "stop" and rows[2].token_ids == plain[2].token_ids[:3]


def test_seeded_sampling_is_deterministic_and_seed_dependent():
    m = model("tiny-llama")

    def run(seeds, prompts=PROMPTS):
        return [r.token_ids for r in generate_diffusion(
            m, prompts, family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1], pad_token_id=0,
            config=DecodeConfig(block_size=4, max_new_tokens=12, temperature=1.0), seeds=seeds,
            strategy=CommitRule("threshold", threshold=0.05))]

    a, b = run([1, 2, 3]), run([1, 2, 3])
    assert a == b
    assert run([1, 7, 3])[1] != a[1]
    assert run([2], PROMPTS[1:2])[0] == a[1]  # a row's output does not depend on its batch
    assert a != [r.token_ids for r in decode(m, max_new_tokens=12)]  # sampling differs from greedy


def test_counters_are_consistent():
    for r in decode(model("tiny-qwen2"), block_size=4, sub_block_size=2, max_new_tokens=13):
        c = r.counters()
        assert c["generated_tokens"] == 13 and c["forward_passes"] >= 13 / 4
        assert c["tokens_per_forward"] == pytest.approx(13 / c["forward_passes"], abs=1e-3)
        assert c["wall_s"] > 0


def test_config_validation():
    with pytest.raises(ValueError, match="must divide block_size"):
        DecodeConfig(block_size=4, sub_block_size=3)
    with pytest.raises(ValueError, match=">= 1"):
        DecodeConfig(block_size=0)
    with pytest.raises(ValueError, match="unknown commit rule"):
        CommitRule("greedy")
    with pytest.raises(ValueError, match=r"Verify\(\.\.\.\)"):
        CommitRule("verify")  # draft-and-verify is its own config, not a commit rule
    with pytest.raises(TypeError, match="generate_verified"):
        decode(model("tiny-llama"), strategy=Verify(drafts=2))
    with pytest.raises(ValueError, match="threshold must be in"):
        CommitRule(threshold=1.5)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        decode(model("tiny-llama"), max_new_tokens=0)
    with pytest.raises(ValueError, match="cap >= 1 for every prompt"):
        generate_diffusion(model("tiny-llama"), PROMPTS, family=get_family("tiny-shifted"), mask_token_id=MASK,
                           eos_token_ids=[2], pad_token_id=0, max_new_tokens=[4, 0, 4])


def test_adapter_table():
    assert FAMILIES["fast-dllm-v2"].mask_token_id == 151665 and FAMILIES["fast-dllm-v2"].shift
    assert FAMILIES["dream"].shift and not FAMILIES["llada"].shift
    assert get_family("tiny-unshifted").resolve_mask_id(TOK) == MASK
    assert get_family("fast-dllm-v2").resolve_mask_id(TOK) == 151665
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        get_family("smollm2-block-lora").resolve_mask_id(TOK)
    with pytest.raises(ValueError, match="unknown diffusion family"):
        get_family("gpt")


def test_strategies_on_hand_made_confidences():
    conf = torch.tensor([[0.95, 0.5, 0.92, 0.1], [0.3, 0.2, 0.1, 0.05], [0.99, 0.98, 0.97, 0.96]])
    cand = torch.tensor([[True, True, True, True], [False, True, True, False], [True, True, True, True]])
    assert threshold_select(conf, cand, threshold=0.9).int().tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]]
    # factor 1.0: top n while (n+1)(1-c_n) < 1
    assert factor_select(conf, cand, factor=1.0).int().tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]]
    assert factor_select(conf, cand, factor=0.05).int().tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    assert fixed_k_select(conf, cand, steps_left=2).int().tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]]
    assert fixed_k_select(conf, cand, steps_left=1).int().tolist() == [[1, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]]
    none = torch.zeros_like(cand)
    for fn in (threshold_select, factor_select, fixed_k_select):
        assert not fn(conf, none, threshold=0.9, factor=1.0, steps_left=1).any()
