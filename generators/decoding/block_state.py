"""Decode state shared by the cached and the reference decoders: tokens, what is committed, limits.

    x          (R, W) long   tokens; MASK where not yet decided. W = P + n_blocks * block_size
    committed  (R, W) bool   prompt (and its padding) plus every decided position
    limit      (R,)   long   absolute end of the row's output: P + its token cap, or the position
                             of its first committed EOS. Positions >= limit are never candidates.
    kv_start   (R,)   long   left padding of each row (first real token)

A row is finished when every position in [P, limit) is committed, or a stop sequence appears in
its committed prefix. Finished rows are removed from every tensor here (and the decoder removes
them from its caches with the same index).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from generators.decoding.proposals import DecodeConfig, ban_repeated_ngrams, propose, repeats_ngram_at
from generators.decoding.commit_rules import CommitRule
from generators.prompts import left_pad
from generators.results import RowResult
from generators.sampling import row_generators


@dataclass
class DecodeState:
    x: torch.Tensor
    committed: torch.Tensor
    limit: torch.Tensor
    cap_end: torch.Tensor
    kv_start: torch.Tensor
    P: int
    n_blocks: int
    width: int
    eos: torch.Tensor  # (E,) ids that end a row
    row_ids: list[int]
    generators: list[torch.Generator] | None
    forwards: list[int]
    prefix_seen: list[int] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.row_ids)

    def positions(self, lo: int, hi: int) -> torch.Tensor:
        """Position ids of absolute slots [lo, hi): counted from each row's first real token."""
        t = torch.arange(lo, hi, device=self.x.device)
        return (t[None, :] - self.kv_start[:, None]).clamp(min=0)  # (R, hi-lo)

    def count_forward(self) -> None:
        for r in self.row_ids:
            self.forwards[r] += 1

    def candidates(self, lo: int, hi: int) -> torch.Tensor:
        """(R, hi-lo) bool: masked positions in [lo, hi) before the row's limit."""
        t = torch.arange(lo, hi, device=self.x.device)
        return ~self.committed[:, lo:hi] & (t[None, :] < self.limit[:, None])

    def has_candidates(self, lo: int, hi: int) -> bool:
        return bool(self.candidates(lo, hi).any())

    # -- committing -------------------------------------------------------------------------------
    def commit_first_token(self, s: int, logits: torch.Tensor, config: DecodeConfig) -> None:
        """Shifted families: block position 0 is the AR prediction of the last clean token; take it."""
        cand = self.candidates(s, s + 1)  # (R, 1)
        tokens, _ = propose(self._allowed(logits[:, None], s, config), config.temperature, config.top_p,
                            self.generators, draw=cand[:, 0])
        self._commit(s, tokens, cand)

    def step(self, s: int, ws: int, logits: torch.Tensor, config: DecodeConfig, strategy: CommitRule,
             steps_left: int, force: bool = True) -> None:
        """One decoding step on the window [s+ws, s+ws+b) given its logits (R, b, V)."""
        lo = s + ws
        cand = self.candidates(lo, lo + logits.shape[1])  # (R, b)
        if not bool(cand.any()):
            return
        logits = self._allowed(logits, lo, config)
        tokens, conf = propose(logits, config.temperature, config.top_p, self.generators, draw=cand.any(-1))
        chosen = strategy.select(conf, cand, steps_left=steps_left, force=force)
        if config.no_repeat_ngram:
            chosen = self._without_repeats(lo, tokens, chosen, cand, logits, config.no_repeat_ngram, force)
        self._commit(lo, tokens, chosen)

    def _allowed(self, logits: torch.Tensor, lo: int, config: DecodeConfig) -> torch.Tensor:
        """logits (R, b, V) for positions lo.. with the decoding rules that forbid tokens applied."""
        if not config.no_repeat_ngram:
            return logits
        return ban_repeated_ngrams(logits, self.x, self.committed, self.P, lo, config.no_repeat_ngram)

    def _without_repeats(self, lo: int, tokens: torch.Tensor, chosen: torch.Tensor, cand: torch.Tensor,
                         logits: torch.Tensor, n: int, force: bool, alternatives: int = 8) -> torch.Tensor:
        """Drop the chosen positions whose token would repeat an n-gram, counting the tokens chosen in
        this same step (the logits ban sees only committed context, so e.g. a run "a a a a" filled in
        one step, or around one gap, gets past it). A row left with nothing commits, at its first
        candidate, the most likely of its top `alternatives` tokens that repeats nothing (else the
        proposal: progress wins). `tokens` is updated in place for those rows."""
        x, known, keep = self.x.clone(), self.committed.clone(), chosen.clone()
        for k in range(tokens.shape[1]):
            q = lo + k
            x[:, q] = torch.where(keep[:, k], tokens[:, k], x[:, q])
            known[:, q] |= keep[:, k]
            bad = keep[:, k] & repeats_ngram_at(x, known, self.P, q, n)
            keep[:, k] &= ~bad
            known[:, q] &= ~bad
        stalled = cand.any(-1) & ~keep.any(-1)  # (R,)
        for i in stalled.nonzero().flatten().tolist() if force else []:
            k = int(cand[i].nonzero()[0])
            q = lo + k
            for t in logits[i, k].topk(alternatives).indices.tolist():
                x_i, known_i = self.x[i:i + 1].clone(), self.committed[i:i + 1].clone()
                x_i[0, q], known_i[0, q] = t, True
                if not bool(repeats_ngram_at(x_i, known_i, self.P, q, n)[0]):
                    tokens[i, k] = t
                    break
            keep[i, k] = True
        return keep

    def _commit(self, lo: int, tokens: torch.Tensor, chosen: torch.Tensor) -> None:
        hi = lo + tokens.shape[1]
        self.x[:, lo:hi] = torch.where(chosen, tokens, self.x[:, lo:hi])
        self.committed[:, lo:hi] |= chosen
        is_eos = chosen & torch.isin(tokens, self.eos)  # (R, n)
        if bool(is_eos.any()):
            t = torch.arange(lo, hi, device=self.x.device)
            first = torch.where(is_eos, t[None, :], torch.full_like(tokens, self.width)).amin(dim=-1)
            self.limit = torch.minimum(self.limit, first)

    # -- finishing --------------------------------------------------------------------------------
    def collect_finished(self, results: dict[int, RowResult], stop_checker: Callable | None, t0: float,
                         force: bool = False) -> torch.Tensor | None:
        """Record finished rows in `results` and drop them; returns the kept row index (or None)."""
        keep: list[int] = []
        for i, r in enumerate(self.row_ids):
            limit = int(self.limit[i])
            undecided = (~self.committed[i, self.P:limit]).nonzero()
            prefix_end = self.P + (int(undecided[0]) if len(undecided) else limit - self.P)
            reason = None
            tokens: list[int] = []
            if stop_checker is not None and prefix_end > self.prefix_seen[r]:
                self.prefix_seen[r] = prefix_end
                prefix = self.x[i, self.P:prefix_end].tolist()
                cut = stop_checker(r, prefix)
                if cut is not None:
                    reason, tokens = "stop", prefix[:cut]
            if reason is None and (len(undecided) == 0 or force):
                tokens = self.x[i, self.P:prefix_end].tolist()
                reason = "eos" if limit < int(self.cap_end[i]) else "length"
            if reason is None:
                keep.append(i)
            else:
                results[r] = RowResult(tokens, self.forwards[r], time.perf_counter() - t0, reason)
        if len(keep) == self.rows:
            return None
        index = torch.tensor(keep, dtype=torch.long, device=self.x.device)
        for name in ("x", "committed", "limit", "cap_end", "kv_start"):
            setattr(self, name, getattr(self, name).index_select(0, index))
        self.row_ids = [self.row_ids[i] for i in keep]
        if self.generators is not None:
            self.generators = [self.generators[i] for i in keep]
        return index


def new_state(prompts: Sequence[Sequence[int]], config: DecodeConfig, *, mask_token_id: int,
              eos_token_ids: Sequence[int], pad_token_id: int, seeds: Sequence[int] | None,
              max_new_tokens: Sequence[int] | None, device: torch.device) -> DecodeState:
    n = len(prompts)
    caps = list(max_new_tokens) if max_new_tokens is not None else [config.max_new_tokens] * n
    if len(caps) != n or any(c < 1 for c in caps):
        raise ValueError("max_new_tokens must give a cap >= 1 for every prompt")
    ids, mask = left_pad([list(p) for p in prompts], pad_token_id, device)  # (R, P)
    P = ids.shape[1]
    B = config.block_size
    n_blocks = -(-max(caps) // B)
    width = P + n_blocks * B
    x = torch.full((n, width), mask_token_id, dtype=torch.long, device=device)
    x[:, :P] = ids
    committed = torch.zeros((n, width), dtype=torch.bool, device=device)
    committed[:, :P] = True
    cap_end = torch.tensor([P + c for c in caps], dtype=torch.long, device=device)
    gens = row_generators(list(seeds) if seeds is not None else [0] * n, device) if config.temperature > 0 else None
    return DecodeState(
        x=x, committed=committed, limit=cap_end.clone(), cap_end=cap_end,
        kv_start=(P - mask.sum(dim=1)).long(), P=P, n_blocks=n_blocks, width=width,
        eos=torch.tensor(sorted(set(int(e) for e in eos_token_ids)), dtype=torch.long, device=device),
        row_ids=list(range(n)), generators=gens, forwards=[0] * n, prefix_seen=[P] * n,
    )
