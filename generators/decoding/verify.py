"""Draft-and-verify decoding: the block-diffusion model drafts, its own causal pass verifies.

The confidence-threshold decoder (decoder.py) commits a drafted token when the model is confident
of it. With the small default refiner that is either slow (τ high: about one token per forward) or
wrong (τ low: the drafts drift from what the model would write, and validators reject them). Here
every token that reaches the output is the one the model's causal (AR) head picks after exactly
the tokens before it, so the output equals that model's greedy AR output; the drafts only decide
how many tokens one forward yields.

One forward per step, per row (D = drafts per step, u = the last verified token, not yet cached):

    clean run   [u, d1 .. dD]     causal over the row's cache: the logits after u, d1, .. dD are
                                  the AR choices g0 .. gD. Accept a = the longest prefix with
                                  d(j+1) == g(j); the row gains d1 .. da and the bonus g(a).
    draft blocks [mask x D] per attach point e: the block sees the cache and the clean run up to
                 e, and itself (bidirectional, as the adapter was trained). Block slot 0 sits where
                 the bonus will go; slots 0 .. D-1 predict the D tokens after it: the next drafts.
                 tree=True: one block per e = 0 .. D, so whatever a turns out to be, the next step
                 has drafts (the block at e = a). tree=False: one block after the whole run, whose
                 drafts are usable only when everything was accepted.

verify_on_base (the default): a LoRA adapter acts on the draft blocks only, so the clean run, its
K/V and the choices g are the base model's: the output is exactly the base (planner) model's greedy
AR output, whatever the adapter drafts. False: the adapter acts on every token (the output is the
adapted model's own greedy AR output; its drafts agree with it more often).

forward_budget caps the tokens one forward may hold across the batch. A CPU runs a forward of a few
tokens in about the time of one, but not of hundreds: with many rows live, drafting would cost more
than it yields, so each step drafts as many tokens per row as fit the budget (0 at worst: a plain
AR step). As rows finish, drafting resumes. The output does not depend on it; only speed does.

The clean run's K/V are staged in the row cache and the row keeps the first a + 1 (u, d1 .. da);
the bonus becomes the next u. The first forward is the prompt itself with one draft block after
it. Rows advance by different amounts, hence `RowKVCache` (per-row lengths, explicit masks).

Sampling (temperature > 0) draws g(j) from the causal distribution with each row's generator and
accepts a draft only when it equals the draw: still an exact sample of the model, with fewer
accepted drafts. `no_repeat_ngram` bans, at each causal position, the tokens that would repeat an
n-gram of the row's output so far, as an AR decoder would.

The loop itself is the engine's (generators/decoding/engine.py: one row lifecycle, one row cache,
one forward); this module is its draft-and-verify front: the adapter as drafter and the width
policy. `reference.reference_greedy` and `decoding.reference_ar.generate_ar_reference` are the slow
twins: one token per full forward; the parity tests hold this decoder to them token for token.
"""

from __future__ import annotations

from typing import Sequence

import torch

from generators.decoding.engine import AdapterDrafter, Sampling, decode, span_mask, step_tokens
from generators.decoding.rows import StopChecker
from generators.decoding.widths import WidthPolicy, budget_width
from generators.decoding.families import DiffusionFamily
from generators.decoding.lookup import PromptLookup
from generators.decoding.model import BlockModel
from generators.decoding.proposals import DecodeConfig
from generators.results import RowResult

__all__ = ["generate_verified", "span_mask", "step_tokens"]


def generate_verified(
    model: torch.nn.Module | BlockModel,
    prompts: Sequence[Sequence[int]],
    *,
    family: DiffusionFamily,
    mask_token_id: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    config: DecodeConfig = DecodeConfig(),
    drafts: int = 3,
    tree: bool = True,
    verify_on_base: bool = True,
    forward_budget: int | None = None,
    width: WidthPolicy | None = None,
    seeds: Sequence[int] | None = None,
    max_new_tokens: Sequence[int] | None = None,
    stop_checker: StopChecker | None = None,
    lookup: PromptLookup | None = None,
) -> list[RowResult]:
    """Decode a continuation for every prompt; one RowResult per prompt, in order. `width` (a cost
    table's policy) replaces `forward_budget` when given; `lookup` adds prompt-lookup drafts, which
    take a row's step where they find a match (engine.py)."""
    if not family.shift:
        raise ValueError(f"draft-and-verify needs a shifted family (AR-style logits); {family.name!r} is not")
    if drafts < 1:
        raise ValueError(f"drafts must be >= 1, got {drafts}")
    if forward_budget is not None and forward_budget < 1:
        raise ValueError(f"forward_budget must be >= 1 token (or None: no limit), got {forward_budget}")
    caps = list(max_new_tokens) if max_new_tokens is not None else [config.max_new_tokens] * len(prompts)
    return decode(model, prompts, eos_token_ids=eos_token_ids, pad_token_id=pad_token_id,
                  sampling=Sampling(config.temperature, config.top_p, config.no_repeat_ngram), max_new_tokens=caps,
                  seeds=seeds, stop_checker=stop_checker,
                  drafter=AdapterDrafter(mask_token_id, tree=tree, verify_on_base=verify_on_base),
                  most_drafts=drafts, width=width or budget_width(forward_budget), lookup=lookup)
