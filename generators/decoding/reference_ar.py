"""The slow AR reference: the HF model's own forward and DynamicCache, one token per forward.

Kept on purpose beside the engine (engine.py) and sharing none of its machinery (no packed weights,
no row cache, no row lifecycle): the parity tests hold `generate_ar` and draft-and-verify to it
token for token. Left-padded prompts, one prefill forward, then one forward per new token for the
rows still running; finished rows leave the batch.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
from transformers import DynamicCache

from generators.decoding.ar import ARConfig
from generators.prompts import left_pad
from generators.results import RowResult
from generators.sampling import choose_tokens, row_generators

# (row index in the call, tokens generated so far) -> length to keep if a stop sequence has
# appeared, else None.
StopChecker = Callable[[int, list[int]], "int | None"]
# (row indices in the call, tokens generated so far per row, logits (R, V)) -> logits (R, V).
LogitsTransform = Callable[[list[int], list[list[int]], torch.Tensor], torch.Tensor]


@torch.inference_mode()
def generate_ar_reference(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    config: ARConfig = ARConfig(),
    seeds: Sequence[int] | None = None,
    max_new_tokens: Sequence[int] | None = None,
    stop_checker: StopChecker | None = None,
    logits_transform: LogitsTransform | None = None,
) -> list[RowResult]:
    """Decode a continuation for every prompt. Returns one RowResult per prompt, in order."""
    n = len(prompts)
    if n == 0:
        return []
    caps = list(max_new_tokens) if max_new_tokens is not None else [config.max_new_tokens] * n
    if len(caps) != n or any(c < 1 for c in caps):
        raise ValueError("max_new_tokens must give a cap >= 1 for every prompt")
    device = next(model.parameters()).device
    eos = set(int(e) for e in eos_token_ids)
    gens = None
    if config.temperature > 0:
        gens = row_generators(list(seeds) if seeds is not None else [0] * n, device)

    t0 = time.perf_counter()
    ids, mask = left_pad([list(p) for p in prompts], pad_token_id, device)  # (R, T)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (R, T)
    cache = DynamicCache()
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
        use_cache=True, logits_to_keep=1,
    ).logits[:, -1, :]  # (R, V)

    active = list(range(n))  # call-row index of each batch row
    generated: list[list[int]] = [[] for _ in range(n)]
    forwards = [1] * n
    results: list[RowResult | None] = [None] * n
    last_pos = positions[:, -1]  # (R,)

    while True:
        if logits_transform is not None:
            logits = logits_transform(active, [generated[r] for r in active], logits)
        row_gens = [gens[r] for r in active] if gens is not None else None
        next_tokens = choose_tokens(logits, temperature=config.temperature, top_p=config.top_p,
                                    generators=row_gens)  # (R,)
        keep: list[int] = []
        for b, r in enumerate(active):
            tok = int(next_tokens[b])
            reason = None
            if tok in eos:
                reason = "eos"
            else:
                generated[r].append(tok)
                cut = stop_checker(r, generated[r]) if stop_checker is not None else None
                if cut is not None:
                    del generated[r][cut:]
                    reason = "stop"
                elif len(generated[r]) >= caps[r]:
                    reason = "length"
            if reason is None:
                keep.append(b)
            else:
                results[r] = RowResult(generated[r], forwards[r], time.perf_counter() - t0, reason)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_tokens, last_pos = mask[index], next_tokens[index], last_pos[index]
            active = [active[b] for b in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)  # (R, T+1)
        last_pos = last_pos + 1
        logits = model(
            input_ids=next_tokens[:, None], attention_mask=mask, position_ids=last_pos[:, None],
            past_key_values=cache, use_cache=True,
        ).logits[:, -1, :]
        for r in active:
            forwards[r] += 1
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]
