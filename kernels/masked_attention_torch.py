"""Attention with an explicit boolean mask over a preallocated KV buffer: SDPA, no copies.

    q (R, Hq, Tq, D), k/v (R, Hkv, S, D), mask (R, 1, Tq, S) bool or None -> (R, Hq, Tq, D)

The engine's row cache writes a forward's new K/V into its buffer first and then calls this over
the used slots, so nothing is concatenated and grouped-query heads are not repeated (`enable_gqa`):
on SmolLM2-135M at batch 8 over a 300-token cache that copy was ~55 MB a forward. Every query must
see at least one key (the engine's masks always let a token see itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, *,
                     scale: float | None = None) -> torch.Tensor:
    if q.dim() != 4 or k.shape != v.shape or k.shape[0] != q.shape[0] or q.shape[1] % k.shape[1]:
        raise ValueError(f"masked_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit")
    if mask is not None and mask.shape != (q.shape[0], 1, q.shape[2], k.shape[2]):
        raise ValueError(f"masked_attention: mask {tuple(mask.shape)} should be {(q.shape[0], 1, q.shape[2], k.shape[2])}")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
