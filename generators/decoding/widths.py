"""How many drafts a step carries: a fixed token budget, or the machine's measured forward costs.

    WidthPolicy(rows, most, layout) -> drafts per row this step (0 .. most; 0 is a plain AR step)

A step with d drafts per row holds `step_tokens(d, layout)` tokens per row, and yields 1 + a tokens
per row (a = drafts accepted). Drafting pays when the expected yield per millisecond beats AR's one
token per one-token forward. How much a wider forward costs is a property of the machine and the
dtype (on a 2-core Sapphire Rapids in bf16, 16 tokens cost about 1.25x one; in fp32 about 2x; on a
GPU about 1x up to thousands), so it is measured (`CostTable.calibrate`), not assumed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from generators.decoding.engine import WidthPolicy, step_tokens


def budget_width(budget: int | None) -> WidthPolicy:
    """The most drafts (<= most) whose forward holds at most `budget` tokens across the batch (None: no limit)."""
    def width(rows: int, most: int, layout: str) -> int:
        if budget is None:
            return most
        return next((d for d in range(most, 0, -1) if rows * step_tokens(d, layout) <= budget), 0)
    return width


CALIBRATION_BATCHES = (1, 4, 16)
CALIBRATION_TOKENS = (1, 4, 16)
CALIBRATION_PREFIX = 128


@dataclass
class CostTable:
    """Forward milliseconds by (rows, tokens per row), over a cached prefix, for one model and dtype."""

    ms: dict[tuple[int, int], float]
    key: str = ""
    """What it was measured for: model, dtype, device, threads."""
    measured_s: float = field(default=0.0)

    def cost(self, rows: int, tokens: int) -> float:
        """Estimated ms of a forward: the nearest measured point at or above (rows, tokens); beyond the
        table, scaled by the total token count of its largest entry."""
        above = [(b, t) for (b, t) in self.ms if b >= rows and t >= tokens]
        if above:
            return self.ms[min(above, key=lambda bt: (bt[0] * bt[1], bt))]
        (b, t), ms = max(self.ms.items(), key=lambda kv: kv[0][0] * kv[0][1])
        return ms * (rows * tokens) / (b * t)

    def best_drafts(self, rows: int, most: int, layout: str, accept_rate: float) -> int:
        """The draft count (0 .. most) with the highest expected tokens per ms: a step with d drafts
        yields 1 + α + .. + α^d tokens per row when each draft is accepted with probability α."""
        def rate(d: int) -> float:
            return rows * sum(accept_rate ** i for i in range(d + 1)) / self.cost(rows, step_tokens(d, layout))
        return max(range(most + 1), key=lambda d: (rate(d), -d))

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "measured_s": self.measured_s,
                           "ms": [[b, t, round(v, 3)] for (b, t), v in sorted(self.ms.items())]})

    @classmethod
    def from_json(cls, text: str) -> "CostTable":
        data = json.loads(text)
        return cls({(int(b), int(t)): float(v) for b, t, v in data["ms"]}, data.get("key", ""),
                   float(data.get("measured_s", 0.0)))

    @classmethod
    @torch.inference_mode()
    def calibrate(cls, model, *, batches=CALIBRATION_BATCHES, tokens=CALIBRATION_TOKENS,
                  prefix: int = CALIBRATION_PREFIX, repeats: int = 3, key: str = "") -> "CostTable":
        """Time one forward per (rows, tokens) over a `prefix`-token cache: the fastest of `repeats` (a
        shared machine only ever adds time), then made monotone (more rows or tokens never cost less),
        so one disturbed point cannot make a wide step look cheap."""
        from generators.decoding.row_cache import RowKVCache

        t0 = time.perf_counter()
        s, dev = model.shape, model.device
        ms: dict[tuple[int, int], float] = {}
        for b in batches:
            cache = RowKVCache(s.n_layers, b, s.kv_heads, s.head_dim, prefix + max(tokens) + 1,
                               torch.zeros(b, dtype=torch.long), model.dtype, dev)
            cache.lengths = [prefix] * b
            for t in tokens:
                ids = torch.randint(0, s.vocab_size, (b, t), device=dev)
                positions = prefix + torch.arange(t, device=dev)[None, :].expand(b, -1)
                causal = torch.ones((t, t), dtype=torch.bool, device=dev).tril()[None].expand(b, -1, -1)
                times = []
                for _ in range(repeats + 1):  # the first run warms up
                    start = time.perf_counter()
                    cache.begin(causal)
                    h = model.forward(ids, positions, cache, n_causal=t, commit=True, adapt_clean=False)
                    model.logits(h)  # a draft step reads logits at every clean and draft position
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    times.append((time.perf_counter() - start) * 1000)
                ms[(b, t)] = min(times[1:])
        return cls(monotone(ms), key, time.perf_counter() - t0)


def monotone(ms: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    """Each point raised to the largest cost of any point with fewer or equal rows and tokens."""
    return {(b, t): max(v for (b2, t2), v in ms.items() if b2 <= b and t2 <= t) for (b, t) in ms}


class CostWidth:
    """Drafts per step from the cost table, at the acceptance rate seen so far.

    The rate starts at `accept_rate` (a prior worth `prior_weight` drafts) and moves with what the
    decode reports (`observe`): prompt-lookup drafts are accepted far more often on a record that
    restates its attributes than on free prose, so a fixed guess either wastes wide forwards or
    leaves copies undrafted. Each decode call learns on its own copy (`fresh`), so one call's prose
    never starves another's copies, and a policy shared between threads is never written."""

    def __init__(self, table: CostTable, accept_rate: float, prior_weight: float = 32.0):
        if not 0.0 <= accept_rate <= 1.0 or prior_weight <= 0:
            raise ValueError(f"accept_rate must be in [0, 1] and prior_weight > 0, got {accept_rate}, {prior_weight}")
        self.table, self.prior, self.prior_weight = table, accept_rate, prior_weight
        self.proposed = self.accepted = 0

    @property
    def accept_rate(self) -> float:
        return (self.accepted + self.prior * self.prior_weight) / (self.proposed + self.prior_weight)

    def __call__(self, rows: int, most: int, layout: str) -> int:
        return self.table.best_drafts(rows, most, layout, self.accept_rate)

    def trim(self, rows: int, lengths: list[int]) -> int:
        """Drafts to keep per row in a step without blocks, where only some rows found drafts (their
        lengths): the d whose expected tokens over all rows per ms is highest (padding rows cost
        their slots and yield nothing)."""
        a = self.accept_rate

        def rate(d: int) -> float:
            gained = sum(sum(a ** i for i in range(1, min(d, n) + 1)) for n in lengths)
            return (rows + gained) / self.table.cost(rows, 1 + d)
        return max(range(max(lengths, default=0) + 1), key=lambda d: (rate(d), -d))

    def fresh(self) -> "CostWidth":
        """This policy with nothing observed yet (one per decode call)."""
        return CostWidth(self.table, self.prior, self.prior_weight)

    def observe(self, proposed: int, accepted: int) -> None:
        """A step verified `proposed` drafts and kept `accepted` of them."""
        self.proposed += proposed
        self.accepted += accepted


def cost_width(table: CostTable, accept_rate: float) -> CostWidth:
    """Drafts per step from the cost table, starting at an expected per-draft acceptance rate."""
    return CostWidth(table, accept_rate)


def cached_cost_table(model, folder: Path, key: str) -> CostTable:
    """The cost table for `key` (model, dtype, device, threads) from `folder`, measured once and saved."""
    path = Path(folder) / f"cost-table-{_safe(key)}.json"
    try:
        table = CostTable.from_json(path.read_text())
        if table.key == key:
            return table
    except (OSError, ValueError, KeyError, TypeError):
        pass
    table = CostTable.calibrate(model, key=key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(table.to_json())
    tmp.replace(path)
    return table


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:120]
