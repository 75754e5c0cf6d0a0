"""One transformer forward for the refiner, over the hierarchical cache.

Works on any Llama-layout causal LM from transformers (Llama, Qwen2, Mistral and SmolLM2 are all
this layout), with or without a peft LoRA adapter: it calls the model's own modules (so LoRA
layers apply) but owns the attention, which goes through `kernels.block_attention` so the
backend (torch reference or Triton) is chosen by the kernel registry, never here: the cache object
owns the attention pattern (`cache.attend`), so one forward serves the block decoder and the
draft-and-verify decoder alike.

`tests/test_diffusion_forward.py` checks this against the model's own HF forward.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from generators.decoding.block_cache import BlockKVCache, SubBlockCache


def causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The HF *ForCausalLM under a peft wrapper (LoRA layers stay in place and active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    q_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> "ModelShape":
        cfg = causal_lm(model).config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return cls(cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, head_dim,
                   cfg.vocab_size)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x (R, H, T, D); cos/sin (R, T, D) -> broadcast over heads
    return x * cos[:, None] + _rotate_half(x) * sin[:, None]


class ModuleLayer:
    """One HF decoder layer seen through the layer loop's protocol (its own modules: LoRA layers apply)."""

    def __init__(self, layer: torch.nn.Module):
        self.layer, self.attn = layer, layer.self_attn
        self.scale = layer.self_attn.scaling

    def norm1(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer.input_layernorm(h)

    def qkv(self, x: torch.Tensor, lo: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.attn.q_proj(x), self.attn.k_proj(x), self.attn.v_proj(x)

    def out(self, o: torch.Tensor, lo: int) -> torch.Tensor:
        return self.attn.o_proj(o)

    def norm2(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer.post_attention_layernorm(h)

    def mlp(self, x: torch.Tensor, lo: int) -> torch.Tensor:
        return self.layer.mlp(x)


def run_layers(layers, shape: ModelShape, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache, *,
               n_causal: int, commit: bool, q_offset: int = 0, sub_cache: SubBlockCache | None = None,
               store_sub_cache: bool = False, lo: int = 0) -> torch.Tensor:
    """The one layer loop, over module-backed (ModuleLayer) or packed (model._PackedLayer) layers.

    h (R, Tq, Dm) embedded tokens, cos/sin (R, Tq, D) -> hidden states (R, Tq, Dm) before the final norm.
    lo: first token a packed layer's LoRA factors act on (module-backed layers mask theirs by hooks)."""
    r, tq, _ = h.shape
    splice = sub_cache is not None and not store_sub_cache
    for i, layer in enumerate(layers):
        q, k, v = layer.qkv(layer.norm1(h), lo)  # (R, Tq, Hq*D), (R, Tq, Hkv*D) x 2
        q = q.view(r, tq, shape.q_heads, shape.head_dim).transpose(1, 2)  # (R, Hq, Tq, D)
        k = k.view(r, tq, shape.kv_heads, shape.head_dim).transpose(1, 2)  # (R, Hkv, Tq, D)
        v = v.view(r, tq, shape.kv_heads, shape.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k_new, v_new = sub_cache.splice(i, k, v, q_offset) if splice else (k, v)  # (R, Hkv, Tn, D)
        out = cache.attend(i, q, k_new, v_new, n_causal=n_causal, q_offset=q_offset, scale=layer.scale)  # (R, Hq, Tq, D)
        if commit and n_causal:
            cache.write(i, k[:, :, :n_causal], v[:, :, :n_causal])
        if store_sub_cache and sub_cache is not None:
            sub_cache.store(i, k[:, :, n_causal:], v[:, :, n_causal:])
        h = h + layer.out(out.transpose(1, 2).reshape(r, tq, shape.q_heads * shape.head_dim), lo)  # (R, Tq, Dm)
        h = h + layer.mlp(layer.norm2(h), lo)
    if commit and n_causal:
        cache.advance(n_causal)
    return h


def block_forward(
    model: torch.nn.Module,
    ids: torch.Tensor,
    positions: torch.Tensor,
    cache: BlockKVCache,
    *,
    n_causal: int,
    commit: bool,
    q_offset: int = 0,
    sub_cache: SubBlockCache | None = None,
    store_sub_cache: bool = False,
    adapt_clean: bool = True,
) -> torch.Tensor:
    """Run the tokens `ids` (R, Tq) through the model; returns final hidden states (R, Tq, Dm).

    The processed ("new") span is [clean tokens (n_causal) | draft block]. Normally `ids` is the
    whole new span (q_offset = 0). In sub-block mode `ids` is only the active sub-block, starting
    at `q_offset` inside the block, and every other block position's K/V comes from `sub_cache`.

    commit:          write the clean span's K/V into the block cache (and advance it).
    store_sub_cache: keep the draft block's K/V in `sub_cache` (a full-block forward refreshes it).
    adapt_clean:     False: a live LoRA adapter acts on the draft tokens only (the clean ones get the
                     base model's own projections).
    """
    if not adapt_clean and n_causal and any("lora_B" in name for name, _ in model.named_modules()):
        with lora_only_on(model, torch.arange(ids.shape[1], device=ids.device) >= n_causal):
            return block_forward(model, ids, positions, cache, n_causal=n_causal, commit=commit, q_offset=q_offset,
                                 sub_cache=sub_cache, store_sub_cache=store_sub_cache)
    core = causal_lm(model).model
    h = core.embed_tokens(ids)  # (R, Tq, Dm)
    cos, sin = core.rotary_emb(h, positions)  # (R, Tq, D) each
    h = run_layers([ModuleLayer(layer) for layer in core.layers], ModelShape.of(model), h, cos, sin, cache,
                   n_causal=n_causal, commit=commit, q_offset=q_offset, sub_cache=sub_cache,
                   store_sub_cache=store_sub_cache)
    return core.norm(h)


@contextmanager
def lora_only_on(model: torch.nn.Module, keep: torch.Tensor):
    """Inside: every peft LoRA delta is zero except on the tokens where `keep` is True.

    keep: (T,) or (N, T) bool over the forward's tokens. Implemented as forward hooks that scale the
    lora_B layers' outputs, so it works with autograd (training) as well as at inference."""
    handles = []

    def hook(_module, _inputs, out):
        return out * keep[..., None].to(out.dtype)  # (.., T, 1) against (N, T, out)

    for name, module in model.named_modules():
        if name.split(".")[-2:-1] == ["lora_B"] and isinstance(module, torch.nn.Linear):  # lora_B.<adapter>
            handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def lm_logits(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """(..., Dm) -> (..., V), at least float32 for stable confidences."""
    logits = causal_lm(model).lm_head(hidden)
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
