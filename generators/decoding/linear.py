"""A linear layer's weight, prepared once for the fastest matmul the device has.

    PreparedLinear(weight (out, in)) (x (..., in)) -> (..., out)

Why not `F.linear` as it is (measured on a 2-core Sapphire Rapids, SmolLM2-135M's 121 matrices,
batch x tokens = 1 / 8 / 32 rows, ms per forward's linears, benchmarks/refiner.py has the table):
- bf16: oneDNN's prepacked (blocked, AMX) weight runs 6.5 / 8.3 / 11.1 ms against `F.linear`'s
  13.1 / 14.7 / 18.8. `torch.compile` (inductor's freezing pass) does this same reorder; here it is
  done once at load, with no compiler.
- fp32: the weight stored transposed and contiguous, `x @ w_t`: 9.0 / 20.3 / 48.4 against
  11.6 / 32.2 / 53.2 (torch's `linear` on (out, in) weights leaves its fast path for a few rows).
- CUDA: `F.linear` is already the fast path.
The three compute the same products; `reference` is the plain `F.linear` they are tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def onednn_bf16_available() -> bool:
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class PreparedLinear:
    """One weight (out, in), with an optional bias (out,), laid out for `device`'s fast path."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        weight = weight.detach()
        self.out_features, self.in_features = weight.shape
        self.dtype, self.device = weight.dtype, weight.device
        self.bias = bias.detach() if bias is not None else None
        if weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and onednn_bf16_available():
            self.kind = "onednn"
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())  # opaque blocked layout
        elif weight.device.type == "cpu":
            self.kind = "transposed"
            self.weight = weight.t().contiguous()  # (in, out)
        else:
            self.kind = "linear"
            self.weight = weight.contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        if self.kind == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        if self.kind == "transposed":
            y = x @ self.weight
            return y + self.bias if self.bias is not None else y
        return F.linear(x, self.weight, self.bias)


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The plain product every prepared layout must equal (up to accumulation order)."""
    return F.linear(x, weight, bias)
