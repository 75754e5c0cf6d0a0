"""Input checks shared by every implementation of a kernel: clear errors instead of wrong numbers."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


class KernelInputError(ValueError):
    """A kernel was called with tensors of the wrong shape, dtype or device."""


def check_block_attention(q, k_cache, v_cache, k_new, v_new, kv_start, cache_len, n_causal, q_offset) -> None:
    def fail(msg: str) -> None:
        raise KernelInputError(f"block_attention: {msg}")

    tensors = {"q": q, "k_cache": k_cache, "v_cache": v_cache, "k_new": k_new, "v_new": v_new}
    for name, t in tensors.items():
        if t.dim() != 4:
            fail(f"{name} must be 4-D (batch, heads, tokens, head_dim), got shape {tuple(t.shape)}")
        if t.dtype not in FLOAT_DTYPES:
            fail(f"{name} has dtype {t.dtype}; expected float32, float16 or bfloat16")
        if t.dtype != q.dtype:
            fail(f"{name} has dtype {t.dtype} but q has {q.dtype}; all inputs must share one dtype")
        if t.device != q.device:
            fail(f"{name} is on {t.device} but q is on {q.device}")
    r, hq, tq, d = q.shape
    for name in ("k_cache", "v_cache", "k_new", "v_new"):
        t = tensors[name]
        if t.shape[0] != r or t.shape[3] != d:
            fail(f"{name} has shape {tuple(t.shape)}; expected batch {r} and head_dim {d} like q {tuple(q.shape)}")
    hkv = k_new.shape[1]
    if k_cache.shape[1] != hkv or v_cache.shape[1] != hkv or v_new.shape[1] != hkv:
        fail("k_cache, v_cache, k_new and v_new must have the same number of KV heads")
    if hq % hkv != 0:
        fail(f"query heads ({hq}) must be a multiple of KV heads ({hkv}) for grouped-query attention")
    if k_cache.shape != v_cache.shape or k_new.shape != v_new.shape:
        fail("keys and values must have the same shapes")
    if not 0 <= cache_len <= k_cache.shape[2]:
        fail(f"cache_len={cache_len} is outside the cache's {k_cache.shape[2]} slots")
    tn = k_new.shape[2]
    if not 0 <= n_causal <= tn:
        fail(f"n_causal={n_causal} must be between 0 and the {tn} new tokens")
    if q_offset < 0 or q_offset + tq > tn:
        fail(f"queries [{q_offset}, {q_offset + tq}) must lie within the {tn} new tokens")
    if kv_start.dim() != 1 or kv_start.shape[0] != r or kv_start.dtype not in (torch.int32, torch.int64):
        fail(f"kv_start must be an int32/int64 vector of length {r}, got {kv_start.dtype} {tuple(kv_start.shape)}")


def check_confidence(logits, temperature) -> None:
    if logits.dim() != 2:
        raise KernelInputError(f"confidence: logits must be 2-D (positions, vocab), got shape {tuple(logits.shape)}")
    if logits.dtype not in FLOAT_DTYPES:
        raise KernelInputError(f"confidence: logits have dtype {logits.dtype}; expected a float dtype")
    if logits.shape[1] == 0:
        raise KernelInputError("confidence: empty vocabulary")
    if not temperature > 0:
        raise KernelInputError(f"confidence: temperature must be > 0, got {temperature}")


def check_masked_attention(q, k, v, mask) -> None:
    """q (R, Hq, Tq, D), k/v (R, Hkv, S, D) with Hq a multiple of Hkv, mask (R, 1, Tq, S) or None."""
    if (q.dim() != 4 or k.dim() != 4 or k.shape != v.shape or k.shape[0] != q.shape[0]
            or k.shape[3] != q.shape[3] or q.shape[1] % k.shape[1]):
        raise KernelInputError(f"masked_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit")
    want = (q.shape[0], 1, q.shape[2], k.shape[2])
    if mask is not None and tuple(mask.shape) != want:
        raise KernelInputError(f"masked_attention: mask {tuple(mask.shape)} should be {want}")
