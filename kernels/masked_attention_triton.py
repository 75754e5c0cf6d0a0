"""Triton masked attention: queries over a preallocated KV buffer, with an explicit boolean mask.

Same signature and semantics as kernels/masked_attention_torch.py:

    q (R, Hq, Tq, D), k/v (R, Hkv, S, D), mask (R, 1, Tq, S) bool or None -> (R, Hq, Tq, D)

Why: the engine's verify forward (generators/decoding/row_cache.py) writes its new K/V into the
row cache's buffer first and then attends over the used slots [0, S), with one mask per forward
that hides each row's left padding, stale slots and the new span's own pattern. Rows differ in
length, so the mask is explicit rather than a fixed rule (as in block_attention).

Design:
- one program per (row, query head, tile of BLOCK_M query tokens); Tq is small (1..64), so a
  tile usually holds every query of a head. Query head h reads KV head h // (Hq // Hkv) by index:
  grouped-query heads are never repeated in memory.
- one loop over key tiles of BLOCK_N slots with an online softmax (flash-attention style); the
  mask's (BLOCK_M, BLOCK_N) tile is loaded beside each K/V tile, and with mask None only the
  bounds hide keys. The (Tq, S) scores are never materialised.
- fp32 accumulation whatever the input dtype (fp32, fp16, bf16); the output has q's dtype.
  Every query must see at least one key (the engine's masks always let a token see itself); one
  that sees none returns zeros here (SDPA returns NaN).
- D must be a power of two up to 128 (the default model's is 64); D below 16 is padded to 16 for
  tl.dot.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from kernels.checks import KernelInputError, check_masked_attention

MAX_HEAD_DIM = 128


@triton.jit
def _masked_attention_kernel(
    Q, K, V, MASK, OUT,
    sq_r, sq_h, sq_t,
    sk_r, sk_h, sk_t,
    sv_r, sv_h, sv_t,
    sm_r, sm_t, sm_s,
    so_r, so_h, so_t,
    group, n_query, n_keys, head_dim, scale,
    HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
):
    row = tl.program_id(0)
    head = tl.program_id(1)
    kvh = head // group  # grouped-query attention by index

    tok = tl.program_id(2) * BLOCK_M + tl.arange(0, BLOCK_M)  # (M,) query tokens of this tile
    tok_ok = tok < n_query
    d = tl.arange(0, BLOCK_D)
    d_ok = d < head_dim

    q = tl.load(Q + row * sq_r + head * sq_h + tok[:, None] * sq_t + d[None, :],
                mask=tok_ok[:, None] & d_ok[None, :], other=0.0)  # (M, D)
    if DOT_FP32:
        q = q.to(tl.float32)
    k_base = K + row * sk_r + kvh * sk_h
    v_base = V + row * sv_r + kvh * sv_h
    m_base = MASK + row * sm_r + tok[:, None] * sm_t

    run_max = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    run_sum = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for s0 in range(0, n_keys, BLOCK_N):
        slot = s0 + tl.arange(0, BLOCK_N)  # (N,)
        slot_ok = slot < n_keys
        kv_ok = slot_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + slot[:, None] * sk_t + d[None, :], mask=kv_ok, other=0.0)  # (N, D)
        v = tl.load(v_base + slot[:, None] * sv_t + d[None, :], mask=kv_ok, other=0.0)
        if DOT_FP32:
            k, v = k.to(tl.float32), v.to(tl.float32)
        visible = tok_ok[:, None] & slot_ok[None, :]  # (M, N)
        if HAS_MASK:
            keep = tl.load(m_base + slot[None, :] * sm_s, mask=visible, other=0)
            visible = visible & (keep != 0)
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION).to(tl.float32) * scale
        scores = tl.where(visible, scores, float("-inf"))
        new_max = tl.maximum(run_max, tl.max(scores, axis=1))
        # a row with no visible key so far keeps max -inf: subtract 0 instead (exp(-inf) = 0, no NaN)
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        p = tl.exp(scores - shift[:, None])
        rescale = tl.exp(run_max - shift)
        run_sum = run_sum * rescale + tl.sum(p, axis=1)
        acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION).to(tl.float32)
        run_max = new_max

    out = acc / tl.where(run_sum > 0, run_sum, 1.0)[:, None]
    tl.store(OUT + row * so_r + head * so_h + tok[:, None] * so_t + d[None, :], out.to(OUT.dtype.element_ty),
             mask=tok_ok[:, None] & d_ok[None, :])


def _check_triton_inputs(q, k, v, mask) -> None:
    """What this kernel needs beyond the shared shape check: dtypes, devices, head size."""
    def fail(msg: str) -> None:
        raise KernelInputError(f"masked_attention (triton): {msg}")

    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        fail(f"dtype {q.dtype} unsupported; use float32, float16 or bfloat16")
    for name, t in (("k", k), ("v", v)) + ((("mask", mask),) if mask is not None else ()):
        if t.device != q.device:
            fail(f"{name} is on {t.device} but q is on {q.device}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        fail(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if mask is not None and mask.dtype != torch.bool:
        fail(f"mask must be bool (True = visible), got {mask.dtype}")
    d = q.shape[3]
    if not 1 <= d <= MAX_HEAD_DIM or d & (d - 1):
        fail(f"head_dim {d} unsupported; it must be a power of two up to {MAX_HEAD_DIM} (q {tuple(q.shape)})")


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, *,
                     scale: float | None = None) -> torch.Tensor:
    """q (R, Hq, Tq, D); k/v (R, Hkv, S, D); mask (R, 1, Tq, S) bool or None -> (R, Hq, Tq, D)."""
    check_masked_attention(q, k, v, mask)
    _check_triton_inputs(q, k, v, mask)
    r, hq, tq, d = q.shape
    hkv, s = k.shape[1], k.shape[2]
    # The kernel indexes the head dim with unit stride; the engine's buffer slices already have it.
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if r == 0 or hq == 0 or tq == 0:
        return out
    has_mask = mask is not None
    if has_mask:
        mask = mask.view(torch.uint8)  # same bytes; loads as integers, any strides (expanded masks too)
        mask_strides = (mask.stride(0), mask.stride(2), mask.stride(3))
    else:
        mask, mask_strides = q, (0, 0, 0)  # never read: HAS_MASK=False
    block_d = max(16, d)
    block_m = 16 if tq <= 16 else 32 if tq <= 32 else 64
    block_n = 64 if block_d <= 64 else 32
    grid = (r, hq, triton.cdiv(tq, block_m))
    _masked_attention_kernel[grid](
        q, k, v, mask, out,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        *mask_strides,
        out.stride(0), out.stride(1), out.stride(2),
        hq // hkv, tq, s, d, float(scale if scale is not None else d ** -0.5),
        HAS_MASK=has_mask, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
        # As in block_attention_triton: Triton's CPU interpreter computes bf16 tl.dot wrongly, so
        # interpreted bf16 runs its dots in fp32; fp32 inputs get IEEE products, not TF32.
        DOT_FP32=q.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1",
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
    )
    return out
