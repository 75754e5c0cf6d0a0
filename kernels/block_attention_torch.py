"""Reference block attention: SDPA with an explicit boolean mask.

Attention of the tokens processed in one refiner forward ("new" tokens) over the committed-block
KV cache plus the new tokens themselves:

    keys   = [ cache slots 0 .. cache_len-1 | new tokens 0 .. Tn-1 ]      (absolute positions)
    new    = [ clean span (n_causal tokens, being committed) | draft block ]

    query at new index a may see key at absolute position t iff
        t >= kv_start[row]                                  (left padding is never seen), and
        t is a cache slot                                   (committed blocks: always visible), or
        a >= n_causal                                        (draft tokens see every new token:
                                                              bidirectional inside the block), or
        t - cache_len <= a                                   (clean tokens are causal)

A query that can see no key at all (a padding position) returns zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.checks import check_block_attention


def block_attention_mask(kv_start: torch.Tensor, cache_len: int, n_new: int, n_causal: int,
                         q_offset: int, n_query: int) -> torch.Tensor:
    """Boolean mask (R, 1, Tq, cache_len + Tn): True where a query may attend."""
    device = kv_start.device
    t = torch.arange(cache_len + n_new, device=device)  # (L,)
    a = torch.arange(q_offset, q_offset + n_query, device=device)  # (Tq,)
    visible = t[None, :] >= kv_start[:, None]  # (R, L)
    j = t - cache_len  # new index of each key (negative for cache slots)
    structural = (j[None, :] < 0) | (a[:, None] >= n_causal) | (j[None, :] <= a[:, None])  # (Tq, L)
    return (visible[:, None, :] & structural[None, :, :])[:, None, :, :]  # (R, 1, Tq, L)


def block_attention(q, k_cache, v_cache, k_new, v_new, kv_start, *, cache_len: int, n_causal: int,
                    q_offset: int = 0, scale: float | None = None) -> torch.Tensor:
    """q (R, Hq, Tq, D); k/v_cache (R, Hkv, Lmax, D); k/v_new (R, Hkv, Tn, D) -> (R, Hq, Tq, D)."""
    check_block_attention(q, k_cache, v_cache, k_new, v_new, kv_start, cache_len, n_causal, q_offset)
    r, hq, tq, d = q.shape
    hkv = k_new.shape[1]
    keys = torch.cat([k_cache[:, :, :cache_len], k_new], dim=2)  # (R, Hkv, L, D)
    values = torch.cat([v_cache[:, :, :cache_len], v_new], dim=2)
    if hq != hkv:  # grouped-query attention: each KV head serves hq/hkv query heads
        keys = keys.repeat_interleave(hq // hkv, dim=1)  # (R, Hq, L, D)
        values = values.repeat_interleave(hq // hkv, dim=1)
    mask = block_attention_mask(kv_start, cache_len, k_new.shape[2], n_causal, q_offset, tq)  # (R,1,Tq,L)
    has_key = mask.any(dim=-1, keepdim=True)  # (R, 1, Tq, 1)
    safe_mask = mask | ~has_key  # a fully masked row would give NaN; it is zeroed below
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=safe_mask, scale=scale)
    return out * has_key.to(out.dtype)
