"""The draft-and-verify decoder's KV cache: every row has its own length.

Layout (per layer; R rows, Hkv KV heads, D head size):

    k[layer], v[layer] : (R, Hkv, capacity, D), preallocated once per decode
        slots [0, kv_start[r])          left padding of row r's prompt: never attended
        slots [kv_start[r], length[r])  row r's verified tokens (prompt, then its output)
        slots [length[r], capacity)     free; the next forward's clean span is staged here

Unlike `BlockKVCache`, rows advance by different amounts: each forward verifies a different number
of drafted tokens per row. A forward writes its whole clean span at every row's own `length`
(`write`); `accept` then moves each row's length past only the tokens it verified. What lies
beyond a row's length is never attended, and the next forward overwrites it.

Attention runs with an explicit mask over the new span (`new_mask`, set by the decoder before
each forward), because that span holds a causal run and several draft blocks, each attached to a
different point of it (see verify.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generators.diffusion.cache import kv_buffers


class RowKVCache:
    def __init__(self, n_layers: int, rows: int, kv_heads: int, head_dim: int, capacity: int,
                 kv_start: torch.Tensor, dtype: torch.dtype, device: torch.device):
        self.k, self.v = kv_buffers(n_layers, rows, kv_heads, head_dim, capacity, dtype, device)
        self.kv_start = kv_start.to(device=device, dtype=torch.int64)  # (R,)
        self.length = torch.zeros(rows, dtype=torch.int64, device=device)  # (R,)
        self.capacity = capacity
        self.new_mask: torch.Tensor | None = None  # (R, Tq, Tn) bool, set before each forward

    @property
    def rows(self) -> int:
        return self.kv_start.shape[0]

    def attend(self, layer: int, q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, *, n_causal: int,
               q_offset: int, scale: float) -> torch.Tensor:
        """q (R, Hq, Tq, D) over [cached slots | new span] -> (R, Hq, Tq, D). The new span's pattern is
        `new_mask`; n_causal and q_offset belong to the block cache's fixed pattern and are unused."""
        if self.new_mask is None:
            raise RuntimeError("RowKVCache.attend: set new_mask before the forward")
        r, hq, tq, _ = q.shape
        hkv, tn = k_new.shape[1], k_new.shape[2]
        used = int(self.length.max())
        keys = torch.cat([self.k[layer][:, :, :used], k_new], dim=2)  # (R, Hkv, used + Tn, D)
        values = torch.cat([self.v[layer][:, :, :used], v_new], dim=2)
        if hq != hkv:  # grouped-query attention
            keys = keys.repeat_interleave(hq // hkv, dim=1)
            values = values.repeat_interleave(hq // hkv, dim=1)
        t = torch.arange(used, device=q.device)
        cached = (t[None, :] >= self.kv_start[:, None]) & (t[None, :] < self.length[:, None])  # (R, used)
        mask = torch.cat([cached[:, None, :].expand(r, tq, used), self.new_mask], dim=2)  # (R, Tq, used + Tn)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask[:, None], scale=scale)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Stage a clean span's K/V (R, Hkv, T, D) at slots [length[r], length[r] + T) of each row."""
        t = k.shape[2]
        if int(self.length.max()) + t > self.capacity:
            raise RuntimeError(f"KV cache overflow: {int(self.length.max())} + {t} > capacity {self.capacity}")
        slots = self.length[:, None] + torch.arange(t, device=k.device)[None, :]  # (R, T)
        index = slots[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])  # (R, Hkv, T, D)
        self.k[layer].scatter_(2, index, k)
        self.v[layer].scatter_(2, index, v)

    def advance(self, t: int) -> None:
        """No-op: how far each row moves is known only after verification (`accept`)."""

    def accept(self, n: torch.Tensor) -> None:
        """Row r keeps the first n[r] staged slots (R,) as verified."""
        self.length = self.length + n.to(self.length)

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep only the given rows (finished rows leave the batch)."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]
        self.kv_start = self.kv_start.index_select(0, index)
        self.length = self.length.index_select(0, index)
