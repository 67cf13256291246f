"""Per-point MLPs and a fast inference path for them on CPU.

:func:`mlp` builds the plain ``nn.Sequential`` of Linear layers with ReLU between them that
models train and save; :func:`run_mlp` evaluates one without autograd through
:func:`linear_relu`, which runs each Linear + ReLU pair as one oneDNN call with the bias and
the ReLU fused into the product when this torch build has it
(:func:`~equivision.nn.cpu.fused_linear_relu_supported`), and as ``F.linear`` + an in-place
ReLU otherwise. Inputs ``(..., C_in)``, outputs ``(..., C_out)``; plain tensors.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equivision.nn.cpu import fused_linear_relu_supported


def mlp(widths: list[int], *, last_activation: bool = True) -> nn.Sequential:
    """Linear layers ``widths[0] → … → widths[-1]`` with ReLU between them (and after the
    last with ``last_activation``), acting per point on ``(..., widths[0])``."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _fusable(x: Tensor) -> bool:
    # the fused op has no autograd formula and only a CPU kernel
    return x.device.type == "cpu" and not torch.is_grad_enabled() and fused_linear_relu_supported()


def linear_relu(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``relu(x Wᵀ + b)`` for ``x (N, C_in)``, ``weight (C_out, C_in)``, ``bias (C_out,)``:
    one fused oneDNN call on CPU without autograd where available (the same values to float
    rounding), ``F.linear`` and an in-place ReLU otherwise."""
    if _fusable(x):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [], "")
    return F.linear(x, weight, bias).relu_()


def run_mlp(seq: nn.Sequential, x: Tensor, weights: list[tuple[Tensor, Tensor | None]] | None = None,
            ) -> Tensor:
    """``seq(x)`` for an :func:`mlp` (Linear and ReLU layers, any other module applied as
    is), ``x (..., C_in)`` → ``(..., C_out)``.

    Without autograd on CPU (float32, or bfloat16 with ``weights``), each Linear + ReLU pair
    runs as one :func:`linear_relu` call: 2x faster on narrow per-point layers, where writing
    the bias and the ReLU pass cost as much as the product. With autograd, on other devices or
    dtypes and no ``weights``, it is ``seq(x)``. ``weights``: the Linear layers'
    ``(weight, bias)`` to use instead of their own (e.g. bfloat16 copies), in order."""
    if weights is None:
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
            return seq(x)
        weights = [(m.weight, m.bias) for m in seq if isinstance(m, nn.Linear)]
    layers, i, j, shape = list(seq), 0, 0, x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    while i < len(layers):
        layer = layers[i]
        relu = i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
        if isinstance(layer, nn.Linear):
            w, b = weights[j]
            j += 1
            x = linear_relu(x, w, b) if relu else F.linear(x, w, b)
            i += 2 if relu else 1
        else:
            x = layer(x)
            i += 1
    return x.reshape(*shape, x.shape[-1])
