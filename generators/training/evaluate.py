"""Evaluation of an adapter during and after training, on held-out data only.

- heldout_loss: masked-token loss/accuracy of the diffusion objective, with a fixed noise seed
  (comparable across steps);
- decode_eval: the real cached decoder on held-out prompts at a threshold: tokens per forward,
  and agreement with the base model's own greedy reply (position by position); and the same for
  draft-and-verify (the pipeline's default decoder), whose agreement must be 1.0 by construction.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from generators.decoding.families import DiffusionFamily
from generators.decoding.block_decoder import generate_diffusion
from generators.decoding.model import ModuleBlockModel
from generators.decoding.proposals import DecodeConfig
from generators.decoding.commit_rules import CommitRule
from generators.decoding.verify import generate_verified
from generators.training.batches import build_batch


@torch.no_grad()
def heldout_loss(model, rows: list[dict], *, block: int, mask_id: int, eos_id: int, pad_id: int,
                 max_response_tokens: int, batch_size: int = 8, autocast_dtype=None,
                 draft_only_lora: bool = False) -> dict:
    from generators.training.train import batch_losses

    was_training = model.training
    model.eval()
    rng = random.Random(1234)
    totals = {"diff_loss": 0.0, "diff_acc": 0.0, "ar_loss": 0.0, "ar_acc": 0.0, "n": 0}
    for start in range(0, len(rows), batch_size):
        batch = build_batch(rows[start:start + batch_size], block=block, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id,
                            max_response_tokens=max_response_tokens, rng=rng)
        if batch is None:
            continue
        out = batch_losses(model, batch, autocast_dtype=autocast_dtype, draft_only_lora=draft_only_lora)
        for k in ("diff_loss", "diff_acc", "ar_loss", "ar_acc"):
            totals[k] += out[k]
        totals["n"] += 1
    if was_training:
        model.train()
    n = max(1, totals.pop("n"))
    return {k: round(v / n, 4) for k, v in totals.items()}


@torch.no_grad()
def decode_eval(model, rows: list[dict], *, family: DiffusionFamily, mask_id: int, eos_ids, pad_id: int,
                block: int, threshold: float, max_new_tokens: int, n_prompts: int = 16, batch: int = 8,
                verify_drafts: int = 2, verify: bool = True) -> dict:
    """Decode held-out prompts with the adapter; compare with the base model's greedy replies.

    verify=False skips the draft-and-verify decode, which does not depend on the threshold (a
    threshold sweep needs it once, not at every point)."""
    was_training = model.training
    model.eval()
    bm = ModuleBlockModel(model)
    rows = [r for r in rows if r["source"].startswith("self")][:n_prompts]
    config = DecodeConfig(block_size=block, max_new_tokens=max_new_tokens)
    common = dict(family=family, mask_token_id=mask_id, eos_token_ids=eos_ids, pad_token_id=pad_id, config=config)

    def score(decode) -> tuple[float, float, int]:
        tokens = forwards = agree = compared = 0
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            for r, res in zip(chunk, decode([r["prompt"] for r in chunk])):
                ref = r["response"][:max_new_tokens]
                tokens += res.generated_tokens
                forwards += res.forward_passes
                agree += sum(a == b for a, b in zip(res.token_ids, ref))
                compared += max(len(ref), res.generated_tokens)
        return round(tokens / max(1, forwards), 4), round(agree / max(1, compared), 4), tokens

    tpf, agreement, tokens = score(lambda p: generate_diffusion(bm, p, strategy=CommitRule("threshold", threshold=threshold),
                                                                **common))
    out = {"threshold": threshold, "tokens_per_forward": tpf, "agreement_with_ar": agreement, "tokens": tokens}
    if verify:
        v_tpf, v_agreement, _ = score(lambda p: generate_verified(bm, p, drafts=verify_drafts, **common))
        out.update(verify_drafts=verify_drafts, verify_tokens_per_forward=v_tpf, verify_agreement_with_ar=v_agreement)
    if was_training:
        model.train()
    return out


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    if labels.numel() == 0:
        return logits.sum() * 0.0, 0.0
    loss = F.cross_entropy(logits.float(), labels)
    acc = (logits.argmax(-1) == labels).float().mean().item()
    return loss, acc
