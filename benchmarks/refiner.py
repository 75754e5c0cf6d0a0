"""Refiner speed and quality on the default model: AR baseline vs reference vs cached diffusion decoder.

    python benchmarks/refiner.py [--quick] [--model M] [--dtype D] [--adapter PATH|default|none]
                                 [--quality-only | --skip-quality]
                                 [--per-kind N] [--taus 0.5,0.9,1.0] [--plot PNG] [--threads N]
                                 [--speed-drafts 3,4]

Speed. Same prompts (article section, product description, code body), same number of new tokens
for every decoder (EOS ignored, so tokens/s compare like for like), at batch 1 and batch 8:
- AR: HF `generate` with KV cache (the baseline), and our batched AR on packed weights;
- the reference diffusion decoder (no cache; same strategy as the cached one);
- the cached decoder (block + sub-block cache, packed weights) at the default threshold;
- draft-and-verify (the pipeline's default refiner decoder: the adapter drafts, the refiner's own
  causal pass keeps only what it would have written itself); `--speed-drafts` adds rows at other
  draft counts (keys `verify_d{D}_tok_s_b{1,8}`, `verify_d{D}_tpf_b{1,8}`).
Then the cache alone: cached vs reference with the same strategy, same tokens, at 256 new tokens.

Quality (benchmarks/refiner_quality.py has the exact definitions). On held-out prompts of the
training split, AR greedy vs the refiner, both stopping at EOS under the same per-kind cap:
- generative perplexity of the outputs under the base AR model (no adapter); `gen_ppl_ratio` =
  the default decoder (draft-and-verify, D drafts) / AR, `gen_ppl_ratio_tau_default` = τ 0.9 / AR;
- validator pass rate (the raw-span checks of each kind, NLI off: rules only);
- a τ sweep and a drafts sweep at batch 1: tokens per forward vs gen perplexity and pass rate, as a
  table and a PNG.
Then the tokens-per-forward vs tokens-trained curve of the shipped adapter's training run.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (BENCH_PROMPTS, RssSampler, add_model_args, emit_json, load_for_bench,  # noqa: E402
                               machine, print_table)

DEFAULT_BLOCK, DEFAULT_SUB, DEFAULT_TAU = 4, 4, 0.9
DEFAULT_DRAFTS = 2  # HYBRIDGEN_REFINER_DRAFTS' default: the pipeline's refiner is draft-and-verify
FULL_DRAFTS, QUICK_DRAFTS = (1, 2, 3), (2,)
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLOT = ROOT / "docs" / "results" / "refiner-tau-sweep.png"
TRAIN_CURVE = ROOT / "docs" / "gpu-runs" / "2026-11-28" / "train_metrics.jsonl"
FULL_TAUS, QUICK_TAUS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0), (0.7, 0.9, 1.0)
TPF_TARGET, PPL_RATIO_TARGET, PASS_GAP = 2.5, 1.3, 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer tokens, 1 prompt per kind, 3 τ values, 48-token cap (a few minutes)")
    add_model_args(ap)
    ap.add_argument("--quality-only", "--skip-speed", dest="skip_speed", action="store_true",
                    help="skip the speed tables")
    ap.add_argument("--skip-quality", action="store_true", help="speed tables only (the old benchmark)")
    ap.add_argument("--per-kind", type=int, default=None, help="held-out prompts per kind (default 4; quick 1)")
    ap.add_argument("--taus", default=None, help="comma-separated τ values for the sweep "
                    f"(default {','.join(map(str, FULL_TAUS))}; quick {','.join(map(str, QUICK_TAUS))})")
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="cap below the pipeline's per-kind span budget (quick: 48)")
    ap.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="where the τ sweep PNG goes")
    ap.add_argument("--speed-drafts", type=_draft_counts, default=[],
                    help="comma-separated extra draft counts D for the speed table's draft-and-verify rows, e.g. "
                         "'3,4': on a GPU a forward costs the same for 1 or D+1 tokens per row, so wider drafts "
                         "may pay there while they lose on a CPU")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice); 1 on a machine shared with other jobs, where "
                         "spinning threads that lose their core make every decoder several times slower")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    settings, lm, refiner = load_for_bench(args)
    print(f"machine: {machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads), load average "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}; refiner weights: {refiner.name}")
    result: dict = {}
    if not args.skip_speed:
        from benchmarks.engine import engine_speed

        extra = sorted(set(args.speed_drafts) - {DEFAULT_DRAFTS})
        result.update(speed(lm, refiner, quick=args.quick, extra_drafts=extra))
        result.update(engine_speed(lm, refiner, settings, n_new=32 if args.quick else 64, batches=(1, 8, 32)))
    if not args.skip_quality:
        result.update(quality(lm, refiner, args))
    if TRAIN_CURVE.exists():
        from benchmarks.refiner_quality import training_curve

        print_table(f"tokens per forward vs tokens trained (the shipped adapter's last run, {TRAIN_CURVE.parent.name}, "
                    "H200, continued from its earlier runs; decode_eval: 32 held-out prompts, batch 8, 64 new tokens)",
                    ["step", "response tokens seen", "diff acc", "tok/fwd τ 0.9", "agreement with AR",
                     f"tok/fwd verify D={DEFAULT_DRAFTS}"],
                    training_curve(TRAIN_CURVE))
    print(f"\nload average at the end: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    emit_json({**result, "adapter": refiner.name, "quick": args.quick, "threads": torch.get_num_threads()})


def _draft_counts(text: str) -> list[int]:
    """--speed-drafts: '3,4' -> [3, 4]; anything but positive integers is refused by name."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated draft counts >= 1, e.g. 3,4")
    return counts


def speed(lm, refiner, *, quick: bool, extra_drafts: list[int] = ()) -> dict:
    """The speed tables (printed); returns their JSON keys."""
    n_new = 32 if quick else 96
    n_cache = 64 if quick else 256

    import torch

    from generators.decoding.proposals import DecodeConfig
    from generators.decoding.commit_rules import CommitRule, Verify
    from generators.prompts import chat_ids, left_pad
    from pipeline.runtime import CPU_FORWARD_BUDGET

    tok = lm.tokenizer
    prompts = [chat_ids(tok, p) for p in BENCH_PROMPTS]
    no_eos = [-1]

    def hf_generate(batch, n):
        ids, mask = (t.to(lm.model.device) for t in left_pad(batch, lm.pad_token_id))
        out = lm.model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                pad_token_id=lm.pad_token_id)
        return [(out.shape[1] - ids.shape[1], out.shape[1] - ids.shape[1])] * len(batch)

    def diffusion(reference: bool, strategy, block=DEFAULT_BLOCK, sub=DEFAULT_SUB, sub_cache=True):
        from generators.decoding.reference_block import generate_reference

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
        return diffusion(False, CommitRule("fixed_k"), block=1, sub=1, sub_cache=False)(batch, n)

    tau = CommitRule("threshold", threshold=DEFAULT_TAU)
    one_per_step = CommitRule("fixed_k")
    verify = Verify(drafts=DEFAULT_DRAFTS)
    configs = [
        ("AR: HF generate + KV cache (baseline)", hf_generate),
        ("AR: hybridgen packed forward", packed_ar),
        (f"diffusion reference (no cache, τ={DEFAULT_TAU})", diffusion(True, tau)),
        (f"diffusion cached (B={DEFAULT_BLOCK}, sub={DEFAULT_SUB}, τ={DEFAULT_TAU})", diffusion(False, tau)),
        (f"draft-and-verify (D={DEFAULT_DRAFTS}, tree)", diffusion(False, verify)),
        (f"draft-and-verify (D={DEFAULT_DRAFTS}, CPU budget {CPU_FORWARD_BUDGET} tokens/forward)",
         diffusion(False, Verify(drafts=DEFAULT_DRAFTS, forward_budget=CPU_FORWARD_BUDGET))),
    ]
    wide = {d: f"draft-and-verify (D={d}, tree)" for d in extra_drafts}
    configs += [(name, diffusion(False, Verify(drafts=d))) for d, name in wide.items()]
    rows, res = [], {}
    on_gpu = lm.model.device.type == "cuda"
    for name, fn in configs:
        for bs in (1, 8):
            if "reference" in name and bs == 8:
                continue  # the reference is a correctness oracle; batch 1 is enough to time it
            batch = prompts[:bs] if bs == 8 else prompts[:1]
            # On a GPU the first call of each shape pays for kernel selection and allocator growth: on the
            # H200 a short warm-up left one decoder 2.3x slower than its twin with the same forwards. There
            # the warm-up is the timed call itself; on a CPU (2 cores, minutes per call) one short call.
            fn(batch, n_new) if on_gpu else fn(batch[:1], 4)
            with RssSampler() as rss:
                t0 = time.perf_counter()
                out = fn(batch, n_new)
                if on_gpu:
                    torch.cuda.synchronize()
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
    print_table(f"decoding {n_new} new tokens per prompt (EOS ignored)",
                ["decoder", "batch", "tokens", "forwards/row", "tok/fwd", "tokens/s", "peak RSS MB"], rows)
    print_table("the cache alone (fixed-k, 1 token per step, same tokens)",
                ["decoder", "new tokens", "forwards", "tokens/s"], cache_rows)
    ar, fast, ref, ver = "AR: HF generate + KV cache (baseline)", configs[3][0], configs[2][0], configs[4][0]
    return {
        "verify_tok_s_b1": round(res[(ver, 1)][0], 2),
        "verify_tok_s_b8": round(res[(ver, 8)][0], 2),
        "verify_tpf_b1": round(res[(ver, 1)][1], 3),
        "verify_tpf_b8": round(res[(ver, 8)][1], 3),
        "verify_budget_tok_s_b8": round(res[(configs[5][0], 8)][0], 2),
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
        **{f"verify_d{d}_{key}_b{bs}": round(res[(name, bs)][i], 3 if key == "tpf" else 2)
           for d, name in wide.items() for bs in (1, 8) for i, key in ((0, "tok_s"), (1, "tpf"))},
    }


def quality(lm, refiner, args) -> dict:
    """Held-out quality, AR greedy vs the refiner, and the τ sweep (tables, PNG); returns JSON keys."""
    import benchmarks.refiner_quality as q
    from generators.prompts import chat_ids

    # the judge must be the base model: load_refiner keeps the adapter beside packed copies of the weights
    assert not any("lora" in n.lower() for n, _ in lm.model.named_modules()), "judge model carries a LoRA adapter"
    per_kind = args.per_kind or (1 if args.quick else 4)
    taus = sorted({float(t) for t in args.taus.split(",")} if args.taus else set(QUICK_TAUS if args.quick else FULL_TAUS))
    taus = sorted(set(taus) | {DEFAULT_TAU})
    prompts = q.heldout_prompts(per_kind)
    kinds = [p.kind for p in prompts]
    ids = [chat_ids(lm.tokenizer, p.user, p.system) for p in prompts]
    caps = q.span_caps(kinds, args.max_new_tokens or (48 if args.quick else None))
    by_kind = {k: [i for i, x in enumerate(kinds) if x == k] for k in q.KINDS if k in kinds}

    def score(arm):
        arm.nll = q.generated_nll(lm.model, ids, [r.token_ids for r in arm.rows], pad_token_id=lm.pad_token_id)
        arm.checks = [q.check_span(k, p.user, lm.tokenizer.decode(r.token_ids))
                      for k, p, r in zip(kinds, prompts, arm.rows)]
        return arm

    from generators.decoding.commit_rules import CommitRule, Verify

    ar = score(q.decode_ar(lm, ids, caps))
    arms, verify_arms = {}, {}
    for tau in taus:
        arms[tau] = score(q.decode_refiner(refiner, ids, caps, strategy=CommitRule("threshold", threshold=tau),
                                           block=DEFAULT_BLOCK, sub=DEFAULT_SUB))
        print(f"  τ={tau}: {arms[tau].tokens} tokens in {arms[tau].seconds:.0f} s", file=sys.stderr, flush=True)
    for d in sorted(set(QUICK_DRAFTS if args.quick else FULL_DRAFTS) | {DEFAULT_DRAFTS}):
        verify_arms[d] = score(q.decode_refiner(refiner, ids, caps, strategy=Verify(drafts=d),
                                                block=DEFAULT_BLOCK, sub=DEFAULT_SUB))
        print(f"  verify D={d}: {verify_arms[d].tokens} tokens in {verify_arms[d].seconds:.0f} s", file=sys.stderr,
              flush=True)
    ref = verify_arms[DEFAULT_DRAFTS]  # the pipeline's default refiner decoder
    default_name = ref.name

    def eos_share(arm):
        return f"{sum(r.finish_reason == 'eos' for r in arm.rows)}/{len(arm.rows)}"

    def same_as_ar(arm):
        return f"{sum(r.token_ids == a.token_ids for r, a in zip(arm.rows, ar.rows))}/{len(arm.rows)}"

    cap_text = ", ".join(f"{k} {caps[idx[0]]}" for k, idx in by_kind.items())
    print_table(f"quality on {len(prompts)} held-out prompts ({per_kind} per kind; stop at EOS, caps: {cap_text}); "
                f"refiner B={DEFAULT_BLOCK}, sub={DEFAULT_SUB}, batch 1; AR batch 8",
                ["decoder", "tokens", "tok/fwd", "tokens/s", "gen ppl", "ppl / AR", "pass rate", "ended at EOS",
                 "same as AR"],
                [(ar.name, ar.tokens, round(ar.tokens_per_forward, 3), round(ar.tokens / ar.seconds, 2),
                  round(ar.gen_ppl(), 3), 1.0, round(ar.pass_rate(), 3), eos_share(ar), "-")]
                + [(a.name + (" (default)" if a is ref else ""), a.tokens, round(a.tokens_per_forward, 3),
                    round(a.tokens / a.seconds, 2), round(a.gen_ppl(), 3), round(a.gen_ppl() / ar.gen_ppl(), 3),
                    round(a.pass_rate(), 3), eos_share(a), same_as_ar(a))
                   for a in [*arms.values(), *verify_arms.values()]])
    print_table(f"by kind, the default decoder ({default_name})",
                ["kind", "prompts", "AR tokens", "refiner tokens", "refiner tok/fwd", "AR gen ppl", "refiner gen ppl",
                 "ratio", "AR pass", "refiner pass"],
                [(k, len(idx), sum(ar.rows[i].generated_tokens for i in idx),
                  sum(ref.rows[i].generated_tokens for i in idx),
                  round(sum(ref.rows[i].generated_tokens for i in idx)
                        / max(1, sum(ref.rows[i].forward_passes for i in idx)), 3),
                  round(ar.gen_ppl(idx), 3), round(ref.gen_ppl(idx), 3), round(ref.gen_ppl(idx) / ar.gen_ppl(idx), 3),
                  f"{sum(all(ar.checks[i].values()) for i in idx)}/{len(idx)}",
                  f"{sum(all(ref.checks[i].values()) for i in idx)}/{len(idx)}") for k, idx in by_kind.items()])
    check_names = [(k, c) for k, idx in by_kind.items() for c in ar.checks[idx[0]]]
    print_table(f"checks passed, AR vs {default_name} (NLI off: rules only)",
                ["kind", "check", "AR", "refiner"],
                [(k, c, f"{sum(ar.checks[i][c] for i in by_kind[k])}/{len(by_kind[k])}",
                  f"{sum(ref.checks[i][c] for i in by_kind[k])}/{len(by_kind[k])}") for k, c in check_names])
    points = [{"tau": t, "tokens_per_forward": a.tokens_per_forward, "gen_ppl": a.gen_ppl(), "pass_rate": a.pass_rate()}
              for t, a in arms.items()]
    verify_points = [{"drafts": d, "tokens_per_forward": a.tokens_per_forward, "gen_ppl": a.gen_ppl(),
                      "pass_rate": a.pass_rate()} for d, a in verify_arms.items()]
    plot = q.plot_tau_sweep(points, {"gen_ppl": ar.gen_ppl(), "pass_rate": ar.pass_rate()}, args.plot,
                            tpf_target=TPF_TARGET, ppl_ratio_target=PPL_RATIO_TARGET, pass_gap=PASS_GAP,
                            verify_points=verify_points,
                            title=f"{refiner.name}: {len(prompts)} held-out prompts, B={DEFAULT_BLOCK}, batch 1")
    print(f"\nτ sweep plot: {plot}")
    ratio = ref.gen_ppl() / ar.gen_ppl()
    print(f"targets for the default decoder ({default_name}): tok/fwd {ref.tokens_per_forward:.3f} (≥ {TPF_TARGET}: "
          f"{'met' if ref.tokens_per_forward >= TPF_TARGET else 'NOT met'}); gen_ppl_ratio {ratio:.3f} "
          f"(≤ {PPL_RATIO_TARGET}: {'met' if ratio <= PPL_RATIO_TARGET else 'NOT met'}); pass rate "
          f"{ref.pass_rate():.3f} vs AR {ar.pass_rate():.3f} (within {PASS_GAP}: "
          f"{'met' if ref.pass_rate() >= ar.pass_rate() - PASS_GAP else 'NOT met'})")
    return {
        "gen_ppl_ratio": round(ratio, 3),
        "gen_ppl_ar": round(ar.gen_ppl(), 3),
        "gen_ppl_refiner": round(ref.gen_ppl(), 3),
        "pass_rate_ar": round(ar.pass_rate(), 3),
        "pass_rate_refiner": round(ref.pass_rate(), 3),
        "quality_tpf_b1": round(ref.tokens_per_forward, 3),
        "quality_prompts": len(prompts),
        "quality_caps": {k: caps[idx[0]] for k, idx in by_kind.items()},
        # [τ, tokens per forward, gen perplexity, pass rate] per sweep point
        "tau_sweep": [[p["tau"], round(p["tokens_per_forward"], 3), round(p["gen_ppl"], 3), round(p["pass_rate"], 3)]
                      for p in points],
        "default_decoder": default_name,
        "gen_ppl_ratio_tau_default": round(arms[DEFAULT_TAU].gen_ppl() / ar.gen_ppl(), 3),
        # [drafts, tokens per forward, gen perplexity, pass rate] of draft-and-verify
        "drafts_sweep": [[p["drafts"], round(p["tokens_per_forward"], 3), round(p["gen_ppl"], 3),
                          round(p["pass_rate"], 3)] for p in verify_points],
    }


if __name__ == "__main__":
    main()
