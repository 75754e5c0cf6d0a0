"""Triton block attention: the active (sub-)block's queries over the committed KV cache + new tokens.

Same signature and semantics as kernels/block_attention_torch.py (read its docstring for the mask).

Design:
- one program per (row, KV head, tile of BLOCK_M query rows). The rows of a tile are the
  (query head, query token) pairs of every query head sharing this KV head (grouped-query
  attention), so each K/V tile is loaded once for all of them: SmolLM2's 9 query heads over 3 KV
  heads read the cache 3x less than a per-head kernel or SDPA on expanded K/V.
- two key loops with an online softmax (flash-attention style): the cache slots
  [kv_start, cache_len) first (only bounds, no structural mask inside the cache), then the new
  tokens with the clean/draft rule. No (Tq, L) mask is ever materialised.
- fp32 accumulation whatever the input dtype; a query that sees no key returns zeros.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from kernels.checks import KernelInputError, check_block_attention


@triton.jit
def _block_attention_kernel(
    Q, KC, VC, KN, VN, KV_START, OUT,
    sq_r, sq_h, sq_t,
    skc_r, skc_h, skc_t,
    svc_r, svc_h, svc_t,
    skn_r, skn_h, skn_t,
    svn_r, svn_h, svn_t,
    so_r, so_h, so_t,
    n_kv_heads, cache_len, n_new, n_causal, q_offset, n_query, head_dim, scale,
    GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
):
    pid_rh = tl.program_id(0)
    pid_m = tl.program_id(1)
    row = pid_rh // n_kv_heads
    kvh = pid_rh % n_kv_heads

    # Tile rows m -> (query head, query token); heads kvh*GROUP .. kvh*GROUP+GROUP-1 share this K/V.
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (M,)
    m_valid = m < GROUP * n_query
    head = kvh * GROUP + m // n_query
    tok = m % n_query
    d = tl.arange(0, BLOCK_D)
    d_valid = d < head_dim

    q_ptrs = Q + row * sq_r + head[:, None] * sq_h + tok[:, None] * sq_t + d[None, :]
    q = tl.load(q_ptrs, mask=m_valid[:, None] & d_valid[None, :], other=0.0)  # (M, D)
    if DOT_FP32:
        q = q.to(tl.float32)
    a = q_offset + tok  # new-token index of each query
    start = tl.load(KV_START + row).to(tl.int32)

    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)

    # -- committed cache: slots [start, cache_len) are visible to every query ---------------------
    lo = (start // BLOCK_N) * BLOCK_N
    for n0 in range(lo, cache_len, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_ok = (n >= start) & (n < cache_len)
        k = tl.load(KC + row * skc_r + kvh * skc_h + n[:, None] * skc_t + d[None, :],
                    mask=n_ok[:, None] & d_valid[None, :], other=0.0)
        v = tl.load(VC + row * svc_r + kvh * svc_h + n[:, None] * svc_t + d[None, :],
                    mask=n_ok[:, None] & d_valid[None, :], other=0.0)
        if DOT_FP32:
            k, v = k.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION).to(tl.float32) * scale  # (M, N)
        ok = m_valid[:, None] & n_ok[None, :]
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION).to(tl.float32)
        m_i = m_new

    # -- new tokens: clean ones causal, draft ones bidirectional ----------------------------------
    for n0 in range(0, n_new, BLOCK_N):
        j = n0 + tl.arange(0, BLOCK_N)
        t = cache_len + j  # absolute position
        j_ok = (j < n_new) & (t >= start)
        k = tl.load(KN + row * skn_r + kvh * skn_h + j[:, None] * skn_t + d[None, :],
                    mask=j_ok[:, None] & d_valid[None, :], other=0.0)
        v = tl.load(VN + row * svn_r + kvh * svn_h + j[:, None] * svn_t + d[None, :],
                    mask=j_ok[:, None] & d_valid[None, :], other=0.0)
        if DOT_FP32:
            k, v = k.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION).to(tl.float32) * scale
        ok = m_valid[:, None] & j_ok[None, :] & ((a[:, None] >= n_causal) | (j[None, :] <= a[:, None]))
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION).to(tl.float32)
        m_i = m_new

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]  # rows without any key stay zero
    o_ptrs = OUT + row * so_r + head[:, None] * so_h + tok[:, None] * so_t + d[None, :]
    tl.store(o_ptrs, out.to(OUT.dtype.element_ty), mask=m_valid[:, None] & d_valid[None, :])


def block_attention(q, k_cache, v_cache, k_new, v_new, kv_start, *, cache_len: int, n_causal: int,
                    q_offset: int = 0, scale: float | None = None) -> torch.Tensor:
    """q (R, Hq, Tq, D); k/v_cache (R, Hkv, Lmax, D); k/v_new (R, Hkv, Tn, D) -> (R, Hq, Tq, D)."""
    check_block_attention(q, k_cache, v_cache, k_new, v_new, kv_start, cache_len, n_causal, q_offset)
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise KernelInputError(f"block_attention (triton): dtype {q.dtype} unsupported; use float32, float16 or bfloat16")
    r, hq, tq, d = q.shape
    hkv, tn = k_new.shape[1], k_new.shape[2]
    group = hq // hkv
    # The kernel indexes the last dim with unit stride.
    q, k_cache, v_cache, k_new, v_new = (t if t.stride(-1) == 1 else t.contiguous()
                                         for t in (q, k_cache, v_cache, k_new, v_new))
    out = torch.empty_like(q)
    block_d = max(16, triton.next_power_of_2(d))
    block_m = 64 if group * tq > 32 else 32 if group * tq > 16 else 16
    block_n = 64 if block_d <= 64 else 32
    grid = (r * hkv, triton.cdiv(group * tq, block_m))
    _block_attention_kernel[grid](
        q, k_cache, v_cache, k_new, v_new, kv_start.contiguous(), out,
        q.stride(0), q.stride(1), q.stride(2),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        k_new.stride(0), k_new.stride(1), k_new.stride(2),
        v_new.stride(0), v_new.stride(1), v_new.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        hkv, cache_len, tn, n_causal, q_offset, tq, d, float(scale if scale is not None else d ** -0.5),
        GROUP=group, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
        # Triton's CPU interpreter computes bf16 tl.dot wrongly (a bare 16x16 bf16 dot is off by
        # 1e10 under TRITON_INTERPRET=1 with Triton 3.9), so interpreted bf16 runs its dots in fp32.
        # On a GPU bf16 dots run natively on the tensor cores.
        DOT_FP32=q.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1",
        # fp32 inputs get fp32 products: Triton's default for a float32 dot on a GPU is TF32, which
        # measured 2e-3 max error on an H100 (the fp32 parity tests failed there until this).
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
    )
    return out
