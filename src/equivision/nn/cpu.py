"""What this CPU and torch build can run fast: capability probes for the kernels in
:mod:`equivision.nn.pointwise` and for choosing a compute dtype.

Each probe answers once per process (the answer cannot change while it runs); tests
monkeypatch the names where they are used to exercise the fallbacks.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def fused_linear_relu_supported() -> bool:
    """Whether oneDNN's fused Linear + bias + ReLU (``torch.ops.mkldnn._linear_pointwise``)
    exists in this torch build and gives ``relu(x Wᵀ + b)`` on a tiny case. The op is
    private to torch and may disappear or change signature between releases: anything other
    than the expected result means "use the unfused path"."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        out = op(torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4), "relu", [], "")
        return bool(torch.equal(out, torch.full((2, 4), 3.0)))
    except (AttributeError, RuntimeError):
        return False


def bf16_matmul_supported() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX-512 BF16) through
    oneDNN, where networks run in bfloat16 pay off (3x the float32 throughput of the PEIF
    predictor on an AMX Xeon). Without those instructions bfloat16 products are emulated and
    slower than float32, so automatic choices stay float32."""
    try:
        caps = torch.cpu.get_capabilities()
    except AttributeError:  # torch < 2.8 has no capability query: stay in float32
        return False
    native = bool(caps.get("amx_bf16", False) or caps.get("avx512_bf16", False))
    return native and torch.backends.mkldnn.is_available()
