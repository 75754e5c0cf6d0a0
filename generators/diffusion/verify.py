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

`reference.reference_greedy` is the slow twin: one token per full forward, no cache; the parity
tests hold this decoder to it token for token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from generators.diffusion.adapters import DiffusionFamily
from generators.diffusion.model import BlockModel, as_block_model
from generators.diffusion.proposals import DecodeConfig, banned_next_tokens, propose
from generators.diffusion.row_cache import RowKVCache
from generators.prompts import left_pad
from generators.results import RowResult
from generators.sampling import row_generators

StopChecker = Callable[[int, list[int]], "int | None"]


def span_mask(c_valid: torch.Tensor, attach: torch.Tensor, live: torch.Tensor, block: int) -> torch.Tensor:
    """(R, Tn, Tn) bool attention pattern of one forward's new span: [clean run C | draft blocks].

    c_valid (R, C) bool   real clean-run slots (padding slots see only themselves)
    attach  (R, nb) long  clean-run slot each draft block follows
    live    (R, nb) bool  blocks whose attach point is real (dead blocks see only themselves)
    block   int           slots per draft block
    """
    r, c = c_valid.shape
    nb = attach.shape[1]
    tn = c + nb * block
    dev = c_valid.device
    ci = torch.arange(c, device=dev)
    causal = (ci[None, :] <= ci[:, None])[None] & c_valid[:, None, :] & c_valid[:, :, None]  # (R, C, C)
    mask = torch.zeros((r, tn, tn), dtype=torch.bool, device=dev)
    mask[:, :c, :c] = causal
    for b in range(nb):
        lo, hi = c + b * block, c + (b + 1) * block
        sees = (ci[None, :] <= attach[:, b:b + 1]) & c_valid & live[:, b:b + 1]  # (R, C)
        mask[:, lo:hi, :c] = sees[:, None, :]
        mask[:, lo:hi, lo:hi] = True
    mask |= torch.eye(tn, dtype=torch.bool, device=dev)[None]  # no query is left without a key
    return mask


def step_tokens(d: int, tree: bool) -> int:
    """Tokens per row in a step with d drafts: the clean run (1+d) and its draft blocks."""
    return (1 + d) + (d + 1 if tree else 1) * d if d else 1


def drafts_within(budget: int | None, rows: int, most: int, tree: bool) -> int:
    """The most drafts per row (<= most) whose forward holds at most `budget` tokens (None: no limit)."""
    if budget is None:
        return most
    return next((d for d in range(most, 0, -1) if rows * step_tokens(d, tree) <= budget), 0)


def fit_drafts(draft: torch.Tensor, n_draft: torch.Tensor, d: int, mask_token_id: int):
    """Drafts (R, k) and counts (R,) resized to d slots: cut, or padded with masks never compared."""
    if draft.shape[1] > d:
        return draft[:, :d], n_draft.clamp(max=d)
    pad = torch.full((draft.shape[0], d - draft.shape[1]), mask_token_id, dtype=torch.long, device=draft.device)
    return torch.cat([draft, pad], dim=1), n_draft


@dataclass
class StepSpan:
    """One step's new span, per row: [u, d1 .. dd | draft blocks], with what the decoder needs later."""

    ids: torch.Tensor  # (R, Tn)
    positions: torch.Tensor  # (R, Tn)
    mask: torch.Tensor  # (R, Tn, Tn)
    attach: torch.Tensor  # (R, blocks) clean-run slot each block follows
    live: torch.Tensor  # (R, blocks)


def step_span(pending: torch.Tensor, draft: torch.Tensor, n_draft: torch.Tensor, pos0: torch.Tensor, *,
              tree: bool, mask_token_id: int) -> StepSpan:
    """pending (R,) the last verified token at positions pos0 (R,); draft (R, d) of which n_draft (R,)
    are real. Tree: one block per attach point 0 .. d; otherwise one block after the real drafts."""
    r, d = draft.shape
    dev = draft.device
    blocks = 0 if d == 0 else d + 1 if tree else 1
    steps = torch.arange(d + 1, device=dev)
    c_valid = steps[None, :] <= n_draft[:, None]  # (R, 1+d)
    attach = (steps[None, :].expand(r, -1) if tree else n_draft[:, None])[:, :blocks]  # (R, blocks)
    live = attach <= n_draft[:, None]
    ids = torch.cat([pending[:, None], draft,
                     torch.full((r, blocks * d), mask_token_id, dtype=torch.long, device=dev)], dim=1)
    pos_c = pos0[:, None] + steps[None, :]  # (R, 1+d)
    pos_b = (pos0[:, None, None] + attach[:, :, None] + 1
             + torch.arange(d, device=dev)[None, None, :]).reshape(r, blocks * d)
    return StepSpan(ids, torch.cat([pos_c, pos_b], dim=1), span_mask(c_valid, attach, live, d), attach, live)


def row_outcome(out: list[int], cap: int, eos: set[int], stop: Callable[[list[int]], "int | None"] | None
                ) -> tuple[list[int], str] | None:
    """(tokens, finish reason) once a row's output is final, else None. As the block decoder: EOS and
    what follows it are dropped, the cap cuts, a stop sequence cuts where the checker says."""
    cut_eos = next((k for k, t in enumerate(out) if t in eos), None)
    prefix = out[:min(cap, len(out) if cut_eos is None else cut_eos)]
    if stop is not None:
        cut = stop(list(prefix))
        if cut is not None:
            return prefix[:cut], "stop"
    if cut_eos is not None and cut_eos < cap:
        return prefix, "eos"
    if len(out) >= cap:
        return prefix, "length"
    return None


@torch.inference_mode()
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
    seeds: Sequence[int] | None = None,
    max_new_tokens: Sequence[int] | None = None,
    stop_checker: StopChecker | None = None,
) -> list[RowResult]:
    """Decode a continuation for every prompt; one RowResult per prompt, in order."""
    if not family.shift:
        raise ValueError(f"draft-and-verify needs a shifted family (AR-style logits); {family.name!r} is not")
    if drafts < 1:
        raise ValueError(f"drafts must be >= 1, got {drafts}")
    if forward_budget is not None and forward_budget < 1:
        raise ValueError(f"forward_budget must be >= 1 token (or None: no limit), got {forward_budget}")
    if not prompts:
        return []
    t0 = time.perf_counter()
    bm = as_block_model(model)
    n = len(prompts)
    caps = list(max_new_tokens) if max_new_tokens is not None else [config.max_new_tokens] * n
    if len(caps) != n or any(c < 1 for c in caps):
        raise ValueError("max_new_tokens must give a cap >= 1 for every prompt")
    dev, D = bm.device, drafts
    adapt_clean = not verify_on_base

    ids, attn = left_pad([list(p) for p in prompts], pad_token_id, dev)  # (R, P)
    P = ids.shape[1]
    kv_start = (P - attn.sum(dim=1)).long()  # (R,)
    shape = bm.shape
    cache = RowKVCache(shape.n_layers, n, shape.kv_heads, shape.head_dim, P + max(caps) + D + 2, kv_start,
                       bm.dtype, dev)
    eos = set(int(e) for e in eos_token_ids)
    gens = row_generators(list(seeds) if seeds is not None else [0] * n, dev) if config.temperature > 0 else None
    rows = list(range(n))  # original index of each live row
    outs: list[list[int]] = [[] for _ in range(n)]
    forwards = [0] * n
    results: dict[int, RowResult] = {}

    def choose(logits: torch.Tensor, prefixes: Callable[[], list[list[list[int]]]]) -> torch.Tensor:
        """logits (R, C, V) at causal positions -> the AR choice at each (R, C), bans applied.
        prefixes() gives, per row and position, the output the choice would extend."""
        if config.no_repeat_ngram:
            logits = logits.clone()
            for i, row_prefixes in enumerate(prefixes()):
                for j, seq in enumerate(row_prefixes):
                    banned = banned_next_tokens(seq, config.no_repeat_ngram)
                    if banned:
                        logits[i, j, banned] = float("-inf")
        tokens, _ = propose(logits, config.temperature, config.top_p, gens)
        return tokens

    # -- prefill: the prompt (causal, into the cache) + one draft block after it -------------------------
    slot = torch.arange(P, device=dev)
    c_valid = slot[None, :] >= kv_start[:, None]  # (R, P)
    attach = torch.full((n, 1), P - 1, dtype=torch.long, device=dev)
    live = torch.ones((n, 1), dtype=torch.bool, device=dev)
    span = torch.cat([ids, torch.full((n, D), mask_token_id, dtype=torch.long, device=dev)], dim=1)
    pos_c = (slot[None, :] - kv_start[:, None]).clamp(min=0)  # (R, P)
    first_pos = P - kv_start  # (R,) position of the first new token
    positions = torch.cat([pos_c, first_pos[:, None] + torch.arange(D, device=dev)[None, :]], dim=1)
    cache.new_mask = span_mask(c_valid, attach, live, D)
    h = bm.forward(span, positions, cache, n_causal=P, commit=True, adapt_clean=adapt_clean)  # (R, P + D, Dm)
    cache.accept(torch.full((n,), P, dtype=torch.long, device=dev))
    pending = choose(bm.logits(h[:, P - 1:P]), lambda: [[[]] for _ in rows])[:, 0]  # (R,)
    draft = bm.logits(h[:, P:P + D]).argmax(dim=-1)  # (R, D)
    n_draft = torch.full((n,), D, dtype=torch.long, device=dev)  # (R,) real drafts per row
    pos0 = first_pos.clone()  # (R,) position of the pending token
    for r in rows:
        forwards[r] += 1
        outs[r].append(int(pending[r]))

    def finish() -> torch.Tensor | None:
        """Record finished rows; returns the index of the rows kept (None: all of them)."""
        nonlocal rows
        keep: list[int] = []
        for i, r in enumerate(rows):
            stop = (lambda tokens, r=r: stop_checker(r, tokens)) if stop_checker is not None else None
            done = row_outcome(outs[r], caps[r], eos, stop)
            if done is None:
                keep.append(i)
            else:
                results[r] = RowResult(done[0], forwards[r], time.perf_counter() - t0, done[1])
        if len(keep) == len(rows):
            return None
        rows = [rows[i] for i in keep]
        return torch.tensor(keep, dtype=torch.long, device=dev)

    while True:
        keep = finish()
        if keep is not None:
            if not rows:
                break
            cache.select_rows(keep)
            pending, draft, n_draft, pos0 = (t.index_select(0, keep) for t in (pending, draft, n_draft, pos0))
            if gens is not None:
                gens = [gens[i] for i in keep.tolist()]
        d = drafts_within(forward_budget, len(rows), D, tree)  # fewer when many rows share the forward
        draft, n_draft = fit_drafts(draft, n_draft, d, mask_token_id)
        # -- one step: clean run [u, d1..dd] (verifies) + draft blocks (propose) -------------------------
        step = step_span(pending, draft, n_draft, pos0, tree=tree, mask_token_id=mask_token_id)
        cache.new_mask = step.mask
        h = bm.forward(step.ids, step.positions, cache, n_causal=d + 1, commit=True, adapt_clean=adapt_clean)
        for r in rows:
            forwards[r] += 1
        # verify: the AR choice after u, d1, .., dd (each assuming the drafts before it)
        g = choose(bm.logits(h[:, :d + 1]),
                   lambda: [[outs[r] + draft[i, :j].tolist() for j in range(d + 1)] for i, r in enumerate(rows)])
        match = (g[:, :d] == draft) & (torch.arange(d, device=dev)[None, :] < n_draft[:, None])  # (R, d)
        a = match.long().cumprod(dim=-1).sum(dim=-1)  # (R,) drafts accepted
        bonus = g.gather(1, a[:, None])[:, 0]  # (R,)
        cache.accept(a + 1)  # u, d1 .. da
        for i, r in enumerate(rows):
            outs[r].extend(draft[i, :int(a[i])].tolist() + [int(bonus[i])])
        pending, pos0 = bonus, pos0 + a + 1
        if d == 0:  # a plain AR step: no blocks, no drafts
            n_draft = torch.zeros_like(n_draft)
            continue
        # next drafts: the block attached where the accepted run ends (usable only if there is one)
        chosen = a if tree else torch.zeros_like(a)  # (R,) block index
        usable = step.live.gather(1, chosen[:, None])[:, 0] & (step.attach.gather(1, chosen[:, None])[:, 0] == a)
        idx = (d + 1 + chosen * d)[:, None] + torch.arange(d, device=dev)[None, :]  # (R, d)
        hb = h.gather(1, idx[:, :, None].expand(-1, -1, h.shape[-1]))  # (R, d, Dm)
        draft = bm.logits(hb).argmax(dim=-1)
        n_draft = torch.where(usable, d, 0)
    return [results[i] for i in range(n)]
