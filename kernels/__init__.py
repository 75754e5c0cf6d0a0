"""Attention and confidence kernels behind one registry.

Each operation has a pure-torch reference (used on CPU and as the parity oracle) and, on CUDA, a
Triton implementation with the same signature. Callers use `kernels.registry.get(name)`; they
never pick a backend themselves.
"""

from kernels.registry import block_attention, confidence, get, use_backend

__all__ = ["block_attention", "confidence", "get", "use_backend"]
