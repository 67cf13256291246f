"""G-CNN layers: forward + backward time and activation memory against e2cnn's ``R2Conv``
(the same group, fields and kernel size) and against a plain ``Conv2d`` with the same
number of channels (``fields × |G|``), side by side in one run, with the ratios.

    .venv/bin/python benchmarks/gcnn.py [--batch 16] [--size 28] [--repeats 5] [--threads 1]
        [--device cuda] [--quick] [--jsonl PATH]

``--quick``: 3 repeats instead of ``--repeats``.

Time: median wall time of ``loss = out.square().mean(); loss.backward()`` in train mode
(kernels rebuilt from the parameters in every forward, as in training; e2cnn likewise).
Memory: bytes of the tensors autograd saves for the backward pass (activation memory),
counted with ``torch.autograd.graph.saved_tensors_hooks``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from _results import RowWriter, add_jsonl_option
from _timing import saved_mib
from equivision.groups import C4, C8
from equivision.nn import (
    GroupConv2d,
    LiftingConv2d,
    ScaleGroupConv2d,
    ScaleLiftingConv2d,
    ZoomGroupConv2d,
    ZoomLiftingConv2d,
)

warnings.filterwarnings("ignore")  # e2cnn's deprecation warnings


def measure(fn: Callable[[], torch.Tensor], repeats: int,
            sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """(median ms of forward + backward, MiB saved for backward)."""
    mib = saved_mib(fn)  # also the warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn().square().mean().backward()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), mib


def e2cnn_conv(n: int, fields_in: int | None, fields_out: int, k: int, device: torch.device) -> Callable:
    from e2cnn import gspaces
    from e2cnn import nn as enn

    gs = gspaces.Rot2dOnR2(n)
    t_in = enn.FieldType(gs, [gs.trivial_repr] if fields_in is None
                         else fields_in * [gs.regular_repr])
    t_out = enn.FieldType(gs, fields_out * [gs.regular_repr])
    conv = enn.R2Conv(t_in, t_out, k, padding=k // 2).to(device).train()
    return lambda x: conv(enn.GeometricTensor(x, t_in)).tensor


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of --repeats")
    add_jsonl_option(ap, "gcnn")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats = 3
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    b, s, f = a.batch, a.size, a.fields
    try:
        import e2cnn  # noqa: F401
        has_e2cnn = True
    except ImportError:
        has_e2cnn = False
        print("e2cnn is not installed: its column stays empty", file=sys.stderr)

    rows = []

    def add(name: str, ours: Callable, x_ours: torch.Tensor, plain: nn.Module,
            x_plain: torch.Tensor, e2: Callable | None, x_e2: torch.Tensor | None) -> None:
        ours, plain = ours.to(dev), plain.to(dev)
        x_ours, x_plain = x_ours.to(dev), x_plain.to(dev)
        x_e2 = None if x_e2 is None else x_e2.to(dev)
        t_o, m_o = measure(lambda: ours(x_ours), a.repeats, sync)
        t_p, m_p = measure(lambda: plain(x_plain), a.repeats, sync)
        t_e, m_e = (measure(lambda: e2(x_e2), a.repeats, sync) if e2 is not None
                    else (float("nan"), float("nan")))
        rows.append((name, t_o, t_e, t_p, m_o, m_e, m_p))

    for group, n in ((C4, 4), (C8, 8)):
        g = group.order
        img = torch.randn(b, 1, s, s)
        fmap = torch.randn(b, f, g, s, s)
        lift = LiftingConv2d(1, f, 5, group)
        conv = GroupConv2d(f, f, 3, group)
        add(f"lift {group.name} 1→{f}×{g}, K=5", lift, img, nn.Conv2d(1, f * g, 5, padding=2),
            img, e2cnn_conv(n, None, f, 5, dev) if has_e2cnn else None, img)
        add(f"group conv {group.name} {f}×{g}→{f}×{g}, K=3", conv, fmap,
            nn.Conv2d(f * g, f * g, 3, padding=1), fmap.reshape(b, f * g, s, s),
            e2cnn_conv(n, f, f, 3, dev) if has_e2cnn else None, fmap.reshape(b, f * g, s, s))
    scales = (1.0, 2**0.5, 2.0)
    img = torch.randn(b, 1, s, s)
    smap = torch.randn(b, f, 3, s, s)
    add(f"scale lift 1→{f}×3, K=5", ScaleLiftingConv2d(1, f, 5, scales), img,
        nn.Conv2d(1, f * 3, 5, padding=2), img, None, None)
    add(f"scale group conv {f}×3→{f}×3, K=3", ScaleGroupConv2d(f, f, 3, scales), smap,
        nn.Conv2d(f * 3, f * 3, 3, padding=1), smap.reshape(b, f * 3, s, s), None, None)
    # the zoomed-grid discretisation of the same group: K × K kernels at every scale
    add(f"zoom lift 1→{f}×3, K=5", ZoomLiftingConv2d(1, f, 5, scales), img,
        nn.Conv2d(1, f * 3, 5, padding=2), img, None, None)
    add(f"zoom group conv {f}×3→{f}×3, K=3", ZoomGroupConv2d(f, f, 3, scales), smap,
        nn.Conv2d(f * 3, f * 3, 3, padding=1), smap.reshape(b, f * 3, s, s), None, None)

    print(f"G-CNN layers, forward + backward, batch {b}, {s}×{s}, {a.threads} thread(s), "
          f"median of {a.repeats}, {dev}")
    head = (f"{'layer':34s} {'ours ms':>8s} {'e2cnn ms':>9s} {'Conv2d ms':>9s} "
            f"{'/e2cnn':>7s} {'/Conv2d':>7s} {'ours MiB':>9s} {'e2cnn MiB':>9s} "
            f"{'Conv2d MiB':>10s}")
    print(head)
    print("-" * len(head))
    for name, t_o, t_e, t_p, m_o, m_e, m_p in rows:
        print(f"{name:34s} {t_o:8.1f} {t_e:9.1f} {t_p:9.1f} {t_o / t_e:7.2f} {t_o / t_p:7.2f} "
              f"{m_o:9.2f} {m_e:9.2f} {m_p:10.2f}")
    out = RowWriter("gcnn", a.jsonl, device=dev, dtype="float32", mode="quick" if a.quick else "full",
                    settings={"batch": b, "size": s, "fields": f, "repeats": a.repeats})
    for name, t_o, t_e, t_p, m_o, m_e, m_p in rows:
        # e2cnn is the anchor where it has the layer; the scale layers only have the plain one
        e2 = t_e == t_e
        out.add(f"{name}, batch {b}, {s}×{s}", t_o, "ms", higher_is_better=False,
                anchor="e2cnn R2Conv" if e2 else "nn.Conv2d, fields × |G| channels",
                anchor_figure=t_e if e2 else t_p, conv2d_ms=t_p, ratio_conv2d=t_o / t_p,
                saved_mib={"ours": m_o, "e2cnn": m_e if e2 else None, "conv2d": m_p})
    print(f"{out.count} rows appended to {a.jsonl}")


if __name__ == "__main__":
    main()
