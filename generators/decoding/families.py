"""The adapter table: per-family settings the decoder needs, in one place.

A family says
- which token marks a masked position (`mask_token`, resolved through the tokenizer, or a fixed id);
- whether logits are shifted (`shift`): position i's logits predict token i+1, as in AR models and
  the diffusion models adapted from them (Fast-dLLM v2, Dream), or position i predicts token i
  (LLaDA-style models trained from scratch as masked diffusion);
- how the block-causal attention and the cache reach the model (`layout`): every family here runs
  through `generators.decoding.layers.block_forward`, which drives the model's own Llama-layout
  modules (embed, q/k/v/o projections, MLP, norms, rotary embedding) and owns the attention, so the
  block mask and the KV cache never depend on the model's remote code.

With `shift`, a block's first token is predicted by the last committed token's logits, which the
forward that commits the previous block produces anyway; the decoder commits it right away (it is
the AR model's own next token), so no forward is spent on it alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiffusionFamily:
    name: str
    shift: bool
    mask_token: str | None = None
    """Token string looked up in the tokenizer (preferred: robust to vocab changes)."""
    mask_token_id: int | None = None
    """Fixed id, for checkpoints whose mask token has no string form in the tokenizer."""
    layout: str = "llama"
    notes: str = ""

    def resolve_mask_id(self, tokenizer) -> int:
        if self.mask_token_id is not None:
            return self.mask_token_id
        ids = tokenizer.convert_tokens_to_ids([self.mask_token])
        unk = getattr(tokenizer, "unk_token_id", None)
        if not ids or ids[0] is None or (ids[0] == unk and self.mask_token != getattr(tokenizer, "unk_token", None)):
            raise ValueError(f"family {self.name!r}: mask token {self.mask_token!r} is not in the tokenizer's vocabulary")
        return int(ids[0])


FAMILIES: dict[str, DiffusionFamily] = {
    f.name: f
    for f in (
        DiffusionFamily(
            "smollm2-block-lora", shift=True, mask_token="<empty_output>",
            notes="default: SmolLM2 base + hybridgen's block-diffusion LoRA; <empty_output> (id 16) is a "
                  "reserved special token the chat model never emits, reused as the mask",
        ),
        DiffusionFamily(
            "fast-dllm-v2", shift=True, mask_token_id=151665, layout="qwen2",
            notes="Efficient-Large-Model/Fast_dLLM_v2_*B (Qwen2.5 base, block size 32)",
        ),
        DiffusionFamily(
            "dream", shift=True, mask_token="<|mask|>", layout="qwen2",
            notes="Dream-org/Dream-v0-*-7B (Qwen2.5 base); mask id 151666",
        ),
        DiffusionFamily(
            "llada", shift=False, mask_token_id=126336,
            notes="GSAI-ML/LLaDA-8B-*: bidirectional masked diffusion; weights must be in Llama layout",
        ),
        # Test families: the tiny byte-level tokenizer's <|mask|> (id 3).
        DiffusionFamily("tiny-shifted", shift=True, mask_token="<|mask|>", notes="tests: AR-style tiny model"),
        DiffusionFamily("tiny-unshifted", shift=False, mask_token="<|mask|>", notes="tests: LLaDA-style tiny model"),
    )
}


def get_family(name: str) -> DiffusionFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown diffusion family {name!r}; expected one of {sorted(FAMILIES)}") from None
