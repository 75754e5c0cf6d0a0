"""Training data for the block-diffusion adapter, prepared by one reproducible command.

Two sources, written as JSONL of token ids under a data folder (in the cache, never committed):
- self-distillation: the default AR model's own greedy replies to content-kind chat prompts
  (generators/training/prompts.py). Low-entropy under the model, so the refiner can learn to
  predict several of them at once, and what it learns is to agree with the planner;
- real text: Python standard library source and MBPP reference solutions (offline), a small
  share so the adapter keeps seeing text the model did not write.

    train.jsonl / heldout.jsonl : {"prompt": [ids], "response": [ids], "source": str, "ended": bool}

The held-out prompts are never trained on (distinct RNG streams, distinct MBPP tasks, and any
held-out prompt equal to a training one is dropped).
"""

from __future__ import annotations

import json
import logging
import random
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from generators.decoding.ar import ARConfig, generate_ar
from generators.loading import LoadedModel
from generators.prompts import chat_ids
from generators.training.prompts import ChatPrompt, build_prompts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    train_prompts: int = 300
    """Self-distillation prompts for training."""
    heldout_prompts: int = 48
    max_response_tokens: int = 192
    """Greedy reply length cap (the refiner's spans are a paragraph or a function body)."""
    real_text_share: float = 0.15
    """Fraction of training examples taken from real text instead of the model's own replies."""
    generation_batch: int = 8
    seed: int = 0


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def self_distill(lm: LoadedModel, prompts: list[ChatPrompt], cfg: DataConfig, deadline: float | None = None) -> list[dict]:
    """Greedy AR replies of the model to each prompt (sorted by length for efficient batching)."""
    ids = [chat_ids(lm.tokenizer, p.user, p.system) for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    rows: list[dict | None] = [None] * len(ids)
    t0 = time.perf_counter()
    for start in range(0, len(order), cfg.generation_batch):
        if deadline is not None and time.monotonic() > deadline:
            log.warning("self-distillation stopped at its deadline after %d prompts", start)
            break
        idx = order[start:start + cfg.generation_batch]
        results = generate_ar(lm.model, [ids[i] for i in idx], eos_token_ids=lm.eos_token_ids,
                              pad_token_id=lm.pad_token_id, config=ARConfig(max_new_tokens=cfg.max_response_tokens))
        for i, r in zip(idx, results):
            rows[i] = {"prompt": ids[i], "response": r.token_ids, "source": f"self:{prompts[i].kind}",
                       "ended": r.finish_reason == "eos"}
        done = start + len(idx)
        if done % (cfg.generation_batch * 10) == 0 or done == len(order):
            log.info("self-distilled %d/%d prompts (%.0f s)", done, len(order), time.perf_counter() - t0)
    return [r for r in rows if r is not None and r["response"]]


def real_text(lm: LoadedModel, n: int, cfg: DataConfig, mbpp_path: Path | None) -> list[dict]:
    """n (prefix -> continuation) examples from stdlib source files and MBPP solutions."""
    rng = random.Random(f"real-{cfg.seed}")
    texts: list[str] = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py"))[:200]:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    if mbpp_path is not None and mbpp_path.exists():
        with open(mbpp_path, encoding="utf-8") as fh:
            texts.extend(t["code"].replace("\r\n", "\n") for t in map(json.loads, fh) if t["task_id"] > 510)
    if not texts:
        return []
    rows = []
    for _ in range(n * 3):
        if len(rows) >= n:
            break
        ids = lm.tokenizer(rng.choice(texts), add_special_tokens=False)["input_ids"]
        if len(ids) < 48:
            continue
        start = rng.randrange(0, max(1, len(ids) - 40))
        prefix = rng.randint(8, 24)
        chunk = ids[start:start + prefix + cfg.max_response_tokens]
        rows.append({"prompt": chunk[:prefix], "response": chunk[prefix:], "source": "real:code", "ended": False})
    return rows


def prepare(lm: LoadedModel, out_dir: Path, cfg: DataConfig, mbpp_path: Path | None,
            deadline: float | None = None) -> dict:
    """Write train.jsonl and heldout.jsonl under out_dir; returns their sizes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    train_prompts = build_prompts(cfg.train_prompts, split="train", mbpp_path=mbpp_path, seed=cfg.seed)
    seen = {p.user for p in train_prompts}
    heldout_prompts = [p for p in build_prompts(cfg.heldout_prompts + 16, split="heldout", mbpp_path=mbpp_path,
                                                seed=cfg.seed) if p.user not in seen][: cfg.heldout_prompts]
    heldout = self_distill(lm, heldout_prompts, cfg)
    write_jsonl(out_dir / "heldout.jsonl", heldout)
    train = self_distill(lm, train_prompts, cfg, deadline=deadline)
    n_real = int(len(train) * cfg.real_text_share / max(1e-9, 1 - cfg.real_text_share))
    train += real_text(lm, n_real, cfg, mbpp_path)
    random.Random(cfg.seed).shuffle(train)
    write_jsonl(out_dir / "train.jsonl", train)
    stats = {
        "train_examples": len(train),
        "train_response_tokens": sum(len(r["response"]) for r in train),
        "train_self_distilled": sum(r["source"].startswith("self") for r in train),
        "heldout_examples": len(heldout),
        "heldout_response_tokens": sum(len(r["response"]) for r in heldout),
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def iterate_forever(rows: list[dict], seed: int) -> Iterator[dict]:
    """Shuffled epochs over the examples, without end."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for i in order:
            yield rows[i]


def as_tensor(ids: list[int], device) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.long, device=device)
