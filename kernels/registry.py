"""Pick a kernel implementation per device: Triton on CUDA, the torch reference elsewhere.

    backend "auto"   -> triton when the tensors are on CUDA and Triton imports, else torch
    backend "torch"  -> always the reference
    backend "triton" -> always Triton (on CPU only under TRITON_INTERPRET=1, for parity tests)

The process default is "auto"; a worker sets it from HYBRIDGEN_KERNELS (the `kernels` field of
pipeline.settings.Settings) through `set_default_backend`, and `use_backend` forces one for a block
of code in one thread (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import threading
from typing import Callable, Iterator

BACKENDS = ("auto", "torch", "triton")
_IMPLS: dict[str, dict[str, str]] = {
    "block_attention": {
        "torch": "kernels.block_attention_torch:block_attention",
        "triton": "kernels.block_attention_triton:block_attention",
    },
    "masked_attention": {  # the row cache's forward: an explicit mask over its preallocated buffer
        "torch": "kernels.masked_attention_torch:masked_attention",
        "triton": "kernels.masked_attention_triton:masked_attention",
    },
    "confidence": {
        "torch": "kernels.confidence_torch:confidence",
        "triton": "kernels.confidence_triton:confidence",
    },
}
_forced = threading.local()
_default = {"backend": "auto"}


def set_default_backend(backend: str) -> None:
    """The backend every thread uses unless `use_backend` forces another (set once per process)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; expected one of {BACKENDS}")
    _default["backend"] = backend


def current_backend() -> str:
    return getattr(_forced, "backend", None) or _default["backend"]


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Force a backend in this thread (a test hook, and a benchmark switch)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; expected one of {BACKENDS}")
    previous = getattr(_forced, "backend", None)
    _forced.backend = backend
    try:
        yield
    finally:
        _forced.backend = previous


def triton_available() -> bool:
    try:
        importlib.import_module("triton")
        return True
    except ImportError:
        return False


def resolve(name: str, on_cuda: bool) -> str:
    backend = current_backend()
    if backend == "auto":
        backend = "triton" if on_cuda and triton_available() else "torch"
    if backend == "triton" and name not in _triton_ready():
        backend = "torch"
    return backend


def _triton_ready() -> set[str]:
    """Operations whose Triton implementation exists in this checkout."""
    ready = set()
    for op, impls in _IMPLS.items():
        module = impls["triton"].split(":")[0]
        if importlib.util.find_spec(module) is not None:
            ready.add(op)
    return ready


def get(name: str, on_cuda: bool) -> Callable:
    module, attr = _IMPLS[name][resolve(name, on_cuda)].split(":")
    return getattr(importlib.import_module(module), attr)


def block_attention(q, *args, **kwargs):
    return get("block_attention", q.is_cuda)(q, *args, **kwargs)


def masked_attention(q, *args, **kwargs):
    return get("masked_attention", q.is_cuda)(q, *args, **kwargs)


def confidence(logits, *args, **kwargs):
    return get("confidence", logits.is_cuda)(logits, *args, **kwargs)
