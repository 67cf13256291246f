"""Vector Neurons: forward + backward time and memory of each VN layer and model against the
plain layer / model of the same width, measured in the same run (the ratio is the price of
equivariance), with the ``vn-transformer`` package's layers as a further anchor where they
compute the same thing.

    python benchmarks/vector_neurons.py [--quick] [--threads 1] [--jsonl PATH]

Widths: a VN layer with ``C`` vector channels is compared with a plain layer of ``3C``
scalar channels (the same number of floats per point). Memory: MiB of tensors saved for
backward (the activation memory of training), counted with autograd's saved-tensor hooks.
``--quick``: a smaller batch and cloud, 3 repeats.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RowWriter, add_jsonl_option
from _timing import interleaved_medians, saved_mib
from equivision.models import build_model
from equivision.nn import (
    VNBatchNorm,
    VNInvariant,
    VNLinear,
    VNLinearLeakyReLU,
    VNMaxPool,
    knn_indices,
    vn_edge_features,
)


def measure_pair(ours: Callable[[], torch.Tensor], anchor: Callable[[], torch.Tensor],
                 repeats: int) -> tuple[float, float, float, float]:
    """(ours ms, anchor ms, ours MiB, anchor MiB): median forward + backward times, the two
    alternating within each round so that load from other processes hits both alike."""
    step = {k: (lambda f=f: f().square().mean().backward()) for k, f in (("ours", ours), ("anchor", anchor))}
    med = interleaved_medians(step, repeats)
    return 1000 * med["ours"], 1000 * med["anchor"], saved_mib(ours), saved_mib(anchor)


def scalar_edge(x: torch.Tensor, k: int) -> torch.Tensor:
    idx = knn_indices(x, k)
    b, d, n = x.shape
    nb = torch.gather(x, 2, idx.reshape(b, 1, n * k).expand(b, d, n * k)).reshape(b, d, n, k)
    c = x[..., None].expand(b, d, n, k)
    return torch.cat([nb - c, c], 1)


def vn_transformer_cases(c: int, b: int, n: int) -> list[tuple[str, Callable, Callable, str]]:
    """Our layer against vn-transformer's on the same input (its layout is ``(B, N, C, 3)``)."""
    try:
        from VN_transformer.VN_transformer import VNLinear as TLinear
        from VN_transformer.VN_transformer import VNReLU as TReLU
    except ImportError:
        print("vn-transformer is not installed (pip install -c constraints.txt vn-transformer): "
              "its anchor rows are left out")
        return []
    x = torch.randn(b, c, 3, n, requires_grad=True)
    xt = x.detach().permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    ours_lin, theirs_lin = VNLinear(c, c), TLinear(c, c)
    with torch.no_grad():
        theirs_lin.weight.copy_(ours_lin.weight)
    with torch.no_grad():
        diff = float((theirs_lin(xt).permute(0, 2, 3, 1) - ours_lin(x)).abs().max())
    print(f"vn-transformer VNLinear vs ours, same weights: max |difference| {diff:.2e}")
    ours_relu = VNLinearLeakyReLU(c, c, batch_norm=False, negative_slope=0.0)
    theirs_relu = TReLU(c)
    with torch.no_grad():
        theirs_relu.W.copy_(ours_relu.linear.weight)
        theirs_relu.U.copy_(ours_relu.direction.weight)
    with torch.no_grad():
        diff = float((theirs_relu(xt).permute(0, 2, 3, 1) - ours_relu(x)).abs().max())
    # its projection is q − ⟨q, k/|k|⟩ k (one normalisation), the paper's q − ⟨q, k⟩ k/|k|²
    print(f"vn-transformer VNReLU vs our VNLinearLeakyReLU (no BN, slope 0), same W, U: max |difference| "
          f"{diff:.2e} (it scales the removed component by |k|, so it is not the same map)")
    return [("VNLinear", lambda: ours_lin(x), lambda: theirs_lin(xt), "vn-transformer VNLinear (same map)"),
            ("VNLinearLeakyReLU, no BN, slope 0", lambda: ours_relu(x), lambda: theirs_relu(xt),
             "vn-transformer VNReLU (same cost, its projection differs)")]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 2, 256 points, 3 repeats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    add_jsonl_option(ap, "vector_neurons")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    b, n, reps = (2, 256, 3) if a.quick else (8, 1024, a.repeats)
    c, k = 42, 20  # VN channels (plain: 3c = 126)

    x = torch.randn(b, c, 3, n, requires_grad=True)
    xs = torch.randn(b, 3 * c, n, requires_grad=True)
    pts = torch.randn(b, n, 3)
    lin, lrelu, bn, pool = VNLinear(c, c), VNLinearLeakyReLU(c, c), VNBatchNorm(c), VNMaxPool(c)
    inv = VNInvariant(c)
    edge_vn = VNLinearLeakyReLU(2 * c, c)
    conv = nn.Conv1d(3 * c, 3 * c, 1, bias=False)
    block = nn.Sequential(nn.Conv1d(3 * c, 3 * c, 1, bias=False), nn.BatchNorm1d(3 * c), nn.LeakyReLU(0.2))
    bn1 = nn.BatchNorm1d(3 * c)
    edge_plain = nn.Sequential(nn.Conv2d(6 * c, 3 * c, 1, bias=False), nn.BatchNorm2d(3 * c),
                               nn.LeakyReLU(0.2))
    cases: list[tuple[str, Callable, Callable, str]] = [
        ("VNLinear", lambda: lin(x), lambda: conv(xs), f"Conv1d {3 * c}→{3 * c}"),
        ("VNLinearLeakyReLU (BN)", lambda: lrelu(x), lambda: block(xs), "Conv1d + BatchNorm1d + LeakyReLU"),
        ("VNBatchNorm", lambda: bn(x), lambda: bn1(xs), "BatchNorm1d"),
        ("VNMaxPool", lambda: pool(x), lambda: xs.amax(-1), "max over points"),
        ("VNInvariant (paper)", lambda: inv(x)[0], lambda: conv(xs), f"Conv1d {3 * c}→{3 * c}"),
        (f"edge feature + VNLinearLeakyReLU, k={k}", lambda: edge_vn(vn_edge_features(x, k)).mean(-1),
         lambda: edge_plain(scalar_edge(xs, k)).amax(-1), "DGCNN EdgeConv, same width"),
    ]
    models = {"vn_pointnet": "pointnet", "vn_dgcnn": "dgcnn"}
    for vn, plain in models.items():
        m_vn, m_plain = build_model(vn).train(), build_model(plain).train()
        cases.append((f"model {vn}", lambda m=m_vn: m(pts), lambda m=m_plain: m(pts), f"model {plain}"))
    cases += vn_transformer_cases(c, b, n)

    rows = []
    for name, ours, anchor, anchor_name in cases:
        t_o, t_a, m_o, m_a = measure_pair(ours, anchor, reps)
        rows.append((name, t_o, t_a, m_o, m_a, anchor_name))
    head = f"{'layer / model':44s} {'ours ms':>9s} {'anchor ms':>10s} {'ratio':>6s} {'ours MiB':>9s} " \
           f"{'anchor MiB':>10s}  anchor"
    print(f"batch {b}, {n} points, {c} vector channels (plain: {3 * c}), {a.threads} thread(s), "
          f"forward + backward")
    print(head)
    print("-" * len(head))
    for name, t_o, t_a, m_o, m_a, an in rows:
        print(f"{name:44s} {t_o:9.1f} {t_a:10.1f} {t_o / t_a:6.2f} {m_o:9.1f} {m_a:10.1f}  {an}")
    out = RowWriter("vector_neurons", a.jsonl, dtype="float32", mode="quick" if a.quick else "full",
                    settings={"batch": b, "points": n, "channels": c, "k": k, "repeats": reps})
    for name, t_o, t_a, m_o, m_a, an in rows:
        out.add(f"{name}, batch {b}, {n} points", t_o, "ms", higher_is_better=False, anchor=an,
                anchor_figure=t_a, saved_mib={"ours": m_o, "anchor": m_a})
    print(f"{out.count} rows appended to {a.jsonl}")


if __name__ == "__main__":
    main()
