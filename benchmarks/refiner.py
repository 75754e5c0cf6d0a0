"""Refiner speed on the default model: AR baseline vs reference vs cached diffusion decoder.

    python benchmarks/refiner.py [--quick] [--adapter PATH|none]

Same prompts (article section, product description, code body), same number of new tokens for
every decoder (EOS ignored, so tokens/s compare like for like), at batch 1 and batch 8:
- AR: HF `generate` with KV cache (the baseline), and our batched AR on packed weights;
- the reference diffusion decoder (no cache; same strategy as the cached one);
- the cached decoder (block + sub-block cache, packed weights) at the default threshold.
Then the cache alone: cached vs reference with the same strategy, same tokens, at 256 new tokens.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BENCH_PROMPTS, RssSampler, emit_json, machine, print_table  # noqa: E402

DEFAULT_BLOCK, DEFAULT_SUB, DEFAULT_TAU = 4, 4, 0.9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens (about two minutes)")
    ap.add_argument("--adapter", default="default", help="LoRA adapter folder, 'default' or 'none'")
    args = ap.parse_args()
    n_new = 32 if args.quick else 96
    n_cache = 64 if args.quick else 256

    import torch

    from generators.diffusion.proposals import DecodeConfig
    from generators.diffusion.strategies import Strategy
    from generators.loading import load_model
    from generators.prompts import chat_ids, left_pad
    from generators.refiner import load_refiner
    from pipeline.settings import Settings

    settings = Settings.from_env()
    lm = load_model("smollm2-135m-instruct", cache_dir=settings.cache_dir)
    adapter = _adapter_path(args.adapter)
    refiner = load_refiner(lm, adapter=adapter)
    tok = lm.tokenizer
    prompts = [chat_ids(tok, p) for p in BENCH_PROMPTS]
    no_eos = [-1]

    def hf_generate(batch, n):
        ids, mask = left_pad(batch, lm.pad_token_id)
        out = lm.model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                pad_token_id=lm.pad_token_id)
        return [(out.shape[1] - ids.shape[1], out.shape[1] - ids.shape[1])] * len(batch)

    def diffusion(reference: bool, strategy, block=DEFAULT_BLOCK, sub=DEFAULT_SUB, sub_cache=True):
        from generators.diffusion.reference import generate_reference

        def run(batch, n):
            cfg = DecodeConfig(block_size=block, sub_block_size=sub, max_new_tokens=n, sub_block_cache=sub_cache)
            if reference:
                rows = generate_reference(lm.model, batch, family=refiner.family, mask_token_id=refiner.mask_token_id,
                                          eos_token_ids=no_eos, pad_token_id=lm.pad_token_id, config=cfg,
                                          strategy=strategy)
            else:
                rows = refiner.generate(batch, config=cfg, strategy=strategy, eos_token_ids=no_eos)
            return [(r.generated_tokens, r.forward_passes) for r in rows]
        return run

    def packed_ar(batch, n):  # AR through the same packed forward: isolates packing from parallel decoding
        return diffusion(False, Strategy("fixed_k"), block=1, sub=1, sub_cache=False)(batch, n)

    tau = Strategy("threshold", threshold=DEFAULT_TAU)
    one_per_step = Strategy("fixed_k")
    configs = [
        ("AR: HF generate + KV cache (baseline)", hf_generate),
        ("AR: hybridgen packed forward", packed_ar),
        (f"diffusion reference (no cache, τ={DEFAULT_TAU})", diffusion(True, tau)),
        (f"diffusion cached (B={DEFAULT_BLOCK}, sub={DEFAULT_SUB}, τ={DEFAULT_TAU})", diffusion(False, tau)),
    ]
    rows, res = [], {}
    for name, fn in configs:
        for bs in (1, 8):
            if "reference" in name and bs == 8:
                continue  # the reference is a correctness oracle; batch 1 is enough to time it
            batch = prompts[:bs] if bs == 8 else prompts[:1]
            fn(batch[:1], 4)  # warm-up
            with RssSampler() as rss:
                t0 = time.perf_counter()
                out = fn(batch, n_new)
                dt = time.perf_counter() - t0
            tokens = sum(t for t, _ in out)
            forwards = max(f for _, f in out)
            tpf = 1.0 if "HF" in name else tokens / sum(f for _, f in out)  # generate() counts no forwards
            rows.append((name, bs, tokens, forwards, round(tpf, 3), round(tokens / dt, 2), round(rss.peak_mb)))
            res[(name, bs)] = (tokens / dt, tokens / sum(f for _, f in out))

    # the cache alone: same strategy (one token per step), same tokens, at n_cache new tokens
    cache_rows = []
    for name, fn in (("reference (no cache)", diffusion(True, one_per_step, sub_cache=False)),
                     ("cached, sub-block cache off", diffusion(False, one_per_step, sub_cache=False)),
                     ("cached, sub-block cache on", diffusion(False, one_per_step, sub=2, sub_cache=True))):
        t0 = time.perf_counter()
        out = fn(prompts[:1], n_cache)
        dt = time.perf_counter() - t0
        cache_rows.append((name, n_cache, out[0][1], round(out[0][0] / dt, 2)))
    print(f"machine: {machine()}, torch {torch.__version__}; refiner weights: {refiner.name}")
    print_table(f"decoding {n_new} new tokens per prompt (EOS ignored)",
                ["decoder", "batch", "tokens", "forwards/row", "tok/fwd", "tokens/s", "peak RSS MB"], rows)
    print_table("the cache alone (fixed-k, 1 token per step, same tokens)",
                ["decoder", "new tokens", "forwards", "tokens/s"], cache_rows)
    ar, fast, ref = "AR: HF generate + KV cache (baseline)", configs[3][0], configs[2][0]
    emit_json({
        "ar_tok_s_b1": round(res[(ar, 1)][0], 2),
        "ar_tok_s_b8": round(res[(ar, 8)][0], 2),
        "ar_packed_tok_s_b1": round(res[(configs[1][0], 1)][0], 2),
        "ar_packed_tok_s_b8": round(res[(configs[1][0], 8)][0], 2),
        "reference_tok_s_b1": round(res[(ref, 1)][0], 2),
        "fast_tok_s_b1": round(res[(fast, 1)][0], 2),
        "fast_tok_s_b8": round(res[(fast, 8)][0], 2),
        "tpf_b1": round(res[(fast, 1)][1], 3),
        "tpf_b8": round(res[(fast, 8)][1], 3),
        "cache_speedup_256": round(cache_rows[1][3] / cache_rows[0][3], 2),
        "adapter": refiner.name,
        "quick": args.quick,
    })


def _adapter_path(arg: str):
    if arg == "none":
        return None
    if arg == "default":
        from generators.shipped import default_adapter_path

        return default_adapter_path()
    return Path(arg)


if __name__ == "__main__":
    main()
