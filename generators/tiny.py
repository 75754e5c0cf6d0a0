"""Tiny, randomly initialised models and a byte-level tokenizer, built from configs (no download).

They make tests and load benchmarks fast while going through exactly the same code paths as the
real models: same architectures (Llama, Qwen2), same chat template, same special tokens.
Weights are seeded, so a tiny model is the same in every process (a worker subprocess and the
test that checks its output agree).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

# Same special tokens and ids as SmolLM2's first entries, plus a mask token for diffusion.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_VOCAB = 320  # 4 special + 256 bytes, padded to a multiple of 64
TINY_FAMILIES = ("tiny-llama", "tiny-qwen2")
TINY_WITH_DEFAULT_TOKENIZER = "tiny-llama-smollm2-vocab"
"""A tiny random Llama with the default model's tokenizer (49,152 tokens): fast like the tiny models,
while anything sized by the vocabulary (constraint indexes, masks, the LM head) is real size."""


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: every UTF-8 byte is one token, so any text round-trips."""
    byte_chars = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(byte_chars):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        mask_token="<|mask|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(family: str = "tiny-llama", *, seed: int = 0, layers: int = 2, hidden: int = 64,
               heads: int = 4, kv_heads: int = 2, dtype: torch.dtype = torch.float32,
               vocab_size: int = TINY_VOCAB) -> torch.nn.Module:
    """A small random causal LM of the given architecture family."""
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    if family == "tiny-llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif family == "tiny-qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
    else:
        raise ValueError(f"unknown tiny model family {family!r}; expected one of {TINY_FAMILIES}")
    # Larger-than-default init makes the random model's distributions peaky enough that greedy
    # decoding is not dominated by near-ties (which would make parity tests flaky).
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    return model.to(dtype).eval()
