"""The refiner's forward (module and packed) against the model's own HF forward, and the cache."""

from __future__ import annotations

import pytest
import torch

from generators.decoding.block_cache import BlockKVCache, SubBlockCache
from generators.decoding.layers import ModelShape
from generators.decoding.model import ModuleBlockModel, PackedBlockModel
from tests.diffusion_helpers import PROMPTS, model, with_random_lora
from generators.prompts import left_pad


def fresh_cache(bm, ids, kv_start):
    s = bm.shape
    return BlockKVCache(s.n_layers, ids.shape[0], s.kv_heads, s.head_dim, ids.shape[1] + 16, kv_start, torch.float64,
                        torch.device("cpu"))


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("impl", [ModuleBlockModel, PackedBlockModel])
def test_causal_prefill_matches_hf_forward(arch, impl):
    m = model(arch)
    ids, mask = left_pad(PROMPTS, 0)
    kv_start = (ids.shape[1] - mask.sum(1)).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    hf = m(input_ids=ids, attention_mask=mask, position_ids=positions).logits  # (R, T, V)
    bm = impl(m)
    cache = fresh_cache(bm, ids, kv_start)
    hidden = bm.forward(ids, positions, cache, n_causal=ids.shape[1], commit=True)
    ours = bm.logits(hidden)
    real = mask.bool()
    torch.testing.assert_close(ours[real], hf[real], rtol=1e-9, atol=1e-9)
    assert cache.length == ids.shape[1]


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
def test_packed_equals_module_on_draft_and_sub_block_forwards(arch):
    m = model(arch)
    ids, mask = left_pad(PROMPTS, 0)
    kv_start = (ids.shape[1] - mask.sum(1)).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    block = torch.randint(4, 300, (3, 4))
    block_pos = positions[:, -1:] + torch.arange(1, 5)
    outs = []
    for impl in (ModuleBlockModel, PackedBlockModel):
        bm = impl(m)
        cache, sub = fresh_cache(bm, ids, kv_start), SubBlockCache(bm.shape.n_layers)
        bm.forward(ids, positions, cache, n_causal=ids.shape[1], commit=True)
        full = bm.forward(block, block_pos, cache, n_causal=0, commit=False, sub_cache=sub, store_sub_cache=True)
        window = bm.forward(block[:, 2:], block_pos[:, 2:], cache, n_causal=0, commit=False, q_offset=2, sub_cache=sub)
        outs.append((full, window))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-9, atol=1e-9)
    # Nothing changed in the block, so a window forward over the sub-block cache is exact.
    torch.testing.assert_close(outs[0][1], outs[0][0][:, 2:], rtol=1e-9, atol=1e-9)


def test_committing_a_block_equals_computing_it_from_scratch():
    """Committed K/V are exact: prompt + block committed in two forwards == one causal forward."""
    m = model("tiny-llama")
    ids, mask = left_pad(PROMPTS, 0)
    kv_start = (ids.shape[1] - mask.sum(1)).long()
    extra = torch.randint(4, 300, (3, 4))
    all_ids = torch.cat([ids, extra], dim=1)
    pos = (torch.cat([mask, torch.ones_like(extra)], 1).cumsum(-1) - 1).clamp(min=0)
    bm = ModuleBlockModel(m)
    one = fresh_cache(bm, all_ids, kv_start)
    h_one = bm.forward(all_ids, pos, one, n_causal=all_ids.shape[1], commit=True)
    two = fresh_cache(bm, all_ids, kv_start)
    bm.forward(ids, pos[:, :ids.shape[1]], two, n_causal=ids.shape[1], commit=True)
    h_two = bm.forward(extra, pos[:, ids.shape[1]:], two, n_causal=4, commit=True)
    torch.testing.assert_close(h_two, h_one[:, ids.shape[1]:], rtol=1e-9, atol=1e-9)
    for layer in range(bm.shape.n_layers):
        torch.testing.assert_close(two.k[layer][:, :, :two.length], one.k[layer][:, :, :one.length])


def test_cache_overflow_and_row_selection():
    shape = ModelShape(n_layers=1, q_heads=2, kv_heads=1, head_dim=4, vocab_size=10)
    cache = BlockKVCache(1, 3, 1, 4, 5, torch.tensor([0, 1, 2]), torch.float32, torch.device("cpu"))
    cache.write(0, torch.ones(3, 1, 5, 4), torch.ones(3, 1, 5, 4))
    cache.advance(5)
    with pytest.raises(RuntimeError, match="KV cache overflow"):
        cache.write(0, torch.ones(3, 1, 1, 4), torch.ones(3, 1, 1, 4))
    cache.select_rows(torch.tensor([2]))
    assert cache.k[0].shape[0] == 1 and cache.kv_start.tolist() == [2] and shape.kv_heads == 1


def test_packing_refuses_unmerged_lora():
    from peft import LoraConfig, get_peft_model

    m = model("tiny-llama", torch.float32)
    import copy

    peft_model = get_peft_model(copy.deepcopy(m), LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="merge LoRA adapters"):
        PackedBlockModel(peft_model)
    merged = PackedBlockModel(peft_model.merge_and_unload())
    assert merged.shape.n_layers == 2


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
def test_packed_lora_factors_match_merged_weights_and_the_live_adapter(arch):
    import copy

    from generators.adapter_io import lora_factors_of

    base, peft_model = with_random_lora(arch, torch.float32)
    factors = lora_factors_of(peft_model)
    assert len(factors) == base.config.num_hidden_layers and len(factors[0]) == 7
    merged = copy.deepcopy(peft_model).merge_and_unload()
    packed = PackedBlockModel(base, lora=factors)
    ids = torch.randint(5, 200, (2, 9))
    pos = torch.arange(9)[None].expand(2, 9)

    def run(bm, **kw):
        cache = BlockKVCache(bm.shape.n_layers, 2, bm.shape.kv_heads, bm.shape.head_dim, 16, torch.zeros(2, dtype=torch.long),
                             torch.float32, torch.device("cpu"))
        return bm.forward(ids, pos, cache, n_causal=5, commit=False, **kw)

    every = run(packed)  # factors on every token == merged weights
    torch.testing.assert_close(every, run(PackedBlockModel(merged)), atol=1e-4, rtol=1e-4)
    # draft tokens only: packed == the live peft adapter with its deltas masked on the clean tokens
    drafts_only = run(packed, adapt_clean=False)
    torch.testing.assert_close(drafts_only, run(ModuleBlockModel(peft_model), adapt_clean=False), atol=1e-4, rtol=1e-4)
    # and the clean tokens are then exactly the base model's (causal: nothing later changes them)
    torch.testing.assert_close(drafts_only[:, :5], run(PackedBlockModel(base))[:, :5], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(every[:, :5], drafts_only[:, :5], atol=1e-3)


def test_lora_factors_that_do_not_fit_are_named():
    from generators.adapter_io import lora_factors_of

    base, peft_model = with_random_lora("tiny-llama", torch.float32)
    factors = lora_factors_of(peft_model)
    a, b, s = factors[0]["q_proj"]
    factors[0]["q_proj"] = (a[:, :-1], b, s)
    with pytest.raises(ValueError, match="LoRA factors of q_proj do not fit"):
        PackedBlockModel(base, lora=factors)
    with pytest.raises(ValueError, match="name layer 7"):
        PackedBlockModel(base, lora={7: factors[1]})
