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

from kernels.checks import check_masked_attention


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, *,
                     scale: float | None = None) -> torch.Tensor:
    check_masked_attention(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
