"""The torch reference kernels against obviously-correct loops, and their input checks."""

from __future__ import annotations

import math

import pytest
import torch

from kernels.block_attention_torch import block_attention, block_attention_mask
from kernels.checks import KernelInputError
from kernels.confidence_torch import confidence, select_confident


def naive_attention(q, k_cache, v_cache, k_new, v_new, kv_start, cache_len, n_causal, q_offset, scale):
    """Per row, head and query: explicit loops over the visible keys."""
    r, hq, tq, d = q.shape
    hkv = k_new.shape[1]
    out = torch.zeros_like(q)
    keys = torch.cat([k_cache[:, :, :cache_len], k_new], dim=2)
    vals = torch.cat([v_cache[:, :, :cache_len], v_new], dim=2)
    for b in range(r):
        for h in range(hq):
            g = h // (hq // hkv)
            for i in range(tq):
                a = q_offset + i
                vis = [t for t in range(keys.shape[2]) if t >= kv_start[b]
                       and (t < cache_len or a >= n_causal or t - cache_len <= a)]
                if not vis:
                    continue
                s = torch.stack([q[b, h, i] @ keys[b, g, t] * scale for t in vis])
                w = s.softmax(0)
                out[b, h, i] = sum(w[j] * vals[b, g, t] for j, t in enumerate(vis))
    return out


@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (9, 3), (6, 1)])
@pytest.mark.parametrize("cache_len,n_new,n_causal,q_offset,tq", [(5, 7, 3, 0, 7), (0, 6, 4, 0, 6), (7, 4, 0, 1, 2), (3, 5, 5, 0, 5)])
def test_block_attention_matches_naive_loops(hq, hkv, cache_len, n_new, n_causal, q_offset, tq):
    torch.manual_seed(hq * 100 + cache_len)
    r, d = 3, 8
    q = torch.randn(r, hq, tq, d, dtype=torch.float64)
    k_cache = torch.randn(r, hkv, cache_len + 2, d, dtype=torch.float64)  # 2 unused slots
    v_cache = torch.randn_like(k_cache)
    k_new = torch.randn(r, hkv, n_new, d, dtype=torch.float64)
    v_new = torch.randn_like(k_new)
    kv_start = torch.tensor([0, 2, min(cache_len + 1, cache_len + n_new - 1)])
    scale = 1 / math.sqrt(d)
    got = block_attention(q, k_cache, v_cache, k_new, v_new, kv_start, cache_len=cache_len,
                          n_causal=n_causal, q_offset=q_offset, scale=scale)
    want = naive_attention(q, k_cache, v_cache, k_new, v_new, kv_start, cache_len, n_causal, q_offset, scale)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_mask_semantics_on_a_small_example():
    # cache of 2 slots (row 1: first slot is padding); new = 2 clean + 2 draft tokens
    mask = block_attention_mask(torch.tensor([0, 1]), cache_len=2, n_new=4, n_causal=2, q_offset=0, n_query=4)
    row0 = mask[0, 0].int().tolist()
    assert row0 == [
        [1, 1, 1, 0, 0, 0],  # clean 0: cache + itself
        [1, 1, 1, 1, 0, 0],  # clean 1: causal
        [1, 1, 1, 1, 1, 1],  # draft: everything (bidirectional in the block)
        [1, 1, 1, 1, 1, 1],
    ]
    assert mask[1, 0, :, 0].tolist() == [False] * 4  # padding is never seen


def test_fully_masked_query_returns_zeros():
    q = torch.randn(1, 2, 1, 4)
    kv = torch.randn(1, 2, 3, 4)
    out = block_attention(q, kv, kv, kv[:, :, :1], kv[:, :, :1], torch.tensor([5]), cache_len=3, n_causal=1)
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(q=torch.randn(2, 4, 3)), "q must be 4-D"),
        (dict(q=torch.randn(2, 5, 3, 8)), "must be a multiple of KV heads"),
        (dict(k_new=torch.randn(2, 2, 3, 8, dtype=torch.float64)), "all inputs must share one dtype"),
        (dict(q=torch.randint(0, 3, (2, 4, 3, 8))), "expected float32, float16 or bfloat16"),
        (dict(kv_start=torch.zeros(3, dtype=torch.long)), "kv_start must be an int32/int64 vector of length 2"),
        (dict(cache_len=9), "cache_len=9 is outside the cache's 4 slots"),
        (dict(n_causal=4), "n_causal=4 must be between 0 and the 3 new tokens"),
        (dict(q_offset=1), "queries [1, 4) must lie within the 3 new tokens"),
    ],
)
def test_block_attention_rejects_bad_inputs(change, message):
    args = dict(q=torch.randn(2, 4, 3, 8), k_cache=torch.randn(2, 2, 4, 8), v_cache=torch.randn(2, 2, 4, 8),
                k_new=torch.randn(2, 2, 3, 8), v_new=torch.randn(2, 2, 3, 8), kv_start=torch.zeros(2, dtype=torch.long),
                cache_len=2, n_causal=1, q_offset=0)
    args.update(change)
    with pytest.raises(KernelInputError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        block_attention(args.pop("q"), args.pop("k_cache"), args.pop("v_cache"), args.pop("k_new"),
                        args.pop("v_new"), args.pop("kv_start"), **args)


def test_confidence_is_stable_and_matches_softmax():
    logits = torch.tensor([[1.0, 3.0, 2.0], [1e4, -1e4, 1e4 - 1], [-5.0, -5.0, -5.0]])
    conf, idx = confidence(logits)
    probs = torch.softmax(logits.double(), dim=-1)
    # float32 logits of magnitude 1e4 carry ~1e-3 absolute rounding; no NaN or inf, and close
    torch.testing.assert_close(conf.double(), probs.max(dim=-1).values, rtol=1e-3, atol=1e-6)
    assert idx.tolist() == [1, 0, 0]
    hot, _ = confidence(logits, temperature=0.5)
    assert hot[0] > conf[0]  # lower temperature sharpens
    with pytest.raises(KernelInputError, match="temperature must be > 0"):
        confidence(logits, temperature=0)
    with pytest.raises(KernelInputError, match="2-D"):
        confidence(logits[0])


def test_select_confident_keeps_at_least_one():
    conf = torch.tensor([[0.2, 0.95, 0.3], [0.1, 0.2, 0.3], [0.9, 0.9, 0.9]])
    cand = torch.tensor([[True, True, True], [True, True, False], [False, False, False]])
    got = select_confident(conf, cand, threshold=0.9).tolist()
    assert got == [[False, True, False], [False, True, False], [False, False, False]]
