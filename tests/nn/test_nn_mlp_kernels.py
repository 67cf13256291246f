"""The per-point MLP kernels of equivision.nn.pointwise against a plain nn.Sequential."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import equivision.nn.cpu as cpu
import equivision.nn.pointwise as mlp_mod
from equivision.nn import linear_relu, mlp, run_mlp

# float32: the fused op and F.linear accumulate the same products, so only the order of a few
# additions may differ (measured: bit-identical on this torch build); bfloat16 with bfloat16
# weights, relative to the float32 output: measured 2.8e-3 (norm) on this net and seed
F32_RTOL, F32_ATOL = 1e-5, 1e-6
BF16_REL = 1e-2


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return mlp([6, 32, 64, 128, 3], last_activation=False)


def _counting_op(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = torch.ops.mkldnn._linear_pointwise

    def op(*args):
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", op)
    return calls


def test_mlp_builder_layers() -> None:
    seq = mlp([3, 8, 5])
    assert [type(m) for m in seq] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]
    seq = mlp([3, 8, 5], last_activation=False)
    assert [type(m) for m in seq] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (seq[0].in_features, seq[2].out_features) == (3, 5)


@pytest.mark.skipif(not cpu.fused_linear_relu_supported(), reason="no fused oneDNN Linear + ReLU here")
def test_run_mlp_float32_fused_matches_sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    seq = _net()
    x = torch.randn(4, 500, 6, generator=torch.Generator().manual_seed(1))
    ref = seq(x).detach()
    calls = _counting_op(monkeypatch)
    with torch.no_grad():
        out = run_mlp(seq, x)
    assert calls[0] == 3  # every Linear followed by a ReLU went through the fused op
    assert out.shape == (4, 500, 3)
    torch.testing.assert_close(out, ref, rtol=F32_RTOL, atol=F32_ATOL)


def test_run_mlp_fallback_without_fused_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlp_mod, "fused_linear_relu_supported", lambda: False)
    calls = _counting_op(monkeypatch)
    seq = _net()
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = run_mlp(seq, x)
        lr = linear_relu(x, seq[0].weight, seq[0].bias)
    assert calls[0] == 0
    # the fallback is the same sequence of ops as the module's own forward
    assert torch.equal(out, seq(x).detach())
    assert torch.equal(lr, torch.relu(seq[0](x)).detach())


def test_run_mlp_bfloat16_weights() -> None:
    seq = _net()
    x = torch.randn(2000, 6, generator=torch.Generator().manual_seed(3))
    ref = seq(x).detach()
    w = [(m.weight.bfloat16(), m.bias.bfloat16()) for m in seq if isinstance(m, nn.Linear)]
    with torch.no_grad():
        out = run_mlp(seq, x.bfloat16(), w)
    assert out.dtype == torch.bfloat16
    rel = float((out.float() - ref).norm() / ref.norm())
    assert rel < BF16_REL
    assert rel > 0  # the products did run in bfloat16


def test_run_mlp_with_autograd_is_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_op(monkeypatch)
    seq = _net()
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(4), requires_grad=True)
    out = run_mlp(seq, x)
    assert calls[0] == 0
    assert torch.equal(out, seq(x))
    out.sum().backward()
    assert x.grad is not None and seq[0].weight.grad is not None


def test_fused_probe_false_when_op_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoOps:
        pass

    monkeypatch.setattr(torch.ops, "mkldnn", NoOps())
    cpu.fused_linear_relu_supported.cache_clear()
    try:
        assert cpu.fused_linear_relu_supported() is False
    finally:
        cpu.fused_linear_relu_supported.cache_clear()


def test_fused_probe_false_when_op_misbehaves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: torch.zeros(2, 4))
    cpu.fused_linear_relu_supported.cache_clear()
    try:
        assert cpu.fused_linear_relu_supported() is False
    finally:
        cpu.fused_linear_relu_supported.cache_clear()


def test_bf16_probe_false_without_capability_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": False})
    assert cpu.bf16_matmul_supported() is False
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert cpu.bf16_matmul_supported() is torch.backends.mkldnn.is_available()
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    assert cpu.bf16_matmul_supported() is False
