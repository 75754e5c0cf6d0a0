"""Training batches for the block-diffusion objective (Fast-dLLM v2 recipe).

Each example (prompt p, response r) becomes one sequence laid out as

    [ x_0 = p + r (clean) | x_t = r with some positions masked | x_t' = r with the complement masked ]

with one 4-D boolean attention mask (True = may attend):

    x_0 query       causal over x_0                                         (the AR model, exactly)
    x_t query       x_0 before its block's start (prompt + earlier blocks, clean)
    (block k)       + every position of its own block in the same copy      (bidirectional)
    padding         itself only (so no row of the softmax is empty)

Blocks of `block_size` tokens start right after the prompt, as at inference. Position ids of a
noisy copy repeat those of x_0, so x_t sits where its tokens would be.

Targets (token shift: logits at position i predict token i+1):
- AR: every x_0 position from the last prompt token on predicts the next response token. Among
  these are each block's first token, which inference takes from the commit forward's clean logits.
- diffusion: a masked position j >= 1 of a block in a noisy copy is predicted by the logits at
  j-1 of the same copy. The two copies' masks are complementary, so every position is a
  diffusion target in exactly one copy.

A block's noise level t ~ U(0, 1) is drawn per block; each position is masked with probability t.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass
class TrainBatch:
    input_ids: torch.Tensor  # (N, T)
    position_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, 1, T, T) bool
    ar_rows: torch.Tensor  # (K,) which sequence
    ar_cols: torch.Tensor  # (K,) which position's logits
    ar_labels: torch.Tensor  # (K,)
    diff_rows: torch.Tensor
    diff_cols: torch.Tensor
    diff_labels: torch.Tensor
    response_tokens: int
    clean_mask: torch.Tensor | None = None  # (N, T) bool: the x_0 copy
    def to(self, device) -> "TrainBatch":
        return TrainBatch(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})


def shape_response(response: list[int], ended: bool, block: int, eos: int, max_tokens: int) -> list[int]:
    """Cut to whole blocks. A reply that ended gets its EOS and is padded with EOS to a whole
    block (so the refiner learns to fill the rest of a block with EOS, as it must at inference)."""
    r = list(response[:max_tokens])
    if ended and len(response) <= max_tokens:
        r.append(eos)
        r += [eos] * (-len(r) % block)
    else:
        r = r[: len(r) - len(r) % block]
    return r


def build_batch(examples: list[dict], *, block: int, mask_id: int, eos_id: int, pad_id: int,
                max_response_tokens: int, rng: random.Random) -> TrainBatch | None:
    seqs = []
    for ex in examples:
        r = shape_response(ex["response"], ex.get("ended", False), block, eos_id, max_response_tokens)
        if len(r) >= block:
            seqs.append((list(ex["prompt"]), r))
    if not seqs:
        return None
    width = max(len(p) + 3 * len(r) for p, r in seqs)
    n = len(seqs)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    region = torch.full((n, width), -1, dtype=torch.long)  # 0 = x_0, 1 = x_t, 2 = x_t', -1 = pad
    blk = torch.full((n, width), -1, dtype=torch.long)  # block index of response positions
    limit = torch.zeros((n, width), dtype=torch.long)  # x_t: x_0 positions < limit are visible
    ar, diff = [], []
    for i, (p, r) in enumerate(seqs):
        P, R = len(p), len(r)
        masked = _block_noise(R, block, rng)  # (R,) bool for copy 1; copy 2 is the complement
        x0 = p + r
        ids[i, :P + R] = torch.tensor(x0)
        pos[i, :P + R] = torch.arange(P + R)
        region[i, :P + R] = 0
        blk[i, P:P + R] = torch.arange(R) // block
        for c, copy_mask in ((1, masked), (2, [not m for m in masked])):
            start = P + R + (c - 1) * R
            ids[i, start:start + R] = torch.tensor([mask_id if m else t for m, t in zip(copy_mask, r)])
            pos[i, start:start + R] = torch.arange(P, P + R)
            region[i, start:start + R] = c
            blk[i, start:start + R] = torch.arange(R) // block
            limit[i, start:start + R] = P + (torch.arange(R) // block) * block
            for j in range(R):
                if copy_mask[j] and j % block:
                    diff.append((i, start + j - 1, r[j]))
        for j in range(R):
            ar.append((i, P - 1 + j, r[j]))
    mask = _attention_mask(region, pos, blk, limit)
    ar_t = torch.tensor(ar, dtype=torch.long)
    diff_t = torch.tensor(diff, dtype=torch.long).reshape(-1, 3)
    return TrainBatch(ids, pos, mask, ar_t[:, 0], ar_t[:, 1], ar_t[:, 2], diff_t[:, 0], diff_t[:, 1], diff_t[:, 2],
                      response_tokens=sum(len(r) for _, r in seqs), clean_mask=region == 0)


def _block_noise(length: int, block: int, rng: random.Random) -> list[bool]:
    out: list[bool] = []
    for _ in range(0, length, block):
        t = rng.random()
        out += [rng.random() < t for _ in range(block)]
    return out[:length]


def _attention_mask(region: torch.Tensor, pos: torch.Tensor, blk: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """(N, T) descriptors -> (N, 1, T, T) bool mask (see the module docstring)."""
    rq, rk = region[:, :, None], region[:, None, :]
    pq, pk = pos[:, :, None], pos[:, None, :]
    clean_q = (rq == 0) & (rk == 0) & (pk <= pq)
    noisy_q = (rq > 0) & (((rk == 0) & (pk < limit[:, :, None])) | ((rk == rq) & (blk[:, None, :] == blk[:, :, None])))
    eye = torch.eye(region.shape[1], dtype=torch.bool)[None]
    pad_q = (rq < 0) & eye
    return (clean_q | noisy_q | pad_q)[:, None]
