"""Triton confidence: per position, the max probability and argmax of softmax(logits / T), in one pass.

One program per position streams the vocabulary in BLOCK_V tiles, keeping a running maximum,
its index and the running sum of exp((x - max) / T) rescaled whenever the maximum grows (the
online softmax). max probability = 1 / sum: the (N, V) probabilities are never written, which on
a 151,936-token vocabulary is most of the memory traffic of the torch version.
Ties go to the lowest index, as torch.argmax.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.checks import check_confidence


@triton.jit
def _confidence_kernel(LOGITS, CONF, INDEX, stride_n, vocab, inv_temp, BLOCK_V: tl.constexpr):
    pid = tl.program_id(0)
    base = LOGITS + pid * stride_n
    offs = tl.arange(0, BLOCK_V)
    run_max = tl.full((), float("-inf"), tl.float32)
    run_idx = tl.full((), 0, tl.int64)
    run_sum = tl.zeros((), tl.float32)
    for v0 in range(0, vocab, BLOCK_V):
        idx = v0 + offs
        x = tl.load(base + idx, mask=idx < vocab, other=float("-inf")).to(tl.float32) * inv_temp
        tile_max = tl.max(x, axis=0)
        tile_arg = tl.argmax(x, axis=0).to(tl.int64) + v0
        new_max = tl.maximum(run_max, tile_max)
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
        better = tile_max > run_max  # strict: an earlier tile keeps ties
        run_idx = tl.where(better, tile_arg, run_idx)
        run_max = new_max
    tl.store(CONF + pid, 1.0 / run_sum)
    tl.store(INDEX + pid, run_idx)


def confidence(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, V) -> (max_prob (N,) float32, argmax (N,) int64)."""
    check_confidence(logits, temperature)
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    n, vocab = logits.shape
    conf = torch.empty(n, dtype=torch.float32, device=logits.device)
    index = torch.empty(n, dtype=torch.int64, device=logits.device)
    if n == 0:
        return conf, index
    block_v = min(4096, triton.next_power_of_2(vocab))
    _confidence_kernel[(n,)](logits, conf, index, logits.stride(0), vocab, 1.0 / temperature,
                             BLOCK_V=block_v, num_warps=8 if block_v >= 2048 else 4)
    return conf, index
