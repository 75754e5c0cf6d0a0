"""The cached block-diffusion decoder (Fast-dLLM v2 style).

Per batch of prompts (left-padded to one width P), new tokens are decoded block by block:

    commit forward   [clean span | block k (masks)]   clean span = the prompt, or block k-1
                     - writes the clean span's K/V into the block cache (exact: causal, clean)
                     - with shifted logits, the last clean token predicts block k's first token,
                       committed at once (the AR model's own choice): no forward spent on it
                     - the draft part's K/V refresh the sub-block cache; its logits give the
                       first proposal for sub-block 0
    draft forwards   until every position of block k is committed, one sub-block at a time:
                     sub-block cache on:  only the sub-block's queries, the rest of the block's
                                          K/V from the sub-block cache (a new sub-block starts
                                          with a full-block forward that refreshes it)
                     sub-block cache off: the whole block every step (exact)
    each step        propose tokens + confidences for the masked positions of the active
                     sub-block; the strategy commits some (at least one per row: never stalls)

Rows leave the batch (and the cache) as soon as they finish: EOS committed with everything
before it committed, their token cap reached, or a stop sequence seen. Block boundaries are
shared by all rows; a row whose sub-block is finished waits (without drawing randomness) until
every row's is.

`reference.py` is the slow, cache-free twin; the parity tests hold this decoder to it.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from generators.decoding.families import DiffusionFamily
from generators.decoding.block_cache import BlockKVCache, SubBlockCache
from generators.decoding.model import BlockModel, as_block_model
from generators.decoding.proposals import DecodeConfig
from generators.decoding.block_state import new_state
from generators.decoding.commit_rules import CommitRule
from generators.results import RowResult

StopChecker = Callable[[int, list[int]], "int | None"]


@torch.inference_mode()
def generate_diffusion(
    model: torch.nn.Module | BlockModel,
    prompts: Sequence[Sequence[int]],
    *,
    family: DiffusionFamily,
    mask_token_id: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    config: DecodeConfig = DecodeConfig(),
    strategy: CommitRule = CommitRule(),
    seeds: Sequence[int] | None = None,
    max_new_tokens: Sequence[int] | None = None,
    stop_checker: StopChecker | None = None,
) -> list[RowResult]:
    """Decode a continuation for every prompt; one RowResult per prompt, in order."""
    if not isinstance(strategy, CommitRule):
        raise TypeError(f"generate_diffusion decodes blocks with a commit rule, got {strategy!r}; draft-and-verify "
                        "decodes through generators.decoding.verify.generate_verified (Refiner.generate picks it)")
    if not prompts:
        return []
    t0 = time.perf_counter()
    bm = as_block_model(model)
    st = new_state(prompts, config, mask_token_id=mask_token_id, eos_token_ids=eos_token_ids,
                   pad_token_id=pad_token_id, seeds=seeds, max_new_tokens=max_new_tokens, device=bm.device)
    shape = bm.shape
    cache = BlockKVCache(shape.n_layers, st.rows, shape.kv_heads, shape.head_dim, st.width,
                         st.kv_start, bm.dtype, bm.device)
    sub = SubBlockCache(shape.n_layers)
    B, b = config.block_size, config.sub
    shift = int(family.shift)
    results: dict[int, RowResult] = {}

    def finish_rows() -> torch.Tensor | None:
        keep = st.collect_finished(results, stop_checker, t0)
        if keep is not None:
            cache.select_rows(keep)
            sub.select_rows(keep)
        return keep

    clean_lo, clean_hi = 0, st.P
    for blk in range(st.n_blocks):
        if st.rows == 0:
            break
        s = st.P + blk * B  # absolute start of block k
        # -- commit forward: clean span (causal, into the cache) + block k (draft) ----------------
        h = bm.forward(st.x[:, clean_lo:s + B], st.positions(clean_lo, s + B), cache,
                       n_causal=clean_hi - clean_lo, commit=True, sub_cache=sub, store_sub_cache=True)
        st.count_forward()
        n_clean = clean_hi - clean_lo
        block_logits = bm.logits(h[:, n_clean - shift:n_clean - shift + B])  # (R, B, V)
        if shift:
            st.commit_first_token(s, block_logits[:, 0], config)
            keep = finish_rows()
            if keep is not None:
                block_logits = block_logits.index_select(0, keep)
        # The commit forward's logits drafted the whole block (its first position still masked);
        # they serve the first step. After any commit, logits are stale and a new forward runs.
        logits: torch.Tensor | None = block_logits
        window, steps_in_window = 0, 0
        while st.rows and st.has_candidates(s, s + B):
            first = window
            while not st.has_candidates(s + window * b, s + (window + 1) * b):
                window += 1
            if window != first:
                steps_in_window = 0
            ws = window * b
            if logits is None:
                if config.sub_block_cache and b < B and steps_in_window > 0:
                    # only the active sub-block's queries (shifted: from the position before it);
                    # the rest of the block's K/V come from the sub-block cache
                    q_lo = max(ws - shift, 0)
                    h = bm.forward(st.x[:, s + q_lo:s + ws + b], st.positions(s + q_lo, s + ws + b),
                                   cache, n_causal=0, commit=False, q_offset=q_lo, sub_cache=sub)
                    logits = _window_logits(bm, h, q_lo, ws, b, B, shift)
                else:
                    # whole block; at a sub-block's first step this also refreshes the sub-block cache
                    h = bm.forward(st.x[:, s:s + B], st.positions(s, s + B), cache, n_causal=0,
                                   commit=False, sub_cache=sub, store_sub_cache=config.sub_block_cache)
                    logits = _block_logits(bm, h, B, shift)
                st.count_forward()
            steps_in_window += 1
            st.step(s, ws, logits[:, ws:ws + b], config, strategy,
                    steps_left=max(1, _steps_per_window(strategy, config) - steps_in_window + 1),
                    force=not (shift and logits is block_logits))
            logits = None
            finish_rows()
        clean_lo, clean_hi = s, s + B
    st.collect_finished(results, stop_checker, t0, force=True)
    return [results[i] for i in range(len(prompts))]


def _steps_per_window(strategy: CommitRule, config: DecodeConfig) -> int:
    steps = strategy.steps_per_block or config.block_size
    return max(1, steps // config.windows)


def _block_logits(bm: BlockModel, h: torch.Tensor, B: int, shift: int) -> torch.Tensor:
    """Predictions for block positions 0..B-1 from a full-block forward's hidden states (R, B, Dm).

    Shifted: position j is predicted by hidden state j-1; position 0 (already committed) gets a
    dummy row that is never a candidate.
    """
    if not shift:
        return bm.logits(h)
    logits = bm.logits(h[:, : B - 1])  # (R, B-1, V)
    return torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)


def _window_logits(bm: BlockModel, h: torch.Tensor, q_lo: int, ws: int, b: int, B: int, shift: int) -> torch.Tensor:
    """Block-shaped (R, B, V) logits, filled only for the window [ws, ws+b) from a window forward."""
    r = h.shape[0]
    lo = ws - shift - q_lo  # hidden index predicting block position ws
    start = max(lo, 0)
    logits = bm.logits(h[:, start:lo + b])  # (R, b or b-1, V)
    out = torch.zeros((r, B, logits.shape[-1]), dtype=logits.dtype, device=logits.device)
    out[:, ws + (start - lo):ws + b] = logits
    return out
