"""The decode engine: one cached, batched loop for every token the pipeline writes.

    decode(model, prompts, eos_token_ids=, pad_token_id=, sampling=, max_new_tokens=, ...)
        -> one RowResult per prompt

Every step runs one forward per live row over its cache (RowKVCache) and appends at least one
token per row (u = the last chosen token, not yet cached; D = this step's drafts per row):

    clean run   [u, d1 .. dD]   causal: the logits after u, d1 .. dD give the model's choices
                                g0 .. gD (the constraint's mask and the no-repeat rule applied at
                                each). The row keeps d1 .. da, the longest run with d(j+1) == g(j),
                                and the bonus g(a): exactly the tokens plain AR decoding would
                                write, up to floating-point ties.
    draft blocks [mask x D]     only with an adapter drafter (block-diffusion LoRA): one block per
                                attach point 0 .. D (tree) or one after the run; the block at the
                                accepted point gives the next step's drafts. The adapter acts on
                                these tokens only, so the clean run is the base model's own.

Drafts come from three sources, merged per row, first come first served:
- the grammar (jump-forward): where a constraint admits one continuation (a plan's JSON keys and
  punctuation), its tokens are drafted and verified like any other, so a forced run costs one
  forward instead of one per token, and the plan equals the plain constrained decode;
- prompt lookup (lookup.py): where the row's last tokens occurred before in its prompt or output,
  the tokens that followed them there (records restate attributes, code restates its prompt);
- the adapter's draft blocks, for rows neither has anything for.
With none, D = 0 and a step is a plain AR step (no blocks): `generate_ar` is this loop.

How many drafts a step carries is the width policy's choice (`widths.py`: from the machine's
measured forward cost table and the acceptance rate the policy has seen, or a fixed token budget),
so a wide step is never slower than AR. Each step tells the policy how many guessed drafts (lookup
or adapter; not the grammar's forced runs) it verified and kept.

Sampling (temperature > 0) draws g(j) with noise seeded by the row's seed and the output position
(`sample_by_position`), and accepts a draft only when it equals the draw: an exact sample of the
model, and the same sample whatever the batch, the chunking or the drafts.

The references it is tested against share none of this: `reference.generate_ar_reference` (the
HF model's own forward and DynamicCache, one token per forward) and `reference.reference_greedy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch

from generators.decoding.lookup import LookupIndex, PromptLookup
from generators.decoding.row_cache import RowKVCache
from generators.decoding.rows import Rows, StopChecker
from generators.decoding.model import BlockModel, as_block_model
from generators.decoding.proposals import banned_next_tokens, propose
from generators.prompts import left_pad
from generators.results import RowResult


@dataclass(frozen=True)
class Sampling:
    """How a token is chosen at each position."""

    temperature: float = 0.0
    """0 means greedy; otherwise seeded sampling per row."""
    top_p: float = 1.0
    """Nucleus mass when sampling."""
    no_repeat_ngram: int = 0
    """n >= 2: never choose a token that repeats an n-gram of the row's output (0: off)."""

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.no_repeat_ngram < 0 or self.no_repeat_ngram == 1:
            raise ValueError(f"no_repeat_ngram must be 0 (off) or >= 2, got {self.no_repeat_ngram}")


@dataclass(frozen=True)
class AdapterDrafter:
    """Draft blocks written by a block-diffusion adapter in the same forward (see the module docstring)."""

    mask_token_id: int
    tree: bool = True
    """One block per possible acceptance length, so a rejection costs no drafts."""
    verify_on_base: bool = True
    """The adapter acts on draft blocks only: the output is the base model's (False: the adapted model's)."""


class Constraint(Protocol):
    """A per-row grammar (generators/constrained.py's RegexConstraint)."""

    def forced(self, row: int, out: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens the grammar admits as the only continuation after `out`."""

    def restrict(self, rows: list[int], outs: list[list[int]], drafts: list[list[int]],
                 logits: torch.Tensor) -> torch.Tensor:
        """logits (R, C, V): position j of batch row b follows outs[b] + drafts[b][:j]; disallowed -> -inf."""


TREE, CHAIN, NO_BLOCKS = "tree", "chain", "none"
"""A step's layout: the adapter's draft blocks at every attach point (tree) or after the run (chain),
or no blocks (drafts from the grammar or prompt lookup only)."""

# (live rows, most drafts per row, layout) -> drafts this step
WidthPolicy = Callable[[int, int, str], int]


def no_drafts(rows: int, most: int, layout: str) -> int:
    return 0


@torch.inference_mode()
def decode(
    model: torch.nn.Module | BlockModel,
    prompts: Sequence[Sequence[int]],
    *,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    sampling: Sampling = Sampling(),
    max_new_tokens: Sequence[int],
    seeds: Sequence[int] | None = None,
    stop_checker: StopChecker | None = None,
    constraint: Constraint | None = None,
    drafter: AdapterDrafter | None = None,
    most_drafts: int = 0,
    width: WidthPolicy = no_drafts,
    lookup: PromptLookup | None = None,
) -> list[RowResult]:
    """Decode a continuation for every prompt (see the module docstring)."""
    if not prompts:
        return []
    if most_drafts < 0 or (drafter is not None and most_drafts < 1):
        raise ValueError(f"most_drafts must be >= 0 (>= 1 with a drafter), got {most_drafts}")
    bm = as_block_model(model)
    n, dev, shape = len(prompts), bm.device, bm.shape
    rows = Rows(n, caps=max_new_tokens, eos_token_ids=eos_token_ids, stop_checker=stop_checker, seeds=seeds,
                device=dev)
    D = most_drafts
    layout = NO_BLOCKS if drafter is None else TREE if drafter.tree else CHAIN
    if hasattr(width, "fresh"):  # a policy that learns the acceptance rate, on its own copy (widths.CostWidth)
        width = width.fresh()
    observe = getattr(width, "observe", None)
    index = LookupIndex(lookup, prompts) if lookup is not None else None
    if index is not None and drafter is None:
        D = max(D, lookup.most)
    adapt_clean = drafter is not None and not drafter.verify_on_base
    mask_id = drafter.mask_token_id if drafter is not None else pad_token_id

    ids, attn = left_pad([list(p) for p in prompts], pad_token_id, dev)  # (R, P)
    P = ids.shape[1]
    kv_start = (P - attn.sum(dim=1)).long()  # (R,)
    width_most = D + 1 + (D + 1) * D + GRAMMAR_DRAFTS  # the widest step: a clean run of D + 1 and D + 1 blocks of D
    cache = RowKVCache(shape.n_layers, n, shape.kv_heads, shape.head_dim, P + max(rows.caps) + width_most + 1,
                       kv_start, bm.dtype, dev, static=getattr(bm, "static_cache", False))  # static: CUDA graphs

    def choose(logits: torch.Tensor, drafts: list[list[int]]) -> torch.Tensor:
        """logits (R, C, V) at the clean positions -> the model's choice at each (R, C)."""
        if sampling.no_repeat_ngram:
            logits = logits.clone()
            for b, ds in enumerate(drafts):
                for j in range(logits.shape[1]):
                    banned = banned_next_tokens(rows.out(b) + ds[:j], sampling.no_repeat_ngram)
                    if banned:
                        logits[b, j, banned] = float("-inf")
        if constraint is not None:
            logits = constraint.restrict(list(rows.live), [rows.out(b) for b in range(len(rows))], drafts, logits)
        if sampling.temperature <= 0:
            return propose(logits, 0.0, 1.0, None)[0]
        return sample_by_position(logits, sampling, [rows.seed(b) for b in range(len(rows))],
                                  [len(rows.out(b)) for b in range(len(rows))])

    # -- prefill: the prompt (causal, into the cache), and one draft block after it ---------------------
    d0 = D if drafter is not None else 0
    slot = torch.arange(P, device=dev)
    c_valid = slot[None, :] >= kv_start[:, None]  # (R, P)
    span_ids = torch.cat([ids, torch.full((n, d0), mask_id, dtype=torch.long, device=dev)], dim=1)
    pos_c = (slot[None, :] - kv_start[:, None]).clamp(min=0)  # (R, P)
    first_pos = P - kv_start  # (R,) position of the first new token
    positions = torch.cat([pos_c, first_pos[:, None] + torch.arange(d0, device=dev)[None, :]], dim=1)
    cache.begin(span_mask(c_valid, torch.full((n, 1 if d0 else 0), P - 1, dtype=torch.long, device=dev),
                          torch.ones((n, 1 if d0 else 0), dtype=torch.bool, device=dev), d0))
    h = bm.forward(span_ids, positions, cache, n_causal=P, commit=True, adapt_clean=adapt_clean)  # (R, P + d0, Dm)
    cache.accept([P] * n)
    pending = choose(bm.logits(h[:, P - 1:P]), [[] for _ in range(n)])[:, 0]  # (R,)
    draft = bm.logits(h[:, P:P + d0]).argmax(dim=-1) if d0 else torch.zeros((n, 0), dtype=torch.long, device=dev)
    n_draft = [d0] * n  # real drafts per row
    pos0 = first_pos.clone()  # (R,) position of the pending token
    rows.count_forward()
    for b, tok in enumerate(pending.tolist()):
        rows.extend(b, [tok])

    while True:
        keep = rows.finish()
        if keep is not None:
            if not len(rows):
                break
            cache.select_rows(keep)
            pending, draft, pos0 = (t.index_select(0, keep) for t in (pending, draft, pos0))
            n_draft = [n_draft[i] for i in keep.tolist()]
        r = len(rows)
        d = width(r, D, layout) if D else 0
        drafts = [draft[b, :min(n_draft[b], d)].tolist() for b in range(r)] if d else [[] for _ in range(r)]
        forced_rows: set[int] = set()  # rows drafting the grammar's forced run (not a guess: not observed)
        if constraint is not None or index is not None:  # a forced run or a copy beats the adapter's guess
            grammar_limit = d if drafter is not None else max(d, GRAMMAR_DRAFTS)
            for b in range(r):
                found = constraint.forced(rows.live[b], rows.out(b), grammar_limit) if constraint is not None else []
                if found:
                    forced_rows.add(b)
                elif index is not None:
                    found = index.draft(rows.live[b], rows.out(b), d)
                if found:
                    drafts[b] = found
            if drafter is None:
                guesses = [len(ds) for b, ds in enumerate(drafts) if b not in forced_rows]
                if guesses and hasattr(width, "trim"):  # only the rows that found a copy gain from the width
                    cut = width.trim(r, guesses)
                    drafts = [ds if b in forced_rows else ds[:cut] for b, ds in enumerate(drafts)]
                d = max(len(ds) for ds in drafts)
        draft_t = torch.full((r, d), mask_id, dtype=torch.long, device=dev)
        for b, ds in enumerate(drafts):
            if ds:
                draft_t[b, :len(ds)] = torch.tensor(ds, dtype=torch.long, device=dev)
        real = torch.tensor([len(ds) for ds in drafts], dtype=torch.long, device=dev)  # (R,)
        blocks = (d + 1 if drafter.tree else 1) if drafter is not None and d else 0
        step = step_span(pending, draft_t, real, pos0, blocks=blocks, mask_token_id=mask_id)
        cache.begin(step.mask)
        h = bm.forward(step.ids, step.positions, cache, n_causal=d + 1, commit=True, adapt_clean=adapt_clean)
        rows.count_forward()
        g = choose(bm.logits(h[:, :d + 1]), drafts)  # (R, d + 1)
        match = (g[:, :d] == draft_t) & (torch.arange(d, device=dev)[None, :] < real[:, None])  # (R, d)
        a = match.long().cumprod(dim=-1).sum(dim=-1)  # (R,) drafts accepted
        bonus = g.gather(1, a[:, None])[:, 0]  # (R,)
        accepted, bonus_list = a.tolist(), bonus.tolist()  # the step's one host sync
        if d and observe is not None:
            guessed = [b for b in range(r) if b not in forced_rows]
            observe(sum(len(drafts[b]) for b in guessed), sum(accepted[b] for b in guessed))
        cache.accept([k + 1 for k in accepted])  # u, d1 .. da
        for b in range(r):
            rows.extend(b, drafts[b][:accepted[b]] + [bonus_list[b]])
        pending, pos0 = bonus, pos0 + a + 1
        if not blocks:
            n_draft = [0] * r
            continue
        # next drafts: the block attached where the accepted run ends (usable only if there is one)
        chosen = a if drafter.tree else torch.zeros_like(a)  # (R,) block index
        usable = (step.live.gather(1, chosen[:, None])[:, 0] & (step.attach.gather(1, chosen[:, None])[:, 0] == a))
        idx = (d + 1 + chosen * d)[:, None] + torch.arange(d, device=dev)[None, :]  # (R, d)
        hb = h.gather(1, idx[:, :, None].expand(-1, -1, h.shape[-1]))  # (R, d, Dm)
        draft = bm.logits(hb).argmax(dim=-1)  # (R, d)
        n_draft = [d if u else 0 for u in usable.tolist()]
    return rows.results()


def sample_by_position(logits: torch.Tensor, sampling: Sampling, seeds: list[int], starts: list[int]) -> torch.Tensor:
    """logits (R, C, V) -> tokens (R, C): a Gumbel-max draw whose noise depends only on the row's seed
    and the output position (starts[b] + j), so a row's sample never depends on which rows share its
    batch, how many drafts a step carried, or how the batch was chunked."""
    from generators.sampling import apply_temperature, top_p_filter

    scores = top_p_filter(apply_temperature(logits.float(), sampling.temperature), sampling.top_p)  # (R, C, V)
    r, c, v = scores.shape
    noise = torch.empty_like(scores)
    for b in range(r):
        for j in range(c):
            g = torch.Generator(device=scores.device)
            g.manual_seed((seeds[b] * 1_000_003 + starts[b] + j) % (2 ** 63))
            noise[b, j] = torch.rand(v, generator=g, device=scores.device)
    return (scores - torch.log(-torch.log(noise.clamp_(1e-20, 1.0 - 1e-7)))).argmax(dim=-1)


GRAMMAR_DRAFTS = 16
"""Most grammar-forced tokens one step verifies when no adapter sets the width (a plan's longest
forced runs, such as '", "sections": [{"heading": "', are about this long)."""


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


@dataclass
class StepSpan:
    """One step's new span, per row: [u, d1 .. dd | draft blocks], with what the decoder needs later."""

    ids: torch.Tensor  # (R, Tn)
    positions: torch.Tensor  # (R, Tn)
    mask: torch.Tensor  # (R, Tn, Tn)
    attach: torch.Tensor  # (R, blocks) clean-run slot each block follows
    live: torch.Tensor  # (R, blocks)


def step_span(pending: torch.Tensor, draft: torch.Tensor, n_draft: torch.Tensor, pos0: torch.Tensor, *,
              blocks: int, mask_token_id: int) -> StepSpan:
    """pending (R,) the last verified token at positions pos0 (R,); draft (R, d) of which n_draft (R,)
    are real. blocks: 0 (no drafter), 1 (one block after the real drafts) or d + 1 (one per attach point)."""
    r, d = draft.shape
    dev = draft.device
    steps = torch.arange(d + 1, device=dev)
    c_valid = steps[None, :] <= n_draft[:, None]  # (R, 1+d)
    attach = (steps[None, :].expand(r, -1) if blocks > 1 else n_draft[:, None])[:, :blocks]  # (R, blocks)
    live = attach <= n_draft[:, None]
    ids = torch.cat([pending[:, None], draft,
                     torch.full((r, blocks * d), mask_token_id, dtype=torch.long, device=dev)], dim=1)
    pos_c = pos0[:, None] + steps[None, :]  # (R, 1+d)
    pos_b = (pos0[:, None, None] + attach[:, :, None] + 1
             + torch.arange(d, device=dev)[None, None, :]).reshape(r, blocks * d)
    return StepSpan(ids, torch.cat([pos_c, pos_b], dim=1), span_mask(c_valid, attach, live, d), attach, live)


def step_tokens(d: int, layout: str) -> int:
    """Tokens per row in a step with d drafts: the clean run (1+d) and, with the adapter, its blocks."""
    if layout not in (TREE, CHAIN, NO_BLOCKS):
        raise ValueError(f"unknown step layout {layout!r}; expected {TREE!r}, {CHAIN!r} or {NO_BLOCKS!r}")
    blocks = {TREE: d + 1, CHAIN: 1, NO_BLOCKS: 0}[layout]
    return (1 + d) + blocks * d
