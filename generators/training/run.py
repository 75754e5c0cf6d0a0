"""One command: prepare data, train the block-diffusion adapter, evaluate, export it with its card.

    python -m generators.training.run --out OUT [--budget-s SECONDS] [options]

Defaults depend on the device (CUDA: thousands of self-distilled prompts, large batches; CPU: a
few hundred), so the same command runs unchanged on a laptop and on a GPU. Everything goes
under OUT:

    OUT/data/       train.jsonl, heldout.jsonl, stats.json (reused if present)
    OUT/train/      checkpoint.pt (resumable), metrics.jsonl (the tokens-per-forward curve)
    OUT/adapter/    adapter_config.json, bf16 safetensors shards (< 16 MiB each), README.md (card)
    OUT/metrics.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from generators.adapter_io import save_adapter
from generators.decoding.families import get_family
from generators.loading import load_model
from generators.training.data import DataConfig, prepare, read_jsonl
from generators.training.evaluate import decode_eval
from generators.training.train import TrainConfig, train

log = logging.getLogger("hybridgen.training")

PROFILES = {
    "cuda": dict(train_prompts=6000, heldout_prompts=64, generation_batch=384, batch_size=32, max_steps=3000,
                 eval_every=100, eval_prompts=32),
    "cpu": dict(train_prompts=300, heldout_prompts=32, generation_batch=8, batch_size=4, max_steps=300,
                eval_every=50, eval_prompts=12),
}
SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train hybridgen's block-diffusion LoRA adapter")
    ap.add_argument("--out", required=True, type=Path, help="output folder (resumes if it holds a checkpoint)")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--family", default="smollm2-block-lora")
    ap.add_argument("--cache-dir", type=Path, default=None, help="model cache (default: HYBRIDGEN_CACHE_DIR)")
    ap.add_argument("--mbpp", type=Path, default=None, help="mbpp.jsonl (default: ../shared/data/mbpp/mbpp.jsonl)")
    ap.add_argument("--budget-s", type=float, default=None, help="wall-clock budget for the whole run")
    ap.add_argument("--device", default="auto")
    for name, typ in (("train_prompts", int), ("heldout_prompts", int), ("generation_batch", int),
                      ("batch_size", int), ("max_steps", int), ("eval_every", int), ("eval_prompts", int),
                      ("block_size", int), ("lora_r", int), ("lr", float), ("max_response_tokens", int),
                      ("precision", str), ("checkpoint_every", int), ("init_from", str)):
        ap.add_argument("--" + name.replace("_", "-"), type=typ, default=None)
    ap.add_argument("--draft-only-lora", action="store_true", default=None,
                    help="LoRA on the noisy copies only: the adapter as draft-and-verify uses it (the clean "
                         "tokens run on the base weights)")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    t0 = time.monotonic()
    deadline = t0 + args.budget_s if args.budget_s else None
    from pipeline.settings import Settings  # the CLI entry may read settings; the library code does not

    cache_dir = args.cache_dir or Settings.from_env().cache_dir
    lm = load_model(args.model, cache_dir=cache_dir, device=args.device, dtype="float32")
    profile = PROFILES["cuda" if lm.device.type == "cuda" else "cpu"]
    opts = {**profile, **{k: v for k, v in vars(args).items() if v is not None and k in _tunables()}}
    if lm.device.type == "cuda":
        # fp32 without TF32: self-distilled replies must be what the CPU fp32 model says
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    data_cfg = DataConfig(**{k: opts[k] for k in DataConfig.__dataclass_fields__ if k in opts})
    train_cfg = TrainConfig(**{k: opts[k] for k in TrainConfig.__dataclass_fields__ if k in opts})
    mbpp = args.mbpp or Path(__file__).resolve().parents[3] / "shared" / "data" / "mbpp" / "mbpp.jsonl"
    family = get_family(args.family)

    # read before training: the card of a continued adapter carries its starting point's card
    start_card = Path(args.init_from) / "README.md" if args.init_from else None
    started_from = start_card.read_text() if start_card and start_card.exists() else None
    data_dir = args.out / "data"
    if not (data_dir / "train.jsonl").exists():
        data_deadline = t0 + args.budget_s * 0.3 if args.budget_s else None
        stats = prepare(lm, data_dir, data_cfg, mbpp if mbpp.exists() else None, deadline=data_deadline)
        log.info("data: %s (%.0f s)", stats, time.monotonic() - t0)
    stats = json.loads((data_dir / "stats.json").read_text())

    train_deadline = deadline - max(45.0, args.budget_s * 0.12) if deadline else None
    result = train(lm, family, data_dir, args.out / "train", train_cfg, deadline=train_deadline)
    model = result["model"]
    adapter_dir = args.out / "adapter"
    files = save_adapter(model, adapter_dir)  # first: nothing after this can lose the trained weights
    heldout = read_jsonl(data_dir / "heldout.jsonl")
    sweep = []  # the threshold decoder only: the final evaluation has draft-and-verify's numbers
    for tau in SWEEP:
        if deadline and time.monotonic() > deadline - 10:
            break
        try:
            sweep.append(decode_eval(model, heldout, family=family, mask_id=family.resolve_mask_id(lm.tokenizer),
                                     eos_ids=lm.eos_token_ids, pad_id=lm.pad_token_id, block=train_cfg.block_size,
                                     threshold=tau, max_new_tokens=train_cfg.eval_new_tokens,
                                     n_prompts=train_cfg.eval_prompts, verify=False))
        except Exception as e:  # noqa: BLE001 - the adapter is saved already; report and go on
            log.exception("sweep at threshold %s failed", tau)
            sweep.append({"threshold": tau, "tokens_per_forward": None, "agreement_with_ar": None, "error": str(e)})
            continue
        log.info("sweep %s", sweep[-1])
    records = [json.loads(l) for l in (args.out / "train" / "metrics.jsonl").read_text().splitlines()]
    curve = list({r["step"]: r for r in records}.values())  # one row per step: a final record repeats its step
    metrics = {
        "data": stats,
        "train": {**result["state"], "config": asdict(train_cfg)},
        "final": result["final"],
        "sweep": sweep,
        "curve": [{k: c.get(k) for k in ("step", "tokens_seen", "diff_acc", "tokens_per_forward", "agreement_with_ar",
                                         "verify_tokens_per_forward")}
                  for c in curve],
        "hardware": hardware(lm.device),
        "seconds": round(time.monotonic() - t0, 1),
        "command": "python -m generators.training.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "adapter_files": {f.name: f.stat().st_size for f in files},
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_card(adapter_dir / "README.md", metrics, family.name, started_from=started_from)
    log.info("adapter written to %s (%s)", adapter_dir, metrics["adapter_files"])
    return metrics


def _tunables() -> set[str]:
    return set(DataConfig.__dataclass_fields__) | set(TrainConfig.__dataclass_fields__)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} (torch {torch.__version__})"


def demote_headings(markdown: str) -> str:
    """Every Markdown heading one level down (code blocks untouched), to nest one card in another."""
    out, in_code = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        out.append("#" + line if line.startswith("#") and not in_code else line)
    return "\n".join(out)


def write_card(path: Path, m: dict, family: str, started_from: str | None = None) -> None:
    """The adapter's model card. started_from: the card of the adapter this run continued (--init-from),
    nested at the end, so a continued adapter's card still says how its starting point was made."""
    t, d, f = m["train"], m["data"], m["final"]
    cfg = t["config"]
    sweep = "\n".join(f"| {s['threshold']} | {s['tokens_per_forward']} | {s['agreement_with_ar']} |" for s in m["sweep"])
    # verify tokens per forward: what the default decoder gets (its agreement with AR is 1 by construction)
    curve = "\n".join(f"| {c['step']} | {c['tokens_seen']} | {c['diff_acc']} | {c['tokens_per_forward']} | "
                      f"{c['agreement_with_ar']} | {c.get('verify_tokens_per_forward')} |" for c in m["curve"])
    path.write_text(f"""# {family}: block-diffusion LoRA adapter for SmolLM2-135M-Instruct

Turns the default planner model into hybridgen's refiner (block size {cfg['block_size']}, shifted logits,
mask token `<empty_output>`). Trained by `generators/training` (Fast-dLLM v2 recipe: block-wise masking
with a noise level per block, complementary masks, [x_t ; x_0] layout with a block-diffusion mask,
token shift, masked-token loss{"" if cfg.get('draft_only_lora') else f" + {cfg['ar_loss_weight']} x AR loss"}, LoRA on every linear layer{
    " applied to the noisy copies only: the clean copy runs on the base weights, as draft-and-verify uses it,"
    " so the AR loss could not change it" if cfg.get('draft_only_lora') else ""}).

hybridgen's default refiner decoder is draft-and-verify: this adapter drafts the next tokens, the base
weights keep only those the AR model would write itself (`generators/decoding/verify.py`).
The numbers below are the training run's own evaluation; `benchmarks/refiner.py` measures the adapter
as the pipeline uses it (see `docs/benchmarks.md`).

## Data
- self-distillation: the base model's own greedy replies to article-section, product-description and
  MBPP code prompts, plus {round(1 - d['train_self_distilled'] / max(1, d['train_examples']), 3)} share of real
  code (Python stdlib source, MBPP solutions)
- train: {d['train_examples']} examples, {d['train_response_tokens']} response tokens
- held-out (never trained on): {d['heldout_examples']} prompts, {d['heldout_response_tokens']} tokens

## Training
- steps: {t['step']}, batch {cfg['batch_size']} sequences, response tokens seen: {t['tokens_seen']},
  input tokens processed: {t['input_tokens']}
- LoRA r={cfg['lora_r']}, alpha={cfg['lora_alpha']}, lr={cfg['lr']} (warmup {cfg['warmup_steps']}, cosine),
  max response {cfg['max_response_tokens']} tokens
- hardware: {m['hardware']}; wall time {m['seconds']} s (training {t['seconds']} s)

## Measured on the held-out prompts
Final: diffusion-target accuracy {f['diff_acc']}, AR accuracy {f['ar_acc']}; at threshold {f['threshold']}:
{f['tokens_per_forward']} tokens per forward, {f['agreement_with_ar']} agreement with the base model's greedy reply
(position by position, {cfg['eval_new_tokens']} new tokens); draft-and-verify with {f.get('verify_drafts')} drafts:
{f.get('verify_tokens_per_forward')} tokens per forward.

| threshold | tokens/forward | agreement with AR |
|---|---|---|
{sweep}

Curve (tokens per forward vs tokens trained; threshold decoder at {f['threshold']}, and draft-and-verify):

| step | response tokens seen | diff acc | tokens/forward | agreement | verify tokens/forward |
|---|---|---|---|---|---|
{curve}

## Reproduce
```
{m['command']}
```
""" + (f"""
## Started from
This run continued the adapter at `{m['train']['config'].get('init_from')}` (`--init-from`). Its card
follows, headings one level down. To reproduce this adapter, run that command first and pass its
adapter folder to this run's `--init-from`.

{demote_headings(started_from)}
""" if started_from else ""))


if __name__ == "__main__":
    main()
