"""The reference block-diffusion decoder: no cache, slow, obviously correct.

Every step re-runs the model's own HF forward over the whole sequence so far (prompt, committed
blocks, the active block) with an explicit block-diffusion attention mask:

    committed positions   causal (each sees itself and what precedes it)
    active block          sees every committed position and the whole block (bidirectional)
    left padding          never seen

It follows the same decoding policy as the cached decoder (same blocks and sub-blocks, same
strategy, the shifted families' first token taken from the previous position's logits, logits
reused until something is committed) but shares none of its machinery: no KV cache, no
sub-block cache, no custom attention: every forward is the model's own, from scratch. With the
sub-block cache off, the two must produce the same tokens; tests/test_diffusion_parity.py checks it.
Its default strategy is LLaDA's: a fixed number of steps per block with low-confidence remasking.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from generators.decoding.families import DiffusionFamily
from generators.decoding.proposals import DecodeConfig, banned_next_tokens
from generators.decoding.block_state import new_state
from generators.decoding.commit_rules import CommitRule
from generators.results import RowResult

LLADA_STRATEGY = CommitRule(name="fixed_k")


def block_diffusion_mask(kv_start: torch.Tensor, block_start: int, width: int) -> torch.Tensor:
    """(R, 1, T, T) bool: True where query (row) may attend key (column)."""
    t = torch.arange(width, device=kv_start.device)
    q, k = t[:, None], t[None, :]
    structural = (k <= q) | (q >= block_start)  # causal prefix; the block sees everything up to its end
    real = k[None] >= kv_start[:, None, None]  # (R, 1, T)
    own = (k == q)[None]  # padding queries see themselves, so no row is empty (SDPA would give NaN)
    return ((structural[None] & real) | own)[:, None]


def full_logits(model: torch.nn.Module, x: torch.Tensor, kv_start: torch.Tensor, block_start: int) -> torch.Tensor:
    """Logits (R, T, V) of the sequence x (R, T) whose last block starts at block_start."""
    width = x.shape[1]
    positions = (torch.arange(width, device=x.device)[None] - kv_start[:, None]).clamp(min=0)
    mask = block_diffusion_mask(kv_start, block_start, width)
    logits = model(input_ids=x, attention_mask=mask, position_ids=positions, use_cache=False).logits
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


@torch.inference_mode()
def generate_reference(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    family: DiffusionFamily,
    mask_token_id: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    config: DecodeConfig = DecodeConfig(),
    strategy: CommitRule = LLADA_STRATEGY,
    seeds: Sequence[int] | None = None,
    max_new_tokens: Sequence[int] | None = None,
    stop_checker=None,
) -> list[RowResult]:
    if not prompts:
        return []
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    st = new_state(prompts, config, mask_token_id=mask_token_id, eos_token_ids=eos_token_ids,
                   pad_token_id=pad_token_id, seeds=seeds, max_new_tokens=max_new_tokens, device=device)
    B, b, shift = config.block_size, config.sub, int(family.shift)
    steps_per_window = max(1, (strategy.steps_per_block or B) // config.windows)
    results: dict[int, RowResult] = {}

    def block_predictions(s: int) -> torch.Tensor:
        """(R, B, V): the logits that predict each position of the block starting at s."""
        logits = full_logits(model, st.x[:, : s + B], st.kv_start, s)
        st.count_forward()
        return logits[:, s - shift: s - shift + B]

    for blk in range(st.n_blocks):
        if st.rows == 0:
            break
        s = st.P + blk * B
        preds = block_predictions(s)
        if shift:
            st.commit_first_token(s, preds[:, 0], config)
            keep = st.collect_finished(results, stop_checker, t0)
            if keep is not None:
                preds = preds.index_select(0, keep)
        first_preds = preds
        for window in range(config.windows):
            lo, steps = s + window * b, 0
            while st.rows and st.has_candidates(lo, lo + b):
                if preds is None:
                    preds = block_predictions(s)
                steps += 1
                st.step(s, window * b, preds[:, window * b:(window + 1) * b], config, strategy,
                        steps_left=max(1, steps_per_window - steps + 1),
                        force=not (shift and preds is first_preds))
                preds = None
                st.collect_finished(results, stop_checker, t0)
    st.collect_finished(results, stop_checker, t0, force=True)
    return [results[i] for i in range(len(prompts))]


@torch.inference_mode()
def reference_greedy(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    eos_token_ids: Sequence[int],
    max_new_tokens: Sequence[int],
    no_repeat_ngram: int = 0,
    stop_checker=None,
) -> list[RowResult]:
    """The slow twin of verify.generate_verified: greedy AR, one row at a time, one token per forward
    of the model's own HF forward over the whole sequence (no cache, no drafts, no masks)."""
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    eos = set(int(e) for e in eos_token_ids)
    results: list[RowResult] = []
    for r, (prompt, cap) in enumerate(zip(prompts, max_new_tokens)):
        out: list[int] = []
        reason = "length"
        while len(out) < cap:
            x = torch.tensor([list(prompt) + out], device=device)
            logits = model(input_ids=x, use_cache=False).logits[0, -1].float()  # (V,)
            if no_repeat_ngram:
                logits[banned_next_tokens(out, no_repeat_ngram)] = float("-inf")
            token = int(logits.argmax())
            if token in eos:
                reason = "eos"
            else:
                out.append(token)
            cut = stop_checker(r, list(out)) if stop_checker is not None else None
            if cut is not None:
                out, reason = out[:cut], "stop"
            if reason != "length":
                break
        results.append(RowResult(out, len(out) + (reason == "eos"), time.perf_counter() - t0, reason))
    return results
