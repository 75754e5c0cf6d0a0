"""AR baseline on the default model: tokens/s at batch 1 and 8, model load time, peak RSS.

    python benchmarks/ar_baseline.py [--quick]

The numbers the block-diffusion refiner must beat. Our batched AR decoder is timed beside HF
`generate` (same model, same prompts, greedy) so decoder overhead is visible.
Ends with one JSON line: ar_tok_s_b1, ar_tok_s_b8, load_s_cold, load_s_cached, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BENCH_PROMPTS, emit_json, machine, peak_rss_mb, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer new tokens and repeats (about a minute)")
    args = ap.parse_args()
    new_tokens = 32 if args.quick else 96
    repeats = 1 if args.quick else 3

    import torch

    from generators.decoding.ar import ARConfig, generate_ar
    from generators.loading import load_model
    from generators.prompts import chat_ids

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cold_cache:
        t0 = time.perf_counter()
        load_model("smollm2-135m-instruct", cache_dir=cold_cache)  # GGUF -> safetensors conversion
        load_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        lm = load_model("smollm2-135m-instruct", cache_dir=cold_cache)
        load_cached = time.perf_counter() - t0

    tok = lm.tokenizer
    prompts = [chat_ids(tok, p) for p in BENCH_PROMPTS]
    # Greedy to a fixed length: EOS is ignored so every row generates exactly `new_tokens`.
    cfg = ARConfig(max_new_tokens=new_tokens)

    def ours(batch):
        rows = generate_ar(lm.model, batch, eos_token_ids=[-1], pad_token_id=lm.pad_token_id, config=cfg)
        return sum(r.generated_tokens for r in rows)

    def hf(batch):
        from generators.prompts import left_pad

        ids, mask = left_pad(batch, lm.pad_token_id)
        out = lm.model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                do_sample=False, pad_token_id=lm.pad_token_id)
        return (out.shape[1] - ids.shape[1]) * len(batch)

    rows = []
    results = {}
    for name, fn in (("hybridgen generate_ar", ours), ("HF generate", hf)):
        for bs in (1, 8):
            batches = [prompts[i:i + bs] for i in range(0, len(prompts), bs)][: (2 if bs == 1 else 1)]
            fn(batches[0][:1])  # warm-up
            best = 0.0
            for _ in range(repeats):
                t0 = time.perf_counter()
                tokens = sum(fn(b) for b in batches)
                best = max(best, tokens / (time.perf_counter() - t0))
            rows.append((name, bs, new_tokens, round(best, 1)))
            results[(name, bs)] = best

    print(f"machine: {machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print_table("AR decoding, SmolLM2-135M-Instruct (fp32, greedy, best of repeats)",
                ["decoder", "batch", "new tokens/row", "tokens/s"], rows)
    print_table("model load", ["what", "seconds"],
                [("cold (GGUF dequantize + convert + save)", round(load_cold, 2)),
                 ("cached (safetensors)", round(load_cached, 2))])
    emit_json({
        "ar_tok_s_b1": round(results[("hybridgen generate_ar", 1)], 2),
        "ar_tok_s_b8": round(results[("hybridgen generate_ar", 8)], 2),
        "hf_generate_tok_s_b1": round(results[("HF generate", 1)], 2),
        "hf_generate_tok_s_b8": round(results[("HF generate", 8)], 2),
        "load_s_cold": round(load_cold, 2),
        "load_s_cached": round(load_cached, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "quick": args.quick,
    })


if __name__ == "__main__":
    main()
