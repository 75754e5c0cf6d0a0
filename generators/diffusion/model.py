"""The small model protocol the decoders run on, and its two implementations.

    BlockModel.forward(ids, positions, cache, n_causal=, commit=, q_offset=, sub_cache=, store_sub_cache=,
                       adapt_clean=) -> final hidden states (R, Tq, Dm)
    BlockModel.logits(hidden) -> (..., V) logits, at least float32

ModuleBlockModel   calls the HF model's own modules (so a live peft LoRA adapter applies): the
                   reference, and what training-time evaluation uses.
PackedBlockModel   the CPU fast path: the same math on weights packed once (q/k/v fused, gate/up
                   fused, every matrix stored transposed and contiguous). On this project's CPUs,
                   torch's `linear` on (out, in) weights falls off a fast path once a forward has
                   more than ~2 tokens (a 16-token 576x1536 product took 1.0 ms against 0.26 ms
                   with the weight pre-transposed), which is exactly the refiner's regime.
                   A LoRA adapter is either merged into the weights before packing, or packed
                   beside them as low-rank factors (fused like the weights they adapt).

adapt_clean=False applies a LoRA adapter to the draft tokens only (those after the n_causal clean
ones): the clean tokens, their K/V and their logits are then the base model's own. The
draft-and-verify decoder uses this so that what it verifies against is the planner's AR model.

tests/test_diffusion_model.py checks the two against each other and against the HF forward.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch

from generators.adapter_io import LoraFactors
from generators.diffusion.cache import BlockKVCache, SubBlockCache
from generators.diffusion.forward import ModelShape, apply_rope, block_forward, causal_lm, lm_logits


class BlockModel(Protocol):
    shape: ModelShape

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, cache: BlockKVCache, *, n_causal: int,
                commit: bool, q_offset: int = 0, sub_cache: SubBlockCache | None = None,
                store_sub_cache: bool = False, adapt_clean: bool = True) -> torch.Tensor: ...

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


LowRank = tuple[torch.Tensor, torch.Tensor]  # (A_t (in, r), B_t (r, out)), the scale folded into B_t


def _fused_lora(factors: dict, names: Sequence[str], in_dim: int, outs: Sequence[int],
                like: torch.Tensor) -> LowRank | None:
    """One low-rank pair for projections packed side by side (q|k|v, gate|up): the A's stacked, B
    block-diagonal, so x @ A_t @ B_t is every projection's delta in its own output columns."""
    present = [factors.get(n) for n in names]
    if all(f is None for f in present):
        return None
    for name, f, o in zip(names, present, outs):
        if f is not None and (f[0].shape[1] != in_dim or f[1].shape[0] != o or f[0].shape[0] != f[1].shape[1]):
            raise ValueError(f"LoRA factors of {name} do not fit this model: A {tuple(f[0].shape)}, B "
                             f"{tuple(f[1].shape)} for a {in_dim} -> {o} projection")
    rank = sum(f[0].shape[0] for f in present if f is not None)
    a_t = torch.cat([f[0].t() for f in present if f is not None], dim=1).to(like).contiguous()  # (in, sum r)
    b_t = torch.zeros((rank, sum(outs)), dtype=like.dtype, device=like.device)  # (sum r, sum out)
    r0, c0 = 0, 0
    for f, o in zip(present, outs):
        if f is not None:
            a, b, scale = f
            b_t[r0:r0 + a.shape[0], c0:c0 + o] = (b.t() * scale).to(like)
            r0 += a.shape[0]
        c0 += o
    return a_t, b_t


def _linear(x: torch.Tensor, w_t: torch.Tensor, lora: LowRank | None, lo: int) -> torch.Tensor:
    """x (R, T, in) @ w_t, plus the LoRA delta for tokens [lo:] (lo = 0: every token)."""
    y = x @ w_t
    if lora is None or lo >= x.shape[1]:
        return y
    delta = (x[:, lo:] @ lora[0]) @ lora[1]
    if lo == 0:
        return y + delta
    return torch.cat([y[:, :lo], y[:, lo:] + delta], dim=1)


class _PackedLayer:
    def __init__(self, layer, shape: ModelShape, lora: dict | None = None):
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
        lora, like = lora or {}, self.qkv_t
        inter = mlp.gate_proj.weight.shape[0]
        self.qkv_lora = _fused_lora(lora, ("q_proj", "k_proj", "v_proj"), self.qkv_t.shape[0], self.split, like)
        self.o_lora = _fused_lora(lora, ("o_proj",), self.o_t.shape[0], (self.o_t.shape[1],), like)
        self.gate_up_lora = _fused_lora(lora, ("gate_proj", "up_proj"), self.gate_up_t.shape[0], (inter, inter), like)
        self.down_lora = _fused_lora(lora, ("down_proj",), self.down_t.shape[0], (self.down_t.shape[1],), like)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As HF's Llama/Qwen2 RMSNorm: statistics in float32, scale in the input dtype.
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


class PackedBlockModel:
    """Llama-layout weights packed for fast small-batch CPU inference (see module docstring)."""

    def __init__(self, model: torch.nn.Module, lora: LoraFactors | None = None):
        """model: plain weights (a peft wrapper must be merged first, or its factors passed as `lora`).
        lora: low-rank factors kept beside the weights (adapter_io.lora_factors), so a forward can
        apply them to every token (adapt_clean=True: the same as merged weights) or to the draft
        tokens only (the clean tokens then run on the base weights)."""
        lm = causal_lm(model)
        if any("lora" in name for name, _ in lm.named_modules()):
            raise ValueError("merge LoRA adapters into the weights (merge_and_unload) before packing, or pass "
                             "their factors as `lora`")
        if lm.config.hidden_act != "silu":
            raise ValueError(f"packed forward supports SiLU MLPs, not {lm.config.hidden_act!r}")
        self.shape = ModelShape.of(model)
        core = lm.model
        self.embed = core.embed_tokens.weight.detach()  # (V, Dm)
        self.rotary = core.rotary_emb
        lora = lora or {}
        if lora and max(lora) >= len(core.layers):
            raise ValueError(f"LoRA factors name layer {max(lora)}; the model has {len(core.layers)}")
        self.layers = [_PackedLayer(layer, self.shape, lora.get(i)) for i, layer in enumerate(core.layers)]
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
                sub_cache: SubBlockCache | None = None, store_sub_cache: bool = False,
                adapt_clean: bool = True) -> torch.Tensor:
        s = self.shape
        r, tq = ids.shape
        lo = 0 if adapt_clean else n_causal  # first token the LoRA factors apply to
        h = self.embed[ids]  # (R, Tq, Dm)
        cos, sin = self.rotary(h, positions)  # (R, Tq, D)
        splice = sub_cache is not None and not store_sub_cache
        for i, L in enumerate(self.layers):
            x = _rms_norm(h, *L.ln1)
            qkv = _linear(x, L.qkv_t, L.qkv_lora, lo)  # (R, Tq, (Hq+2Hkv)D)
            if L.qkv_bias is not None:
                qkv = qkv + L.qkv_bias
            q, k, v = qkv.split(L.split, dim=-1)
            q = q.view(r, tq, s.q_heads, s.head_dim).transpose(1, 2)  # (R, Hq, Tq, D)
            k = k.view(r, tq, s.kv_heads, s.head_dim).transpose(1, 2)  # (R, Hkv, Tq, D)
            v = v.view(r, tq, s.kv_heads, s.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            k_new, v_new = sub_cache.splice(i, k, v, q_offset) if splice else (k, v)
            out = cache.attend(i, q, k_new, v_new, n_causal=n_causal, q_offset=q_offset, scale=L.scale)  # (R, Hq, Tq, D)
            if commit and n_causal:
                cache.write(i, k[:, :, :n_causal], v[:, :, :n_causal])
            if store_sub_cache and sub_cache is not None:
                sub_cache.store(i, k[:, :, n_causal:], v[:, :, n_causal:])
            attn_out = _linear(out.transpose(1, 2).reshape(r, tq, s.q_heads * s.head_dim), L.o_t, L.o_lora, lo)
            h = h + (attn_out + L.o_bias if L.o_bias is not None else attn_out)  # (R, Tq, Dm)
            gate, up = _linear(_rms_norm(h, *L.ln2), L.gate_up_t, L.gate_up_lora, lo).chunk(2, dim=-1)  # (R, Tq, I)
            h = h + _linear(torch.nn.functional.silu(gate) * up, L.down_t, L.down_lora, lo)
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
