"""The row lifecycle every engine decode shares: caps, per-row seeds, EOS, stop rule, finished rows out.

A decode holds R live rows (batch rows) out of the n prompts of the call. Each step appends one or
more tokens to every live row (`extend`); `finish` then records the rows whose output is final and
returns the batch index of those kept, so the decoder drops the others from its cache and tensors
at once: a long row never makes finished rows pay for more forwards.

A row's output is final (`row_outcome`) when it holds an EOS (which, and what follows it, is
dropped), reaches its cap (cut there), or a stop sequence appears (cut where the checker says).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from generators.decoding.progress import report_finished
from generators.results import RowResult

# (row index in the call, tokens generated so far) -> length to keep if a stop sequence has
# appeared, else None.
StopChecker = Callable[[int, list[int]], "int | None"]


def row_outcome(out: list[int], cap: int, eos: set[int] | frozenset[int],
                stop: Callable[[list[int]], "int | None"] | None) -> tuple[list[int], str] | None:
    """(tokens, finish reason) once a row's output is final, else None."""
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


class Rows:
    """The live rows of one decode call and what each has produced."""

    def __init__(self, n: int, *, caps: Sequence[int], eos_token_ids: Sequence[int],
                 stop_checker: StopChecker | None, seeds: Sequence[int] | None, device: torch.device):
        if len(caps) != n or any(c < 1 for c in caps):
            raise ValueError("max_new_tokens must give a cap >= 1 for every prompt")
        self.caps = list(caps)
        self.eos = frozenset(int(e) for e in eos_token_ids)
        self.stop_checker = stop_checker
        self.live = list(range(n))  # call index of each batch row
        self.outs: list[list[int]] = [[] for _ in range(n)]
        self.forwards = [0] * n
        self.seeds = [int(x) for x in seeds] if seeds is not None else [0] * n  # by call row
        self._results: dict[int, RowResult] = {}
        self._device = device
        self._t0 = time.perf_counter()

    def __len__(self) -> int:
        return len(self.live)

    def out(self, b: int) -> list[int]:
        """Output so far of batch row b."""
        return self.outs[self.live[b]]

    def seed(self, b: int) -> int:
        """Sampling seed of batch row b."""
        return self.seeds[self.live[b]]

    def count_forward(self) -> None:
        for r in self.live:
            self.forwards[r] += 1

    def extend(self, b: int, tokens: Sequence[int]) -> None:
        self.outs[self.live[b]].extend(tokens)

    def finish(self) -> torch.Tensor | None:
        """Record finished rows; returns the batch index of the rows kept, or None when all are."""
        keep: list[int] = []
        for b, r in enumerate(self.live):
            stop = (lambda tokens, r=r: self.stop_checker(r, tokens)) if self.stop_checker is not None else None
            done = row_outcome(self.outs[r], self.caps[r], self.eos, stop)
            if done is None:
                keep.append(b)
            else:
                self._results[r] = RowResult(done[0], self.forwards[r], time.perf_counter() - self._t0, done[1])
        if len(keep) == len(self.live):
            return None
        report_finished(len(self.live) - len(keep))
        self.live = [self.live[b] for b in keep]
        return torch.tensor(keep, dtype=torch.long, device=self._device)

    def results(self) -> list[RowResult]:
        """One RowResult per prompt, in call order (every row must have finished)."""
        return [self._results[r] for r in range(len(self.outs))]
