"""Kernel benchmark: Triton block attention and fused confidence against torch.

    python benchmarks/kernels.py [--quick]

On CUDA (timed with triton.testing.do_bench, median):
- block_attention (active block 32, batch 16, cached length 2k / 4k / 8k; SmolLM2 heads 9/3 x 64 and
  Qwen2-1.5B heads 12/2 x 128) against torch SDPA with an explicit boolean mask on K/V that are
  already concatenated (the mask and the concatenation are built outside the timed region, which
  favours SDPA), and against the full torch reference function;
- confidence (512 positions; vocab 49,152 and 151,936) against torch softmax + max.
On CPU it checks parity only (Triton's interpreter) and says so: CPU timings of an interpreter
mean nothing. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from benchmarks.common import emit_json, print_table  # noqa: E402


def attention_inputs(batch, hq, hkv, d, cache_len, block, dtype, device, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g, device=device, dtype=torch.float32).to(dtype)  # noqa: E731
    q = mk(batch, hq, block, d)
    kc, vc = mk(batch, hkv, cache_len + block, d), mk(batch, hkv, cache_len + block, d)
    kn, vn = mk(batch, hkv, block, d), mk(batch, hkv, block, d)
    kv_start = torch.randint(0, 64, (batch,), device=device)  # rows with different left padding
    return q, kc, vc, kn, vn, kv_start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    from kernels.block_attention_torch import block_attention as attn_ref
    from kernels.block_attention_torch import block_attention_mask
    from kernels.block_attention_triton import block_attention as attn_tri
    from kernels.confidence_torch import confidence as conf_ref
    from kernels.confidence_triton import confidence as conf_tri

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    result: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu (Triton interpreter: parity only)"}

    # -- parity first, on every machine ---------------------------------------------------------------
    parity_rows = []
    for dtype, tol in ((torch.float32, 2e-5), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)):
        q, kc, vc, kn, vn, ks = attention_inputs(2, 9, 3, 64, 70, 8, dtype, device)
        got = attn_tri(q, kc, vc, kn, vn, ks, cache_len=70, n_causal=0)
        want = attn_ref(q.float(), kc.float(), vc.float(), kn.float(), vn.float(), ks, cache_len=70, n_causal=0)
        err = (got.float() - want).abs().max().item()
        logits = torch.randn(8, 49155, device=device).to(dtype)
        c1, i1 = conf_tri(logits)
        c2, i2 = conf_ref(logits)
        parity_rows.append((str(dtype).replace("torch.", ""), f"{err:.2e}", err <= tol,
                            f"{(c1 - c2).abs().max().item():.2e}", bool(torch.equal(i1, i2))))
    print_table("parity with the torch references", ["dtype", "attention max err", "ok", "confidence max err",
                                                      "argmax equal"], parity_rows)
    result["parity_ok"] = all(r[2] and r[4] for r in parity_rows)
    if not cuda:
        print("\nno CUDA device: parity only (timing Triton's CPU interpreter would mean nothing)")
        emit_json(result)
        return

    from triton.testing import do_bench

    def bench(fn) -> float:
        return do_bench(fn, warmup=25, rep=100 if args.quick else 300, return_mode="median")

    rows = []
    lengths = (2048, 8192) if args.quick else (2048, 4096, 8192)
    for label, hq, hkv, d in (("smollm2 9/3x64", 9, 3, 64), ("qwen2-1.5b 12/2x128", 12, 2, 128)):
        for cache_len in lengths:
            q, kc, vc, kn, vn, ks = attention_inputs(16, hq, hkv, d, cache_len, 32, torch.bfloat16, device)
            keys = torch.cat([kc[:, :, :cache_len], kn], dim=2)
            vals = torch.cat([vc[:, :, :cache_len], vn], dim=2)
            mask = block_attention_mask(ks, cache_len, 32, 0, 0, 32)
            t_sdpa = bench(lambda: torch.nn.functional.scaled_dot_product_attention(
                q, keys, vals, attn_mask=mask, enable_gqa=True))
            t_ref = bench(lambda: attn_ref(q, kc, vc, kn, vn, ks, cache_len=cache_len, n_causal=0))
            t_tri = bench(lambda: attn_tri(q, kc, vc, kn, vn, ks, cache_len=cache_len, n_causal=0))
            kv_bytes = 2 * 16 * hkv * (cache_len + 32) * d * 2
            rows.append((label, cache_len, round(t_sdpa * 1e3, 1), round(t_ref * 1e3, 1), round(t_tri * 1e3, 1),
                         round(t_sdpa / t_tri, 2), round(kv_bytes / (t_tri * 1e-3) / 1e9)))
            result[f"block_attention_speedup_{label.split()[0]}_{cache_len // 1024}k"] = round(t_sdpa / t_tri, 2)
    print_table("block_attention, bf16, batch 16, active block 32 (microseconds, median)",
                ["heads", "cached", "SDPA+mask", "torch ref", "triton", "vs SDPA", "triton K/V GB/s"], rows)

    crow = []
    for vocab in (49152, 151936):
        for dtype in (torch.bfloat16, torch.float32):
            logits = torch.randn(512, vocab, device=device, dtype=torch.float32).to(dtype)
            t_torch = bench(lambda: torch.softmax(logits.float(), dim=-1).max(dim=-1))
            t_tri = bench(lambda: conf_tri(logits))
            crow.append((vocab, str(dtype).replace("torch.", ""), round(t_torch * 1e3, 1), round(t_tri * 1e3, 1),
                         round(t_torch / t_tri, 2)))
            result[f"confidence_speedup_{vocab}_{str(dtype).replace('torch.', '')}"] = round(t_torch / t_tri, 2)
    print_table("confidence (512 positions; microseconds, median)",
                ["vocab", "dtype", "torch softmax+max", "triton", "speedup"], crow)
    emit_json(result)


if __name__ == "__main__":
    main()
