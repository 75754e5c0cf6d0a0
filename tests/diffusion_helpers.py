"""Shared setup for the diffusion decoder tests: tiny float64 models and a decode wrapper."""

from __future__ import annotations

import functools

import torch

from generators.decoding.families import get_family
from generators.decoding.block_decoder import generate_diffusion
from generators.decoding.proposals import DecodeConfig
from generators.decoding.reference_block import generate_reference
from generators.decoding.commit_rules import CommitRule
from generators.prompts import chat_ids
from generators.tiny import tiny_model, tiny_tokenizer

TOK = tiny_tokenizer()
MASK = TOK.convert_tokens_to_ids("<|mask|>")
PROMPTS = [chat_ids(TOK, "Hello"), chat_ids(TOK, "A longer prompt here, with more words in it"), chat_ids(TOK, "mid size")]


@functools.lru_cache(maxsize=None)
def model(arch: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    # float64 keeps cached and uncached arithmetic equal far below any argmax gap.
    return tiny_model(arch, dtype=dtype)


def decode(m, prompts=PROMPTS, *, family="tiny-shifted", reference=False, strategy=CommitRule("threshold", threshold=0.05),
           eos=(-1,), **config):
    cfg = DecodeConfig(**{"block_size": 4, "max_new_tokens": 13, "sub_block_cache": False, **config})
    fn = generate_reference if reference else generate_diffusion
    return fn(m, prompts, family=get_family(family), mask_token_id=MASK, eos_token_ids=list(eos), pad_token_id=0,
              config=cfg, strategy=strategy)


def with_random_lora(arch: str = "tiny-llama", dtype: torch.dtype = torch.float64, seed: int = 0):
    """A tiny model and a peft copy of it with random, non-zero LoRA factors on every projection
    (a fresh LoRA's B factors are zero, which would hide any mistake in applying them)."""
    import copy

    from peft import LoraConfig, get_peft_model

    m = model(arch, dtype)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(copy.deepcopy(m), LoraConfig(r=4, lora_alpha=8, target_modules=targets)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return m, peft_model
