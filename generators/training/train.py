"""The training loop: LoRA on every linear layer, block-diffusion loss + AR loss, resumable.

Runs unchanged on CPU (bf16 autocast) and CUDA (bf16 autocast). Progress lines give the loss and
input tokens/s; every `eval_every` steps the held-out loss and the real decoder's tokens per
forward are appended to metrics.jsonl, which makes the tokens-per-forward vs tokens-trained curve.
A checkpoint (adapter + optimizer + counters) is written every `checkpoint_every` steps and at the
end; starting again with the same output folder resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from generators.decoding.families import DiffusionFamily
from generators.decoding.layers import causal_lm, lora_only_on
from generators.loading import LoadedModel
from generators.training.batches import TrainBatch, build_batch
from generators.training.data import iterate_forever, read_jsonl
from generators.training.evaluate import cross_entropy, decode_eval, heldout_loss

log = logging.getLogger(__name__)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class TrainConfig:
    block_size: int = 4
    lora_r: int = 32
    lora_alpha: int = 64
    lr: float = 3e-4
    warmup_steps: int = 20
    batch_size: int = 8
    max_steps: int = 200
    ar_loss_weight: float = 0.5
    max_response_tokens: int = 192
    eval_every: int = 50
    eval_threshold: float = 0.9
    eval_prompts: int = 16
    eval_new_tokens: int = 64
    checkpoint_every: int = 50
    precision: str = "bf16"
    """bf16 autocast (the recipe; native on GPUs) or fp32 (faster on CPUs without bf16 units)."""
    init_from: str | None = None
    """An adapter folder (same rank) whose weights start the run instead of a fresh LoRA, e.g. the
    shipped adapter, to retrain it with draft_only_lora."""
    draft_only_lora: bool = False
    """Train the adapter as draft-and-verify uses it by default: LoRA on the noisy copies only, the
    clean copy (x_0) on the base weights. The AR loss then trains nothing and is only reported."""
    seed: int = 0


def make_peft(model: torch.nn.Module, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=LORA_TARGETS,
                        bias="none")
    return get_peft_model(model, config)


def batch_losses(model, batch: TrainBatch, autocast_dtype=None, draft_only_lora: bool = False) -> dict:
    """Forward one batch; the loss tensor plus detached numbers."""
    lm = causal_lm(model)
    device = next(model.parameters()).device
    batch = batch.to(device)
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else _nullcontext()
    lora_ctx = lora_only_on(model, ~batch.clean_mask) if draft_only_lora else _nullcontext()
    with ctx, lora_ctx:
        hidden = lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids, use_cache=False).last_hidden_state  # (N, T, Dm)
        # logits only where there is a target: a (N*T, 49k) logits tensor would not fit
        diff_logits = lm.lm_head(hidden[batch.diff_rows, batch.diff_cols])  # (Kd, V)
        ar_logits = lm.lm_head(hidden[batch.ar_rows, batch.ar_cols])  # (Ka, V)
    diff_loss, diff_acc = cross_entropy(diff_logits, batch.diff_labels)
    ar_loss, ar_acc = cross_entropy(ar_logits, batch.ar_labels)
    return {"diff_loss_t": diff_loss, "ar_loss_t": ar_loss, "diff_loss": diff_loss.item(), "ar_loss": ar_loss.item(),
            "diff_acc": diff_acc, "ar_acc": ar_acc}


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def train(lm: LoadedModel, family: DiffusionFamily, data_dir: Path, out_dir: Path, cfg: TrainConfig,
          deadline: float | None = None) -> dict:
    """Train (or resume) an adapter on data_dir's train.jsonl; returns the final metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = lm.device
    if cfg.precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be bf16 or fp32, got {cfg.precision!r}")
    autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
    torch.manual_seed(cfg.seed)
    mask_id = family.resolve_mask_id(lm.tokenizer)
    eos_id = lm.eos_token_ids[0]
    model = make_peft(lm.model, cfg)
    if cfg.init_from:
        _start_from(model, Path(cfg.init_from), cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.98))
    # With a deadline the cosine decay follows whichever runs out first, steps or time, so a
    # time-boxed run still ends at a low learning rate.
    clock = {"t0": time.monotonic()}

    def progress(step: int) -> float:
        by_steps = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        by_time = (time.monotonic() - clock["t0"]) / max(1.0, deadline - clock["t0"]) if deadline else 0.0
        return min(1.0, max(by_steps, by_time))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg, progress(s)))
    state = {"step": 0, "tokens_seen": 0, "input_tokens": 0, "seconds": 0.0}
    ckpt = out_dir / "checkpoint.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, saved["adapter"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = saved["state"]
        log.info("resumed from %s at step %d", ckpt, state["step"])

    rows = read_jsonl(data_dir / "train.jsonl")
    heldout = read_jsonl(data_dir / "heldout.jsonl")
    examples = iterate_forever(rows, cfg.seed)
    for _ in range(state["step"] * cfg.batch_size):  # same data order after a resume
        next(examples)
    rng = random.Random(f"noise-{cfg.seed}-{state['step']}")
    metrics_path = out_dir / "metrics.jsonl"
    common = dict(block=cfg.block_size, mask_id=mask_id, eos_id=eos_id, pad_id=lm.pad_token_id,
                  max_response_tokens=cfg.max_response_tokens)

    def evaluate(tag: str) -> dict:
        held = heldout_loss(model, heldout[: max(8, cfg.eval_prompts)], autocast_dtype=autocast_dtype,
                            draft_only_lora=cfg.draft_only_lora, **common)
        try:
            dec = decode_eval(model, heldout, family=family, mask_id=mask_id, eos_ids=lm.eos_token_ids,
                              pad_id=lm.pad_token_id, block=cfg.block_size, threshold=cfg.eval_threshold,
                              max_new_tokens=cfg.eval_new_tokens, n_prompts=cfg.eval_prompts)
        except Exception as e:  # noqa: BLE001 - an evaluation bug must not cost the training run
            log.exception("decode evaluation failed")
            dec = {"decode_error": f"{type(e).__name__}: {e}", "tokens_per_forward": None, "agreement_with_ar": None}
        return write({"tag": tag, "step": state["step"], "tokens_seen": state["tokens_seen"], **held, **dec})

    def write(record: dict) -> dict:
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        log.info("eval %s", record)
        return record

    last: dict | None = None  # the latest evaluation of this process, with the step it was taken at
    if state["step"] == 0 and not metrics_path.exists():
        last = evaluate("start")
    t_start, base_seconds = time.perf_counter(), state["seconds"]
    window_tokens, window_t0 = 0, time.perf_counter()
    while state["step"] < cfg.max_steps and (deadline is None or time.monotonic() < deadline):
        batch = build_batch([next(examples) for _ in range(cfg.batch_size)], rng=rng, **common)
        if batch is None:
            continue
        out = batch_losses(model, batch, autocast_dtype=autocast_dtype, draft_only_lora=cfg.draft_only_lora)
        loss = out["diff_loss_t"] + (0.0 if cfg.draft_only_lora else cfg.ar_loss_weight) * out["ar_loss_t"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        state["step"] += 1
        state["tokens_seen"] += batch.response_tokens
        n_input = int((batch.attention_mask.any(-1)).sum())
        state["input_tokens"] += n_input
        window_tokens += n_input
        if state["step"] % 10 == 0 or state["step"] == 1:
            rate = window_tokens / max(1e-9, time.perf_counter() - window_t0)
            log.info("step %d loss %.3f (diff %.3f acc %.2f, ar %.3f) lr %.2e %.0f input tok/s",
                     state["step"], loss.item(), out["diff_loss"], out["diff_acc"], out["ar_loss"],
                     sched.get_last_lr()[0], rate)
            window_tokens, window_t0 = 0, time.perf_counter()
        if cfg.eval_every and state["step"] % cfg.eval_every == 0:
            last = evaluate("periodic")
        if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
            _checkpoint(ckpt, model, opt, sched, state, base_seconds + time.perf_counter() - t_start)
    _checkpoint(ckpt, model, opt, sched, state, base_seconds + time.perf_counter() - t_start)
    # a run that ended on an evaluation step needs no second decode of the same weights (on the GPU run
    # with the verify evaluation that was 30 s of a 420 s budget)
    ended_on_eval = last is not None and last["step"] == state["step"]
    final = write({**last, "tag": "final"}) if ended_on_eval else evaluate("final")
    (out_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    return {"final": final, "state": state, "model": model}


def _start_from(model, adapter_dir: Path, cfg: TrainConfig) -> None:
    from peft import set_peft_model_state_dict

    from generators.adapter_io import load_adapter_state

    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"--init-from {adapter_dir}: no adapter_config.json there")
    rank = json.loads(config_path.read_text()).get("r")
    if rank != cfg.lora_r:
        raise ValueError(f"--init-from {adapter_dir}: its LoRA rank is {rank}, this run's is {cfg.lora_r} "
                         "(set --lora-r to match)")
    dtype = next(model.parameters()).dtype
    state = {k: v.to(dtype) for k, v in load_adapter_state(adapter_dir).items()}
    result = set_peft_model_state_dict(model, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"--init-from {adapter_dir}: weights do not fit this model ({result.unexpected_keys[:3]}...)")
    log.info("started from the adapter at %s", adapter_dir)


def _lr_factor(step: int, cfg: TrainConfig, progress: float) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * max(0.0, progress)))


def _checkpoint(path: Path, model, opt, sched, state: dict, seconds: float) -> None:
    from peft import get_peft_model_state_dict

    state["seconds"] = round(seconds, 1)
    tmp = path.with_suffix(".tmp")
    torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "state": state}, tmp)
    tmp.replace(path)
