"""Relative and absolute 3D pose on the ModelNet10 test split: the equivariant image embedding
against a pose-regression network, uniformly random rotations and the teacher's own maps.

``python -m equivision.experiments.pose OUT --embedder RUN [--regression RUN] [--limit N]
[--dof 3|2] [--seed 0] [--out-bandwidth B'] [--test-views DIR] [--train-views DIR]``

For every test mesh of the test view dataset (``--limit N``: N meshes, seeded, classes in
turn) and each DOF, four poses are drawn with the view dataset's samplers
(:func:`~equivision.tasks.views.view_rotations`, seeded by the mesh name, the DOF and
``--seed``) and rendered with the dataset's camera, size and channels. Pairs:

* instance-based (``instance``): view 0 of a mesh against views 1, 2, 3 of the same mesh;
* category-based (``category``): view 0 of a mesh against view 0 of 3 other meshes of its
  class (seeded; fewer when the class has fewer);
* absolute (``absolute``): every view against the category template, the mean of the
  teacher's canonical maps over the class's *training* meshes (``--train-views``).

The truth of a pair ``(a, b)`` is ``R_b R_aᵀ`` (the meshes are aligned, so it holds across
instances too); of an absolute pose, ``R``. Methods:

* ``embedding``: ``relative_pose(Ψ(I_a), Ψ(I_b))`` (absolute: ``relative_pose(template, Ψ(I))``);
* ``image_to_mesh``: ``relative_pose(Φ(R_a·M_a), Ψ(I_b))``, the first image replaced by the
  teacher's embedding of its posed mesh (the rotated canonical maps), as in the paper's Table 4;
* ``target``: both sides the teacher's embeddings ``Φ(R·M)``: the upper bound the image network
  imitates;
* ``regression``: ``R̂_b R̂_aᵀ`` of the pose-regression network (absolute: ``R̂``), with ``--regression``;
* ``random``: uniformly random rotations (seeded).

Errors are geodesic (:func:`~equivision.metrics.rotations.rotation_errors`), summarised as the
median in degrees and Acc@15/Acc@30 per class and overall, raw and up to the half turn about the
up axis for the classes of :data:`SYMMETRIC_CLASSES` (the same as raw elsewhere). Written:
``results.json`` (configuration, table, every error) and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from equivision.errors import ConfigError, EquivisionError

#: Classes whose objects are often the same after a half turn about the up axis: a table or a
#: desk is a rectangular top on legs placed symmetrically, a bathtub a rounded rectangle with
#: like ends. Their errors are also reported up to that half turn; the other ModelNet10 classes
#: (chair, sofa, toilet, bed, monitor, night_stand, dresser) have a front and a back.
SYMMETRIC_CLASSES = ("bathtub", "desk", "table")
METHODS = ("embedding", "image_to_mesh", "target", "regression", "random")
PROTOCOLS = ("instance", "category", "absolute")
VIEWS = 4  # per mesh and DOF: view 0 and three more
PARTNERS = 3
#: Published absolute-pose figures on ModelNet10 (Acc@15, median °), for the table's note.
PUBLISHED = {"Image2Sphere": (0.728, 15.7), "Implicit-PDF": (0.719, 21.5)}


def class_of(name: str, label: int) -> str:
    """The class of a view-dataset mesh name (``chair/chair_0001`` → ``chair``)."""
    return name.split("/")[0] if "/" in name else f"class{label}"


def _axis_vector(up: str) -> Tensor:
    sign = -1.0 if up.startswith("-") else 1.0
    v = torch.zeros(3, dtype=torch.float64)
    v["xyz".index(up[-1])] = sign
    return v


def _task(source: str | Path | nn.Module) -> dict[str, Any]:
    if isinstance(source, nn.Module):
        return {}
    from equivision.models.synthesis import run_config_of

    return run_config_of(source).get("task") or {}


def _network(source: str | Path | nn.Module, model: str,
             channels: Sequence[str] | None) -> tuple[nn.Module, list[str]]:
    """The network in eval mode and the image channels it reads (its task config's, else the
    first ``in_channels`` of shading, silhouette, depth)."""
    from equivision.models import load

    net = source.eval() if isinstance(source, nn.Module) else load(str(source), model=model)
    cfg = getattr(net, "cfg", None)
    k = int(getattr(cfg, "in_channels", 3))
    chans = list(channels or _task(source).get("channels") or ["shading", "silhouette", "depth"][:k])
    if len(chans) != k:
        raise ConfigError(f"{source} reads {k} image channels, but its channels are {chans}")
    return net, chans


def _canonical(views: Any) -> Tensor:
    """The canonical maps ``(M, C, 2b, 2b)`` of every mesh of a view dataset, in mesh order."""
    return torch.cat([views.shard(s)["canonical"] for s in range(len(views.manifest["shards"]))])


def templates_by_class(train: Any) -> dict[str, Tensor]:
    """The mean canonical maps ``(C, 2b, 2b)`` of each class of a (training) view dataset."""
    canon = _canonical(train).double()
    names, labels = train.manifest["names"], train.manifest["labels"]
    classes = [class_of(n, int(c)) for n, c in zip(names, labels, strict=True)]
    return {c: canon[[i for i, k in enumerate(classes) if k == c]].mean(0) for c in sorted(set(classes))}


def category_partners(classes: Sequence[str], seed: int, k: int = PARTNERS) -> list[list[int]]:
    """For each index, ``k`` other indices of its class (seeded; all of them when fewer)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, c in enumerate(classes):
        same = [j for j, d in enumerate(classes) if d == c and j != i]
        perm = torch.randperm(len(same), generator=g).tolist()
        out.append([same[p] for p in perm[:k]])
    return out


def _poses(batch_a: Tensor, batch_b: Tensor, out_bandwidth: int | None,
           chunk: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """``relative_pose`` of pairs of maps ``(N, C, 2b, 2b)``, in chunks: rotations ``(N, 3, 3)``,
    confidences ``(N,)`` and symmetry flags ``(N,)``."""
    from equivision.sphere.pose import relative_pose

    res = [relative_pose(batch_a[s:s + chunk], batch_b[s:s + chunk], out_bandwidth=out_bandwidth)
           for s in range(0, batch_a.shape[0], chunk)]
    if not res:
        return torch.zeros(0, 3, 3, dtype=torch.float64), torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    return (torch.cat([r.rotation for r in res]).double(), torch.cat([r.confidence for r in res]).double(),
            torch.cat([r.symmetric for r in res]))


def auroc(positive: Tensor, score: Tensor) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (ties count half):
    the chance that a random positive scores above a random negative; NaN without both."""
    positive = positive.bool()
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    s = score.double()
    order = torch.argsort(s, stable=True)
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    for v in torch.unique(s):  # average ranks of ties
        tie = s == v
        if int(tie.sum()) > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _acc(ok: Tensor, mask: Tensor) -> float:
    return float(ok[mask].double().mean()) if bool(mask.any()) else float("nan")


def confidence_summary(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ``(dof, protocol, method)`` with confidences: is the confidence informative? AUROC
    for "raw error < 15°", Acc@15 of the more and the less confident half (split at the
    median), and the share flagged symmetric with the Acc@15 of flagged and unflagged pairs."""
    rows = []
    keys = list(dict.fromkeys((e["dof"], e["protocol"], e["method"]) for e in errors
                              if e.get("confidence") is not None))
    for dof, protocol, method in keys:
        sel = [e for e in errors if (e["dof"], e["protocol"], e["method"]) == (dof, protocol, method)]
        ok = torch.tensor([e["raw_deg"] < 15 for e in sel])
        conf = torch.tensor([e["confidence"] for e in sel], dtype=torch.float64)
        flag = torch.tensor([bool(e["symmetric"]) for e in sel])
        hi = conf >= conf.quantile(0.5)

        rows.append({"dof": dof, "protocol": protocol, "method": method, "n": len(sel),
                     "auroc": auroc(ok, conf), "acc15_confident_half": _acc(ok, hi),
                     "acc15_other_half": _acc(ok, ~hi), "flagged": float(flag.double().mean()),
                     "acc15_flagged": _acc(ok, flag), "acc15_unflagged": _acc(ok, ~flag)})
    return rows


def _summary(deg: Tensor) -> dict[str, float]:
    if deg.numel() == 0:
        return {"n": 0, "median_deg": float("nan"), "acc15": float("nan"), "acc30": float("nan")}
    return {"n": int(deg.numel()), "median_deg": float(deg.quantile(0.5)),
            "acc15": float((deg < 15).double().mean()), "acc30": float((deg < 30).double().mean())}


def summarize(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ``(dof, protocol, method)`` and class (and ``all``): the raw and symmetric summaries."""
    table = []
    keys = list(dict.fromkeys((e["dof"], e["protocol"], e["method"]) for e in errors))
    for dof, protocol, method in keys:
        sel = [e for e in errors if (e["dof"], e["protocol"], e["method"]) == (dof, protocol, method)]
        classes = sorted({e["class"] for e in sel})
        for c in [*classes, "all"]:
            part = [e for e in sel if c in ("all", e["class"])]
            raw = torch.tensor([e["raw_deg"] for e in part], dtype=torch.float64)
            sym = torch.tensor([e["sym_deg"] for e in part], dtype=torch.float64)
            table.append({"dof": dof, "protocol": protocol, "method": method, "class": c,
                          **_summary(raw), **{f"sym_{k}": v for k, v in _summary(sym).items() if k != "n"}})
    return table


def run(out: str | Path, *, embedder: str | Path | nn.Module,
        regression: str | Path | nn.Module | None = None, test_views: str | Path = "runs/views-mn10-test-s1",
        train_views: str | Path = "runs/views-mn10-train-s1",
        limit: int | None = None, dofs: Sequence[int] = (3, 2), seed: int = 0,
        out_bandwidth: int | None = None, overwrite: bool = False,
        meshes_by_name: Callable[[str], Any] | None = None, embedder_channels: Sequence[str] | None = None,
        regression_channels: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the experiment into folder ``out``; returns what ``results.json`` holds.
    ``meshes_by_name``: the mesh of a test mesh name (default: ModelNet10's test files);
    ``*_channels``: the image channels of a network given as a module."""
    from equivision.data.seeds import name_seed
    from equivision.experiments.view_synthesis import _paths, select_meshes
    from equivision.groups.spatial import SO3
    from equivision.io import OutputSpec, atomic_path, check_outputs, load_mesh
    from equivision.metrics.rotations import rotation_errors
    from equivision.models.pose_regression import rotation_from_6d
    from equivision.render import render_views
    from equivision.sphere.rotate import rotate
    from equivision.tasks.views import ViewDataset, view_rotations

    out = Path(out)
    files = {"json": out / "results.json", "md": out / "results.md"}
    if out.exists():
        check_outputs([OutputSpec(f"OUT/{p.name}", p) for p in files.values()], overwrite=overwrite)
    else:
        check_outputs([OutputSpec("OUT", out)], overwrite=False)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    if not dofs or any(d not in (2, 3) for d in dofs):
        raise ConfigError(f"--dof must be 2 or 3, got {list(dofs)}")
    test, train = ViewDataset(test_views), ViewDataset(train_views)
    if test.manifest["teacher"]["digest"] != train.manifest["teacher"]["digest"]:
        raise ConfigError(f"{test_views} and {train_views} were built with different teachers; the "
                          "templates must come from the teacher of the test maps")
    net, chans_e = _network(embedder, "image_to_sphere", embedder_channels)
    reg = chans_r = None
    if regression is not None:
        reg, chans_r = _network(regression, "pose_regression", regression_channels)
    cfg = test.manifest["config"]
    chans, size, up = list(cfg["channels"]), int(cfg["image_size"]), str(cfg.get("up", "+z"))
    for need in chans_e + (chans_r or []):
        if need not in chans:
            raise ConfigError(f"{test_views} has channels {chans}; the networks need {need!r}")
    canon_all = _canonical(test).double()
    if tuple(net(torch.zeros(1, len(chans_e), size, size)).shape[1:]) != tuple(canon_all.shape[1:]):
        raise ConfigError(f"the embedder's maps do not have the shape {tuple(canon_all.shape[1:])} of the "
                          f"teacher maps in {test_views}")
    names, labels = list(test.manifest["names"]), [int(x) for x in test.manifest["labels"]]
    chosen = list(range(len(names))) if limit is None else select_meshes(labels, limit, seed)
    chosen_names = [names[m] for m in chosen]
    classes = [class_of(names[m], labels[m]) for m in chosen]
    templates = templates_by_class(train)
    missing = sorted(set(classes) - set(templates))
    if missing:
        raise ConfigError(f"{train_views} has no meshes of the classes {missing}; no templates for them")
    if meshes_by_name is None:
        paths = _paths(chosen_names, "test")

        def meshes_by_name(name: str) -> Any:
            return load_mesh(paths[name], dtype=torch.float64)

    up_v = _axis_vector(up)
    partners = category_partners(classes, seed)
    canon = canon_all[chosen]
    errors: list[dict[str, Any]] = []
    n_mesh = len(chosen)
    for dof in dofs:
        rots = torch.stack([view_rotations(VIEWS, dof, name_seed(seed, f"pose-dof{dof}/{n}"), up)
                            for n in chosen_names])  # (M, V, 3, 3)
        images = torch.stack([render_views(meshes_by_name(n), rots[i], size=size, channels=chans)
                              for i, n in enumerate(chosen_names)]).float()  # (M, V, K, S, S)
        flat = images.flatten(0, 1)
        with torch.no_grad():
            emb = torch.cat([net(flat[s:s + 64, [chans.index(c) for c in chans_e]].contiguous())
                             for s in range(0, flat.shape[0], 64)]).double().reshape(n_mesh, VIEWS,
                                                                                     *canon.shape[1:])
            r_reg = None
            if reg is not None:
                r = torch.cat([reg(flat[s:s + 64, [chans.index(c) for c in chans_r]].contiguous())
                               for s in range(0, flat.shape[0], 64)]).double().reshape(n_mesh, VIEWS, 3, 3)
                # re-orthonormalised in float64, where the metrics check rotations more tightly
                r_reg = rotation_from_6d(torch.cat([r[..., :, 0], r[..., :, 1]], -1))
        true_maps = rotate(canon[:, None], rots[:, :, None])  # Φ(R·M) (M, V, C, 2b, 2b)
        pairs = [("instance", i, 0, i, v) for i in range(n_mesh) for v in range(1, VIEWS)]
        pairs += [("category", i, 0, j, 0) for i in range(n_mesh) for j in partners[i]]
        ia = torch.tensor([p[1] for p in pairs], dtype=torch.long)
        va = torch.tensor([p[2] for p in pairs], dtype=torch.long)
        ib = torch.tensor([p[3] for p in pairs], dtype=torch.long)
        vb = torch.tensor([p[4] for p in pairs], dtype=torch.long)
        ra, rb = rots[ia, va], rots[ib, vb]
        truth = rb @ ra.transpose(-1, -2)
        # each method: rotations, and for the correlations their confidences and symmetry flags
        est: dict[str, tuple[Tensor, Tensor | None, Tensor | None]] = {
            "embedding": _poses(emb[ia, va], emb[ib, vb], out_bandwidth),
            "image_to_mesh": _poses(true_maps[ia, va], emb[ib, vb], out_bandwidth),
            "target": _poses(true_maps[ia, va], true_maps[ib, vb], out_bandwidth),
            "random": (SO3().random(len(pairs), seed=name_seed(seed, f"random-pairs-{dof}"),
                                    dtype=torch.float64), None, None)}
        if r_reg is not None:
            est["regression"] = (r_reg[ib, vb] @ r_reg[ia, va].transpose(-1, -2), None, None)
        axes = ra @ up_v  # the up axis of a's object, in the frame the relative pose acts on
        # absolute: every view of every mesh against its class template
        idx = [(i, v) for i in range(n_mesh) for v in range(VIEWS)]
        ai = torch.tensor([i for i, _ in idx], dtype=torch.long)
        av = torch.tensor([v for _, v in idx], dtype=torch.long)
        tmpl = torch.stack([templates[classes[i]] for i in ai.tolist()])
        abs_truth = rots[ai, av]
        abs_est: dict[str, tuple[Tensor, Tensor | None, Tensor | None]] = {
            "embedding": _poses(tmpl, emb[ai, av], out_bandwidth),
            "target": _poses(tmpl, true_maps[ai, av], out_bandwidth),
            "random": (SO3().random(len(idx), seed=name_seed(seed, f"random-abs-{dof}"),
                                    dtype=torch.float64), None, None)}
        if r_reg is not None:
            abs_est["regression"] = (r_reg[ai, av], None, None)
        deg = 180 / math.pi
        abs_who = [("absolute", i, i) for i, _ in idx]
        for ests, tru, ax, who in ((est, truth, axes, [(p[0], p[1], p[3]) for p in pairs]),
                                   (abs_est, abs_truth, up_v.expand(len(idx), 3), abs_who)):
            for method in METHODS:
                if method not in ests:
                    continue
                rot, conf, flag = ests[method]
                raw = rotation_errors(rot, tru) * deg
                sym = rotation_errors(rot, tru, symmetry_axis=ax) * deg
                for k, (proto, i, j) in enumerate(who):
                    c = classes[i]
                    errors.append({"dof": dof, "protocol": proto, "method": method, "class": c,
                                   "a": chosen_names[i], "b": chosen_names[j], "raw_deg": float(raw[k]),
                                   "sym_deg": float(sym[k] if c in SYMMETRIC_CLASSES else raw[k]),
                                   "confidence": None if conf is None else float(conf[k]),
                                   "symmetric": None if flag is None else bool(flag[k])})
    errors.sort(key=lambda e: (-e["dof"], PROTOCOLS.index(e["protocol"]), METHODS.index(e["method"])))
    table = summarize(errors)
    result = {"config": {"embedder": str(embedder) if not isinstance(embedder, nn.Module) else "module",
                         "regression": None if regression is None else
                         (str(regression) if not isinstance(regression, nn.Module) else "module"),
                         "test_views": str(test_views), "train_views": str(train_views), "meshes": n_mesh,
                         "dofs": list(dofs), "seed": seed, "out_bandwidth": out_bandwidth,
                         "views_per_mesh": VIEWS, "partners": PARTNERS,
                         "symmetric_classes": list(SYMMETRIC_CLASSES)},
              "table": table, "confidence": confidence_summary(errors), "errors": errors}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(files["json"], overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    with atomic_path(files["md"], overwrite=True) as tmp:
        tmp.write_text(markdown(result), encoding="utf-8")
    return result


def _fmt(x: float, pct: bool = False) -> str:
    if not math.isfinite(x):
        return "—"
    return f"{100 * x:.1f}" if pct else f"{x:.1f}"


def markdown(result: dict[str, Any]) -> str:
    """Overall tables per DOF and protocol (raw and up to symmetry), then per-class medians."""
    c = result["config"]
    lines = [f"# Pose on {c['meshes']} ModelNet10 test meshes (seed {c['seed']})", "",
             f"embedder `{c['embedder']}`, regression `{c['regression']}`; errors in degrees, Acc in %; "
             f"\"sym\": up to the half turn about the up axis for {', '.join(c['symmetric_classes'])}.", ""]
    table = result["table"]
    for dof in c["dofs"]:
        for protocol in PROTOCOLS:
            rows = [r for r in table if r["dof"] == dof and r["protocol"] == protocol and r["class"] == "all"]
            if not rows:
                continue
            lines += [f"## {dof}DOF, {protocol}", "",
                      "| method | median | Acc@15 | Acc@30 | median (sym) | Acc@15 (sym) | Acc@30 (sym) "
                      "| n |", "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {r['method']} | {_fmt(r['median_deg'])} | {_fmt(r['acc15'], True)} | "
                      f"{_fmt(r['acc30'], True)} | {_fmt(r['sym_median_deg'])} | "
                      f"{_fmt(r['sym_acc15'], True)} | {_fmt(r['sym_acc30'], True)} | {r['n']} |"
                      for r in rows]
            per = [r for r in table if r["dof"] == dof and r["protocol"] == protocol and r["class"] != "all"]
            classes = sorted({r["class"] for r in per})
            methods = list(dict.fromkeys(r["method"] for r in per))
            lines += ["", "Median error (sym) per class:", "",
                      "| method | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
            for m in methods:
                cells = {r["class"]: _fmt(r["sym_median_deg"]) for r in per if r["method"] == m}
                lines.append(f"| {m} | " + " | ".join(cells.get(k, "—") for k in classes) + " |")
            lines.append("")
    conf = result.get("confidence") or []
    if conf:
        lines += ["## Is the confidence informative?", "",
                  "AUROC of the correlation's confidence for \"raw error < 15°\" (0.5: uninformative); "
                  "Acc@15 (%) of the more and the less confident half; share flagged symmetric and the "
                  "Acc@15 of flagged and unflagged answers.", "",
                  "| DOF | protocol | method | AUROC | Acc@15 confident half | other half | flagged | "
                  "Acc@15 flagged | unflagged |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dof']} | {r['protocol']} | {r['method']} | {r['auroc']:.3f} | "
                  f"{_fmt(r['acc15_confident_half'], True)} | {_fmt(r['acc15_other_half'], True)} | "
                  f"{_fmt(r['flagged'], True)} | {_fmt(r['acc15_flagged'], True)} | "
                  f"{_fmt(r['acc15_unflagged'], True)} |" for r in conf]
        lines.append("")
    pub = "; ".join(f"{k} Acc@15 {a:.3f}, median {m}°" for k, (a, m) in PUBLISHED.items())
    lines += [f"Published absolute pose on ModelNet10: {pub}. Those are 224 px renders read by ImageNet-"
              "pretrained ResNets; ours are 64² renders and networks trained from scratch, so the figures "
              "are not directly comparable.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m equivision.experiments.pose",
                                description="Relative and absolute pose on ModelNet10 test meshes: the image "
                                "embedding against regression, random rotations and the teacher's maps.")
    p.add_argument("out", help="output folder (results.json, results.md)")
    p.add_argument("--embedder", required=True, help="image-to-sphere run folder or packaged name")
    p.add_argument("--regression", help="pose-regression run folder")
    p.add_argument("--test-views", default="runs/views-mn10-test-s1")
    p.add_argument("--train-views", default="runs/views-mn10-train-s1", help="for the category templates")
    p.add_argument("--limit", type=int, default=None, help="only N test meshes (seeded, classes in turn)")
    p.add_argument("--dof", type=int, choices=(2, 3), default=None, help="one DOF (default: 3 and 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-bandwidth", type=int, default=None,
                   help="correlation grid bandwidth before refinement (default: the maps')")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.out.startswith("-"):
        p.error(f"OUT must be a folder, got the flag {args.out!r}")
    torch.set_num_threads(1)
    try:
        res = run(args.out, embedder=args.embedder, regression=args.regression, test_views=args.test_views,
                  train_views=args.train_views, limit=args.limit,
                  dofs=(3, 2) if args.dof is None else (args.dof,), seed=args.seed,
                  out_bandwidth=args.out_bandwidth, overwrite=args.overwrite)
    except EquivisionError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
