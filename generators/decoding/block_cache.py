"""The refiner's hierarchical KV cache.

Layout (per layer; R rows, Hkv KV heads, D head size):

    BlockKVCache.k[layer], .v[layer] : (R, Hkv, capacity, D), preallocated once per decode
        slots [0, length)            committed tokens: the left-padded prompt, then whole
                                     committed blocks, in absolute sequence positions
        slots [0, kv_start[r])       left padding of row r: never attended
        slots [length, capacity)     free; a commit forward writes its clean span here

    SubBlockCache.k[layer], .v[layer] : (R, Hkv, block_size, D)
        the active block's keys/values from its last full-block forward (Fast-dLLM v2's
        sub-block cache). While the decoder works on one sub-block, only that sub-block's
        queries are recomputed; the rest of the block is read from here.

Rows share block boundaries (the prompt is left-padded to one width), so `length` is one number
for the whole batch; rows differ only in `kv_start`. Rows that finish are dropped from every
tensor (`select_rows`), so later forwards never pay for them.

Committed K/V are exact: committed tokens are causal and clean, so their K/V never depend on
what comes later. The sub-block cache is an approximation (the masked rest of the block is not
refreshed while one sub-block decodes); disable it (`sub_block_cache=False`) for exact decoding.
"""

from __future__ import annotations

import torch

from kernels import registry


def kv_buffers(n_layers: int, rows: int, kv_heads: int, head_dim: int, capacity: int, dtype: torch.dtype,
               device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-layer K and V buffers (R, Hkv, capacity, D), allocated once per decode."""
    shape = (rows, kv_heads, capacity, head_dim)
    return ([torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)],
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)])


class BlockKVCache:
    def __init__(self, n_layers: int, rows: int, kv_heads: int, head_dim: int, capacity: int,
                 kv_start: torch.Tensor, dtype: torch.dtype, device: torch.device):
        self.k, self.v = kv_buffers(n_layers, rows, kv_heads, head_dim, capacity, dtype, device)
        self.kv_start = kv_start.to(device=device, dtype=torch.int64)  # (R,)
        self.length = 0
        self.capacity = capacity

    @property
    def rows(self) -> int:
        return self.kv_start.shape[0]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store a clean span's K/V (R, Hkv, T, D) at slots [length, length + T) of one layer.

        `length` moves only in `advance`, after every layer has written, so attention inside the
        same forward still reads the span from the new tokens, not twice.
        """
        t = k.shape[2]
        if self.length + t > self.capacity:
            raise RuntimeError(f"KV cache overflow: {self.length} + {t} > capacity {self.capacity}")
        self.k[layer][:, :, self.length:self.length + t] = k
        self.v[layer][:, :, self.length:self.length + t] = v

    def advance(self, t: int) -> None:
        self.length += t

    def attend(self, layer: int, q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, *, n_causal: int,
               q_offset: int, scale: float) -> torch.Tensor:
        """Attention of the new span's queries over this cache and the new span: the block pattern
        (clean span causal, draft block bidirectional), through the kernel registry."""
        return registry.block_attention(q, self.k[layer], self.v[layer], k_new, v_new, self.kv_start,
                                        cache_len=self.length, n_causal=n_causal, q_offset=q_offset, scale=scale)

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep only the given rows (finished rows leave the batch)."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]
        self.kv_start = self.kv_start.index_select(0, index)


class SubBlockCache:
    """K/V of the active block (all its positions) from the last full-block forward."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k[layer], self.v[layer] = k, v  # (R, Hkv, B, D)

    def splice(self, layer: int, k: torch.Tensor, v: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's K/V with positions [offset, offset + T) replaced by fresh values."""
        if self.k[layer] is None:
            raise RuntimeError("sub-block cache used before a full-block forward filled it")
        ks, vs = self.k[layer].clone(), self.v[layer].clone()
        ks[:, :, offset:offset + k.shape[2]] = k
        vs[:, :, offset:offset + v.shape[2]] = v
        return ks, vs

    def select_rows(self, index: torch.Tensor) -> None:
        self.k = [None if k is None else k.index_select(0, index) for k in self.k]
        self.v = [None if v is None else v.index_select(0, index) for v in self.v]
