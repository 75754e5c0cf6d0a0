"""The engine's KV cache: one preallocated buffer per layer, every row with its own length.

Layout (per layer; R rows, Hkv KV heads, D head size):

    k[layer], v[layer] : (R, Hkv, capacity, D), allocated once per decode
        slots [0, kv_start[r])          left padding of row r's prompt: never attended
        slots [kv_start[r], length[r])  row r's verified tokens (prompt, then its output)
        slots [length[r], capacity)     free; a forward writes its whole new span here

A forward's new span (clean run, then any draft blocks) is written at each row's own length
before attention (`attend`), and attention runs over the buffer's used slots with one mask,
built once per forward (`begin`) from the span's own pattern: nothing is concatenated, and
grouped-query heads are not repeated. `accept` then moves each row's length past only the tokens
it verified; what lies beyond is never attended, and the next forward overwrites it.

The protocol the layer loops call (`attend`, `write`, `advance`) is the block cache's, so the
same forward serves both; here `write` and `advance` have nothing left to do.

static=True (for CUDA graphs, decoding/cuda_graphs.py): a forward's shapes depend only on (rows, new
tokens) and the capacity, never on the rows' lengths: attention runs over every slot (the mask hides
the free ones), new K/V always go in by scatter, and the mask and slot index live in buffers that
`begin` fills in place, so a captured graph reads this step's values. `generation` counts the times
the buffers were reallocated (rows left the batch), after which a captured graph is stale.
"""

from __future__ import annotations

import torch

from kernels import registry


class RowKVCache:
    def __init__(self, n_layers: int, rows: int, kv_heads: int, head_dim: int, capacity: int,
                 kv_start: torch.Tensor, dtype: torch.dtype, device: torch.device, static: bool = False):
        shape = (rows, kv_heads, capacity, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.kv_start = kv_start.to(device=device, dtype=torch.int64)  # (R,)
        self.lengths = [0] * rows  # host copy: the decoder knows every row's length without a sync
        self.capacity = capacity
        self._mask: torch.Tensor | None = None  # (R, 1, Tq, S) for the current forward
        self._slots: torch.Tensor | None = None  # (R, Tn) buffer slot of each new token
        self._used = 0  # S: slots the current forward attends over
        self.static = static
        self.generation = 0
        self._buffers: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # static: (Tq, Tn) -> mask, slots

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def begin(self, new_mask: torch.Tensor) -> None:
        """Prepare one forward. new_mask (R, Tq, Tn) bool: which new tokens each new query sees
        (its clean run and draft blocks); every cached verified slot is visible to every query."""
        r, tq, tn = new_mask.shape
        dev = new_mask.device
        top = max(self.lengths)
        if top + tn > self.capacity:
            raise RuntimeError(f"KV cache overflow: {top} + {tn} > capacity {self.capacity}")
        self._used = self.capacity if self.static else top + tn
        length = torch.tensor(self.lengths, dtype=torch.int64, device=dev)  # (R,)
        self._slots = length[:, None] + torch.arange(tn, device=dev)[None, :]  # (R, Tn)
        t = torch.arange(self._used, device=dev)
        rel = t[None, :] - length[:, None]  # (R, S) index into the new span; < 0 for cached slots
        cached = (t[None, :] >= self.kv_start[:, None]) & (rel < 0)  # (R, S)
        inside = (rel >= 0) & (rel < tn)
        new = new_mask.gather(2, rel.clamp(0, tn - 1)[:, None, :].expand(r, tq, self._used))  # (R, Tq, S)
        mask = cached[:, None, :] | (new & inside[:, None, :])
        if self.static:  # the same tensors every step of this shape, filled in place
            if (tq, tn) not in self._buffers:
                self._buffers[(tq, tn)] = (torch.empty_like(mask[:, None]), torch.empty_like(self._slots))
            mask_buf, slots_buf = self._buffers[(tq, tn)]
            mask_buf.copy_(mask[:, None])
            slots_buf.copy_(self._slots)
            self._mask, self._slots = mask_buf, slots_buf
            return
        # one row, nothing padded, every query seeing every key: no mask at all (SDPA's fastest path)
        self._mask = None if bool(mask.all()) else mask[:, None]

    def attend(self, layer: int, q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, *, n_causal: int = 0,
               q_offset: int = 0, scale: float) -> torch.Tensor:
        """q (R, Hq, Tq, D); k/v_new (R, Hkv, Tn, D) -> (R, Hq, Tq, D). n_causal and q_offset belong
        to the block cache's fixed pattern; here `begin`'s mask says everything."""
        if self._slots is None:
            raise RuntimeError("RowKVCache.attend: call begin(new_mask) before the forward")
        tn = k_new.shape[2]
        if not self.static and len(set(self.lengths)) == 1:  # every row at the same length (AR steps): one slice
            lo = self.lengths[0]
            self.k[layer][:, :, lo:lo + tn] = k_new
            self.v[layer][:, :, lo:lo + tn] = v_new
        else:
            index = self._slots[:, None, :, None].expand(-1, k_new.shape[1], -1, k_new.shape[3])  # (R, Hkv, Tn, D)
            self.k[layer].scatter_(2, index, k_new)
            self.v[layer].scatter_(2, index, v_new)
        used = self._used
        return registry.masked_attention(q, self.k[layer][:, :, :used], self.v[layer][:, :, :used], self._mask,
                                         scale=scale)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Nothing to do: `attend` already wrote the whole new span at every row's length."""

    def advance(self, t: int) -> None:
        """Nothing to do: how far each row moves is known only after verification (`accept`)."""

    def accept(self, n: list[int]) -> None:
        """Row b keeps the first n[b] slots of the last forward's span as verified."""
        self.lengths = [length + int(k) for length, k in zip(self.lengths, n)]

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep only the given rows (finished rows leave the batch)."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]
        self.kv_start = self.kv_start.index_select(0, index)
        self.lengths = [self.lengths[i] for i in index.tolist()]
        self._buffers.clear()
        self.generation += 1
