"""Chat-template encoding and left padding (token ids in, token ids out)."""

from __future__ import annotations

import torch


def chat_ids(tokenizer, user: str, system: str | None = None, assistant_prefix: str = "") -> list[int]:
    """Token ids of a one-turn chat ready for the assistant's reply (optionally already begun)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text + assistant_prefix, add_special_tokens=False)["input_ids"]
    return list(ids)


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """rows of different lengths -> ids (R, T), attention_mask (R, T) with padding on the left."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("every prompt needs at least one token")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)
