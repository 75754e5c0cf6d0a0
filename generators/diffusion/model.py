"""The small model protocol the decoders run on, and its two implementations.

    BlockModel.forward(ids, positions, cache, n_causal=, commit=, q_offset=, sub_cache=, store_sub_cache=)
        -> final hidden states (R, Tq, Dm)
    BlockModel.logits(hidden) -> (..., V) logits, at least float32

ModuleBlockModel   calls the HF model's own modules (so a live peft LoRA adapter applies): the
                   reference, and what training-time evaluation uses.
PackedBlockModel   the CPU fast path: the same math on weights packed once (q/k/v fused, gate/up
                   fused, every matrix stored transposed and contiguous). On this project's CPUs,
                   torch's `linear` on (out, in) weights falls off a fast path once a forward has
                   more than ~2 tokens (a 16-token 576x1536 product took 1.0 ms against 0.26 ms
                   with the weight pre-transposed), which is exactly the refiner's regime.
                   LoRA adapters must be merged into the weights before packing.

tests/test_diffusion_model.py checks the two against each other and against the HF forward.
"""

from __future__ import annotations

from typing import Protocol

import torch

from generators.diffusion.cache import BlockKVCache, SubBlockCache
from generators.diffusion.forward import ModelShape, apply_rope, block_forward, causal_lm, lm_logits
from kernels import registry


class BlockModel(Protocol):
    shape: ModelShape

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, cache: BlockKVCache, *, n_causal: int,
                commit: bool, q_offset: int = 0, sub_cache: SubBlockCache | None = None,
                store_sub_cache: bool = False) -> torch.Tensor: ...

    def logits(self, hidden: torch.Tensor) -> torch.Tensor: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...


class ModuleBlockModel:
    """The HF model's own modules, driven by `block_forward`."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.shape = ModelShape.of(model)

    def forward(self, ids, positions, cache, **kw) -> torch.Tensor:
        return block_forward(self.model, ids, positions, cache, **kw)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return lm_logits(self.model, hidden)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


class _PackedLayer:
    def __init__(self, layer, shape: ModelShape):
        attn, mlp = layer.self_attn, layer.mlp

        def t(w: torch.Tensor) -> torch.Tensor:
            return w.detach().t().contiguous()

        self.qkv_t = t(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight], dim=0))  # (Dm, (Hq+2Hkv)D)
        biases = [getattr(attn, n).bias for n in ("q_proj", "k_proj", "v_proj")]
        self.qkv_bias = torch.cat([b.detach() for b in biases]) if biases[0] is not None else None
        self.o_t = t(attn.o_proj.weight)  # (Hq*D, Dm)
        self.o_bias = attn.o_proj.bias.detach() if attn.o_proj.bias is not None else None
        self.gate_up_t = t(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0))  # (Dm, 2I)
        self.down_t = t(mlp.down_proj.weight)  # (I, Dm)
        self.ln1 = (layer.input_layernorm.weight.detach(), layer.input_layernorm.variance_epsilon)
        self.ln2 = (layer.post_attention_layernorm.weight.detach(), layer.post_attention_layernorm.variance_epsilon)
        self.scale = attn.scaling
        self.split = (shape.q_heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.kv_heads * shape.head_dim)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As HF's Llama/Qwen2 RMSNorm: statistics in float32, scale in the input dtype.
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


class PackedBlockModel:
    """Llama-layout weights packed for fast small-batch CPU inference (see module docstring)."""

    def __init__(self, model: torch.nn.Module):
        lm = causal_lm(model)
        if any("lora" in name for name, _ in lm.named_modules()):
            raise ValueError("merge LoRA adapters into the weights (merge_and_unload) before packing")
        if lm.config.hidden_act != "silu":
            raise ValueError(f"packed forward supports SiLU MLPs, not {lm.config.hidden_act!r}")
        self.shape = ModelShape.of(model)
        core = lm.model
        self.embed = core.embed_tokens.weight.detach()  # (V, Dm)
        self.rotary = core.rotary_emb
        self.layers = [_PackedLayer(layer, self.shape) for layer in core.layers]
        self.norm = (core.norm.weight.detach(), core.norm.variance_epsilon)
        self.lm_head_t = lm.lm_head.weight.detach().t().contiguous()  # (Dm, V)

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.dtype

    @property
    def device(self) -> torch.device:
        return self.embed.device

    @torch.inference_mode()
    def forward(self, ids, positions, cache, *, n_causal: int, commit: bool, q_offset: int = 0,
                sub_cache: SubBlockCache | None = None, store_sub_cache: bool = False) -> torch.Tensor:
        s = self.shape
        r, tq = ids.shape
        h = self.embed[ids]  # (R, Tq, Dm)
        cos, sin = self.rotary(h, positions)  # (R, Tq, D)
        splice = sub_cache is not None and not store_sub_cache
        for i, L in enumerate(self.layers):
            x = _rms_norm(h, *L.ln1)
            qkv = x @ L.qkv_t  # (R, Tq, (Hq+2Hkv)D)
            if L.qkv_bias is not None:
                qkv = qkv + L.qkv_bias
            q, k, v = qkv.split(L.split, dim=-1)
            q = q.view(r, tq, s.q_heads, s.head_dim).transpose(1, 2)  # (R, Hq, Tq, D)
            k = k.view(r, tq, s.kv_heads, s.head_dim).transpose(1, 2)  # (R, Hkv, Tq, D)
            v = v.view(r, tq, s.kv_heads, s.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            k_new, v_new = sub_cache.splice(i, k, v, q_offset) if splice else (k, v)
            out = registry.block_attention(
                q, cache.k[i], cache.v[i], k_new, v_new, cache.kv_start,
                cache_len=cache.length, n_causal=n_causal, q_offset=q_offset, scale=L.scale,
            )  # (R, Hq, Tq, D)
            if commit and n_causal:
                cache.write(i, k[:, :, :n_causal], v[:, :, :n_causal])
            if store_sub_cache and sub_cache is not None:
                sub_cache.store(i, k[:, :, n_causal:], v[:, :, n_causal:])
            attn_out = out.transpose(1, 2).reshape(r, tq, s.q_heads * s.head_dim) @ L.o_t  # (R, Tq, Dm)
            h = h + (attn_out + L.o_bias if L.o_bias is not None else attn_out)
            gate, up = (_rms_norm(h, *L.ln2) @ L.gate_up_t).chunk(2, dim=-1)  # (R, Tq, I) each
            h = h + (torch.nn.functional.silu(gate) * up) @ L.down_t
        if commit and n_causal:
            cache.advance(n_causal)
        return _rms_norm(h, *self.norm)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden @ self.lm_head_t
        return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def as_block_model(model) -> BlockModel:
    """Accept an HF model (wrapped as ModuleBlockModel) or anything already speaking the protocol."""
    if isinstance(model, torch.nn.Module):
        return ModuleBlockModel(model)
    return model
    return ModuleBlockModel(model)
