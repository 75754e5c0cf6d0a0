"""The small model protocol the decoders run on, and its two implementations.

    BlockModel.forward(ids, positions, cache, n_causal=, commit=, q_offset=, sub_cache=, store_sub_cache=,
                       adapt_clean=) -> final hidden states (R, Tq, Dm)
    BlockModel.logits(hidden) -> (..., V) logits, at least float32

ModuleBlockModel   calls the HF model's own modules (so a live peft LoRA adapter applies): the
                   reference, and what training-time evaluation uses.
PackedBlockModel   the fast path: the same math on weights prepared once (q/k/v fused, gate/up
                   fused, each matrix a `PreparedLinear`: oneDNN-prepacked in bf16 on CPU,
                   transposed and contiguous in fp32 on CPU; see decoding/linear.py for the
                   measurements), the refiner's and the engine's regime of a few tokens per row.
                   A LoRA adapter is either merged into the weights before packing, or packed
                   beside them as low-rank factors (fused like the weights they adapt).

adapt_clean=False applies a LoRA adapter to the draft tokens only (those after the n_causal clean
ones): the clean tokens, their K/V and their logits are then the base model's own. The
draft-and-verify decoder uses this so that what it verifies against is the planner's AR model.

tests/test_diffusion_model.py checks the two against each other and against the HF forward.
"""

from __future__ import annotations

import copy
from typing import Protocol, Sequence

import torch

from generators.adapter_io import LoraFactors
from generators.decoding.linear import PreparedLinear
from generators.decoding.block_cache import BlockKVCache, SubBlockCache
from generators.decoding.layers import ModelShape, block_forward, causal_lm, lm_logits, run_layers


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


def _linear(x: torch.Tensor, w: PreparedLinear, lora: LowRank | None, lo: int) -> torch.Tensor:
    """w(x) for x (R, T, in), plus the LoRA delta for tokens [lo:] (lo = 0: every token)."""
    y = w(x)
    if lora is None or lo >= x.shape[1]:
        return y
    delta = (x[:, lo:] @ lora[0]) @ lora[1]
    if lo == 0:
        return y + delta
    return torch.cat([y[:, :lo], y[:, lo:] + delta], dim=1)


class _PackedLayer:
    def __init__(self, layer, shape: ModelShape):
        attn, mlp = layer.self_attn, layer.mlp
        biases = [getattr(attn, n).bias for n in ("q_proj", "k_proj", "v_proj")]
        qkv_bias = torch.cat([b.detach() for b in biases]) if biases[0] is not None else None
        self.qkv_w = PreparedLinear(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight], dim=0),
                                  qkv_bias)  # Dm -> (Hq+2Hkv)D
        self.o = PreparedLinear(attn.o_proj.weight, attn.o_proj.bias)  # Hq*D -> Dm
        self.gate_up = PreparedLinear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0))  # Dm -> 2I
        self.down = PreparedLinear(mlp.down_proj.weight)  # I -> Dm
        self.ln1 = (layer.input_layernorm.weight.detach(), layer.input_layernorm.variance_epsilon)
        self.ln2 = (layer.post_attention_layernorm.weight.detach(), layer.post_attention_layernorm.variance_epsilon)
        self.scale = attn.scaling
        self.split = (shape.q_heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.kv_heads * shape.head_dim)
        self.inter = mlp.gate_proj.weight.shape[0]
        self.like = attn.q_proj.weight.detach()  # dtype and device the factors are cast to
        self.qkv_lora = self.o_lora = self.gate_up_lora = self.down_lora = None

    # the layer loop's protocol (forward.run_layers); lo: first token the LoRA factors act on
    def norm1(self, h: torch.Tensor) -> torch.Tensor:
        return _rms_norm(h, *self.ln1)

    def qkv(self, x: torch.Tensor, lo: int) -> tuple[torch.Tensor, ...]:
        return _linear(x, self.qkv_w, self.qkv_lora, lo).split(self.split, dim=-1)  # (R, Tq, (Hq+2Hkv)D) split

    def out(self, o: torch.Tensor, lo: int) -> torch.Tensor:
        return _linear(o, self.o, self.o_lora, lo)

    def norm2(self, h: torch.Tensor) -> torch.Tensor:
        return _rms_norm(h, *self.ln2)

    def mlp(self, x: torch.Tensor, lo: int) -> torch.Tensor:
        gate, up = _linear(x, self.gate_up, self.gate_up_lora, lo).chunk(2, dim=-1)  # (R, Tq, I) each
        return _linear(torch.nn.functional.silu(gate) * up, self.down, self.down_lora, lo)

    def with_lora(self, lora: dict | None) -> "_PackedLayer":
        """This layer's prepared weights (shared, not copied) with low-rank factors beside them."""
        out = copy.copy(self)
        lora, like, dm = lora or {}, self.like, self.qkv_w.in_features
        out.qkv_lora = _fused_lora(lora, ("q_proj", "k_proj", "v_proj"), dm, self.split, like)
        out.o_lora = _fused_lora(lora, ("o_proj",), self.o.in_features, (self.o.out_features,), like)
        out.gate_up_lora = _fused_lora(lora, ("gate_proj", "up_proj"), dm, (self.inter, self.inter), like)
        out.down_lora = _fused_lora(lora, ("down_proj",), self.down.in_features, (self.down.out_features,), like)
        return out


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
        self.layers = [_PackedLayer(layer, self.shape) for layer in core.layers]
        if lora:
            self.layers = self._adapted_layers(lora)
        self.norm = (core.norm.weight.detach(), core.norm.variance_epsilon)
        self.lm_head = PreparedLinear(lm.lm_head.weight)  # Dm -> V

    def _adapted_layers(self, lora: LoraFactors) -> list[_PackedLayer]:
        if max(lora) >= len(self.layers):
            raise ValueError(f"LoRA factors name layer {max(lora)}; the model has {len(self.layers)}")
        return [layer.with_lora(lora.get(i)) for i, layer in enumerate(self.layers)]

    def with_lora(self, lora: LoraFactors) -> "PackedBlockModel":
        """The same prepared weights (shared, not copied) with an adapter's factors beside them: the
        planner's engine and the refiner are then one set of weights in memory."""
        out = copy.copy(self)
        out.layers = self._adapted_layers(lora)
        return out

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
        lo = 0 if adapt_clean else n_causal  # first token the LoRA factors apply to
        h = self.embed[ids]  # (R, Tq, Dm)
        cos, sin = self.rotary(h, positions)  # (R, Tq, D)
        h = run_layers(self.layers, self.shape, h, cos, sin, cache, n_causal=n_causal, commit=commit,
                       q_offset=q_offset, sub_cache=sub_cache, store_sub_cache=store_sub_cache, lo=lo)
        return _rms_norm(h, *self.norm)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)
        return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def as_block_model(model) -> BlockModel:
    """Accept an HF model (wrapped as ModuleBlockModel) or anything already speaking the protocol."""
    if isinstance(model, torch.nn.Module):
        return ModuleBlockModel(model)
    return model
