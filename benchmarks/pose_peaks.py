"""Where the pose errors of the image embedding come from: how often the right answer is the
correlation's *second* peak, and how well the network regresses the even and the odd degrees.

``OMP_NUM_THREADS=1 python benchmarks/pose_peaks.py [--embedder NAME|RUN] [--decoder NAME|RUN]
[--test-views DIR] [--train-views DIR] [--limit N]``

1. Spectra: on the test view dataset (meshes the network never saw), the teacher's target maps
   and the network's error per degree ``l``, pooled over views and channels; the odd degrees are
   the maps' odd part ``(f(x) − f(−x))/2`` (:func:`~equivision.sphere.grid.odd_part`), the only
   part that tells a mirror-symmetric object's pose from the pose a half turn away.
2. Peaks: the pose experiment's 3DOF protocol (:mod:`equivision.experiments.pose`: the same
   seeded poses, renders, partners and templates) with :func:`~equivision.sphere.relative_pose`'s
   answer (the shipped method, the anchor), its second distinct peak, the better of the two
   (an oracle that knows the truth: the most a choice between the two peaks can give) and the
   choice of the synthesis decoder (``Γ(R·Ψ(a))`` against image ``b`` plus ``Γ(Rᵀ·Ψ(b))``
   against ``a``, L1 on shading and silhouette; for absolute pose ``Γ(R·template)`` against
   the image). Median, Acc@15, Acc@30 and the median's ratio to the anchor's.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from equivision.data.seeds import name_seed
from equivision.experiments import pose as experiment
from equivision.experiments.view_synthesis import _paths, select_meshes
from equivision.io import load_mesh
from equivision.metrics.rotations import rotation_errors
from equivision.models import load
from equivision.render import render_views
from equivision.sphere.pose import RelativePose, relative_pose
from equivision.sphere.rotate import rotate
from equivision.sphere.sht import sht
from equivision.tasks.views import ViewDataset, view_rotations

FIELDS = ("rotation", "score", "second_rotation", "second_score", "confidence", "symmetric", "contrast",
          "ambiguous")
DEG = 180 / math.pi


def _batched(fn, x, chunk=64):
    with torch.no_grad():
        return torch.cat([fn(x[s:s + chunk].float()) for s in range(0, x.shape[0], chunk)]).double()


def _poses(a, b, chunk=64) -> RelativePose:
    out = [relative_pose(a[s:s + chunk], b[s:s + chunk]) for s in range(0, a.shape[0], chunk)]
    return RelativePose(*[torch.cat([getattr(o, f) for o in out]) for f in FIELDS])


def spectra(net, views: ViewDataset, channels: list[int], max_views: int) -> list[tuple[int, float, float]]:
    """Per degree: the targets' mean power and the network error's, over up to ``max_views``."""
    sig = err = None
    n = 0
    for s in range(len(views.manifest["shards"])):
        sh = views.shard(s)
        x, t = sh["images"].flatten(0, 1)[:, channels], sh["targets"].flatten(0, 1).double()
        ct, ce = sht(t), sht(_batched(net, x) - t)
        b = math.isqrt(ct.shape[-1])
        deg = torch.cat([torch.full((2 * l + 1,), l) for l in range(b)])
        ps = torch.zeros(b, dtype=torch.float64).index_add_(0, deg, ct.pow(2).sum((0, 1)))
        pe = torch.zeros(b, dtype=torch.float64).index_add_(0, deg, ce.pow(2).sum((0, 1)))
        sig, err = (ps, pe) if sig is None else (sig + ps, err + pe)
        n += t.shape[0]
        if n >= max_views:
            break
    return [(l, float(sig[l] / n), float(err[l] / n)) for l in range(len(sig))]


def _row(name: str, err: torch.Tensor, anchor: float) -> str:
    d = err * DEG
    med = float(d.quantile(0.5))
    return (f"| {name} | {med:.1f}° | {100 * float((d < 15).double().mean()):.1f} % | "
            f"{100 * float((d < 30).double().mean()):.1f} % | {med / anchor:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="image_to_sphere_modelnet10")
    ap.add_argument("--decoder", default="sphere_to_image_modelnet10")
    ap.add_argument("--test-views", default="runs/views-h6-test")
    ap.add_argument("--train-views", default="runs/views-h6-train-v24",
                    help="for the category templates (only its canonical maps are read)")
    ap.add_argument("--limit", type=int, default=None, help="only N test meshes (seeded, classes in turn)")
    ap.add_argument("--spectra-views", type=int, default=1812)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    test, train = ViewDataset(args.test_views), ViewDataset(args.train_views)
    net = load(args.embedder, model="image_to_sphere").eval()
    dec = load(args.decoder, model="sphere_to_image").eval()
    cfg = test.manifest["config"]
    chans, size, up = list(cfg["channels"]), int(cfg["image_size"]), str(cfg.get("up", "+z"))
    in_chans = [chans.index(c) for c in ("shading", "silhouette", "depth")[:net.cfg.in_channels]]

    rows = spectra(net, test, in_chans, args.spectra_views)
    print(f"## Spectra of the targets and of the network's error ({args.test_views}, "
          f"{time.perf_counter() - t0:.0f} s)\n")
    print("| degree | target power | error power | signal / error |\n|---|---|---|---|")
    for l, s, e in rows:
        print(f"| {l} | {s:.4g} | {e:.4g} | {s / e:.2f} |")
    for name, par in (("even", 0), ("odd", 1)):
        s = sum(r[1] for r in rows if r[0] % 2 == par)
        e = sum(r[2] for r in rows if r[0] % 2 == par)
        print(f"| all {name} | {s:.4g} | {e:.4g} | {s / e:.2f} |")

    names, labels = list(test.manifest["names"]), [int(x) for x in test.manifest["labels"]]
    chosen = list(range(len(names))) if args.limit is None else select_meshes(labels, args.limit, 0)
    cn = [names[m] for m in chosen]
    classes = [experiment.class_of(names[m], labels[m]) for m in chosen]
    paths = _paths(cn, "test")
    views = experiment.VIEWS
    rots = torch.stack([view_rotations(views, 3, name_seed(0, f"pose-dof3/{n}"), up) for n in cn])
    images = torch.stack([render_views(load_mesh(paths[n], dtype=torch.float64), rots[i], size=size,
                                       channels=chans) for i, n in enumerate(cn)]).float()
    m = len(cn)
    shape = test.shard(0)["canonical"].shape[1:]
    emb = _batched(net, images.flatten(0, 1)[:, in_chans]).reshape(m, views, *shape)
    look = images[:, :, [chans.index("shading"), chans.index("silhouette")]].double()
    templates = experiment.templates_by_class(train)

    def decode(maps):
        return _batched(dec, maps).clamp(0, 1)

    def l1(x, y):
        return (x - y).abs().flatten(1).mean(1)

    partners = experiment.category_partners(classes, 0)
    sets = {"instance": [(i, 0, i, v) for i in range(m) for v in range(1, views)],
            "category": [(i, 0, j, 0) for i in range(m) for j in partners[i]],
            "absolute": [(i, v) for i in range(m) for v in range(views)]}
    print(f"\n## Peaks, 3DOF, {m} test meshes ({time.perf_counter() - t0:.0f} s)")
    for proto, pairs in sets.items():
        if proto == "absolute":
            ib, vb = (torch.tensor([p[k] for p in pairs]) for k in range(2))
            a = torch.stack([templates[classes[i]] for i in ib.tolist()])
            b, truth = emb[ib, vb], rots[ib, vb]
        else:
            ia, va, ib, vb = (torch.tensor([p[k] for p in pairs]) for k in range(4))
            a, b = emb[ia, va], emb[ib, vb]
            truth = rots[ib, vb] @ rots[ia, va].transpose(-1, -2)
        res = _poses(a, b)
        cands = (res.rotation.double(), res.second_rotation.double())
        e1, e2 = (rotation_errors(r, truth) for r in cands)
        score = []
        for r in cands:
            s = l1(decode(rotate(a, r[:, None])), look[ib, vb])
            if proto != "absolute":
                s = s + l1(decode(rotate(b, r.transpose(-1, -2)[:, None])), look[ia, va])
            score.append(s)
        pick = score[1] < score[0]
        anchor = float((e1 * DEG).quantile(0.5))
        print(f"\n### {proto} ({len(pairs)} pairs; the decoder picks the second peak for "
              f"{100 * float(pick.double().mean()):.1f} %)\n")
        print("| answer | median | Acc@15 | Acc@30 | median / shipped |\n|---|---|---|---|---|")
        print(_row("highest peak (shipped)", e1, anchor))
        print(_row("second peak", e2, anchor))
        print(_row("better of the two (oracle)", torch.minimum(e1, e2), anchor))
        print(_row("decoder's choice", torch.where(pick, e2, e1), anchor))
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
