"""The decode step as CUDA graphs: one capture per step shape, replayed every step of that shape.

    GraphedModel(model, capture=None)     a BlockModel whose forward replays a captured graph
                                          (capture=None: on CUDA only; False: the same bookkeeping, eager)

On an H200 a forward of the 135M default model spent 56-180 ms on host work (kernel launches, Python)
for a few ms of GPU work. A graph launches the whole forward at once. What it needs is static shapes
and static memory, which the engine gives it this way:
- the row cache in static mode (row_cache.py): attention over every slot, new K/V always scattered,
  the mask and slot index in buffers that `begin` fills in place;
- the step's ids and positions copied into this wrapper's buffers before each replay;
- one graph per (rows, new tokens per row, causal prefix, adapter switch), so an AR step, a
  draft-and-verify step and the prefill each get theirs; a graph goes stale when the cache
  reallocates its buffers (rows left the batch: `cache.generation`), and is captured again.
The output is the graph's own tensor: the engine reads it (logits, draft gathers) before the next
forward, which overwrites it.

The slow reference beside it is the same forward run eagerly (capture=False), which the CPU tests hold
token for token to the plain cache; scripts/gpu/engine.sh holds the captured one to it on a GPU. The
setting HYBRIDGEN_CUDA_GRAPHS turns it on (off by default until that script has passed on a GPU).
"""

from __future__ import annotations

from typing import Any

import torch

GraphKey = tuple[tuple[int, ...], int, bool, bool]  # (ids shape, n_causal, commit, adapt_clean)


class GraphedModel:
    static_cache = True
    """The engine builds this model's row cache in static mode."""

    def __init__(self, model, capture: bool | None = None):
        self.model = model
        self.shape = model.shape
        self.capture = model.device.type == "cuda" if capture is None else capture
        if self.capture and model.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self._graphs: dict[GraphKey, tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._generation: tuple[int, int] | None = None  # (id of the cache, its generation) the graphs are for
        self.captures = 0
        self.replays = 0

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self) -> torch.device:
        return self.model.device

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.logits(hidden)

    def with_lora(self, factors: dict) -> "GraphedModel":
        """The refiner's view (the same weights with an adapter's factors), graphed the same way."""
        return GraphedModel(self.model.with_lora(factors), capture=self.capture)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, cache, *, n_causal: int, commit: bool,
                adapt_clean: bool = True, **kw) -> torch.Tensor:
        if kw.get("sub_cache") is not None or kw.get("store_sub_cache") or not getattr(cache, "static", False):
            return self.model.forward(ids, positions, cache, n_causal=n_causal, commit=commit,
                                      adapt_clean=adapt_clean, **kw)  # not a row-cache step: eager
        owner = (id(cache), cache.generation)
        if owner != self._generation:
            self._graphs.clear()
            self._generation = owner
        key: GraphKey = (tuple(ids.shape), n_causal, commit, adapt_clean)
        if key not in self._graphs:
            self._graphs[key] = self._record(ids, positions, cache, key)
            self.captures += 1
        graph, ids_buf, pos_buf, out = self._graphs[key]
        ids_buf.copy_(ids)
        pos_buf.copy_(positions)
        if graph is None:  # eager bookkeeping (CPU tests): the same buffers, run now
            return self._run(ids_buf, pos_buf, cache, key)
        graph.replay()
        self.replays += 1
        return out

    def _run(self, ids: torch.Tensor, positions: torch.Tensor, cache, key: GraphKey) -> torch.Tensor:
        _, n_causal, commit, adapt_clean = key
        return self.model.forward(ids, positions, cache, n_causal=n_causal, commit=commit, adapt_clean=adapt_clean)

    def _record(self, ids: torch.Tensor, positions: torch.Tensor, cache, key: GraphKey):
        ids_buf, pos_buf = ids.clone(), positions.clone()
        if not self.capture:
            return None, ids_buf, pos_buf, None
        # warm up on a side stream (cuBLAS and allocator state), then capture. The warm-up writes the
        # step's K/V into the cache; the replay right after writes the same values in the same slots.
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._run(ids_buf, pos_buf, cache, key)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._run(ids_buf, pos_buf, cache, key)
        return graph, ids_buf, pos_buf, out
