"""Novel-view synthesis on held-out ModelNet10 meshes: the rotated spherical embedding against
three baselines, by rotation angle.

``python -m equivision.experiments.view_synthesis OUT --embedder RUN --decoder RUN
[--baseline RUN] [--test-views DIR] [--train-views DIR] [--meshes 40] [--seed 0]``

For each of ``--meshes`` test meshes (seeded, classes in turn), view 0 of the test view
dataset is the input (pose ``R₀``); for each angle (15°, 45°, 90°, 180°) about a seeded
uniformly random axis, ``Q`` turns the object and the truth is the render of the mesh in pose
``Q·R₀`` (:func:`equivision.render.render_views`, the dataset's camera). Methods:

* ``embedding``: ``Γ(Q·Ψ(I))`` (:func:`equivision.models.synthesis.synthesize`);
* ``input``: the input view itself (no change at all);
* ``retrieval``: the training mesh of the *same class* whose canonical teacher maps are
  nearest (area-weighted L2) to the input's embedding turned back to the canonical pose,
  ``rotate(Ψ(I), R₀ᵀ)``, rendered in the target pose ``Q·R₀``. It is given the true class and
  the true poses (an oracle the other methods do not get);
* ``baseline``: the Tatarchenko-style network (:mod:`equivision.models.view_baseline`) given
  ``I`` and ``Q``, when ``--baseline`` is given.

Metrics, on the shading channel with data range 1: PSNR and SSIM (``skimage.metrics``,
7 × 7 Gaussian-free window) over the whole image, and over the union of the true and the
predicted silhouette (``*_region``: PSNR of the pixels in it, the mean of the SSIM map over
it); and the silhouette IoU (both thresholded at 0.5). Written: ``results.json`` (every row
and the table), ``results.md`` (the table by angle) and ``figure.png`` (inputs, two
embedding channels before and after a 90° turn, outputs and truths). The json and markdown
also compare the embedding with each other method mesh by mesh (:func:`paired`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from equivision.errors import ConfigError, EquivisionError

ANGLES = (15.0, 45.0, 90.0, 180.0)
METRICS = ("psnr", "psnr_region", "ssim", "ssim_region", "iou")


def image_metrics(pred: Tensor, truth: Tensor, pred_sil: Tensor, true_sil: Tensor) -> dict[str, float]:
    """PSNR/SSIM of shading images ``(S, S)`` in ``[0, 1]`` over the whole image and over the
    union of the silhouettes ``(S, S)``, and the silhouette IoU (module docstring)."""
    from skimage.metrics import structural_similarity

    p = pred.clamp(0, 1).double().numpy()
    t = truth.clamp(0, 1).double().numpy()
    ps, ts = pred_sil.numpy() > 0.5, true_sil.numpy() > 0.5
    union = ps | ts
    ssim, smap = structural_similarity(p, t, data_range=1.0, full=True)
    err = (p - t) ** 2

    def psnr(mse: float) -> float:
        return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)

    inter = float((ps & ts).sum())
    return {"psnr": psnr(float(err.mean())),
            "psnr_region": psnr(float(err[union].mean())) if union.any() else float("nan"),
            "ssim": float(ssim), "ssim_region": float(smap[union].mean()) if union.any() else float("nan"),
            "iou": inter / float(union.sum()) if union.any() else 1.0}


def _axis(seed: int, index: int) -> Tensor:
    from equivision.data.seeds import stream_seed

    g = torch.Generator().manual_seed(stream_seed(seed, index))
    v = torch.randn(3, generator=g, dtype=torch.float64)
    return v / v.norm()


def select_meshes(labels: list[int], n: int, seed: int) -> list[int]:
    """``n`` mesh indices, seeded: a permutation within each class, classes taken in turn."""
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i in torch.randperm(len(labels), generator=g).tolist():
        by_class.setdefault(labels[i], []).append(i)
    out: list[int] = []
    queues = [by_class[c] for c in sorted(by_class)]
    while len(out) < min(n, len(labels)):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def _weighted_dist(a: Tensor, b: Tensor) -> Tensor:
    """Area-weighted squared L2 between maps ``(C, 2b, 2b)`` and ``(M, C, 2b, 2b)`` → ``(M,)``."""
    n = a.shape[-2]
    theta = math.pi * (2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n)
    w = theta.sin()[:, None]
    return (((b.double() - a.double()) ** 2) * w).sum(dim=(-3, -2, -1))


def _canonical(train: Any) -> tuple[Tensor, Tensor]:
    """``(maps (M, C, 2b, 2b), labels (M,))`` of every training mesh."""
    maps, labels = [], []
    shards = len(train.manifest["shards"])
    for s in range(shards):
        sh = train.shard(s)
        maps.append(sh["canonical"].float())
        labels.append(sh["labels"])
    return torch.cat(maps), torch.cat(labels)


def _paths(names: list[str], split: str) -> dict[str, Path]:
    from equivision.data.registry import list_entries

    entries = {e.name: e.path for e in list_entries("modelnet10", split=split)}
    missing = [n for n in names if n not in entries]
    if missing:
        raise ConfigError(f"{len(missing)} meshes of the view dataset are not in ModelNet10's {split} split "
                          f"(e.g. {missing[0]}); the experiment renders the truths from the meshes")
    return {n: entries[n] for n in names}


def _task_config(source: str) -> dict[str, Any]:
    from equivision.models.synthesis import run_config_of

    return run_config_of(source).get("task") or {}


def run(out: str | Path, *, embedder: str, decoder: str, baseline: str | None = None,
        test_views: str = "runs/views-mn10-test-s1", train_views: str = "runs/views-mn10-train-s1",
        meshes: int = 40, seed: int = 0, angles: tuple[float, ...] = ANGLES, overwrite: bool = False,
        figure_meshes: int = 4, meshes_by_name: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Run the experiment into folder ``out``; returns what ``results.json`` holds.
    ``meshes_by_name``: the mesh of a view dataset's mesh name (default: ModelNet10's files)."""
    from equivision.groups.spatial import SO3
    from equivision.io import OutputSpec, atomic_path, check_outputs, load_mesh
    from equivision.models import load
    from equivision.models.synthesis import decode_rotated, embed, load_synthesizer
    from equivision.render import render_views
    from equivision.sphere.rotate import rotate
    from equivision.tasks.views import ViewDataset

    out = Path(out)
    files = {k: out / f for k, f in (("json", "results.json"), ("md", "results.md"), ("fig", "figure.png"))}
    if out.exists():
        check_outputs([OutputSpec(f"OUT/{p.name}", p) for p in files.values()], overwrite=overwrite)
    else:  # created once the inputs are checked; its parent must take it
        check_outputs([OutputSpec("OUT", out)], overwrite=False)
    if meshes < 1:
        raise ConfigError(f"--meshes must be >= 1, got {meshes}")
    synth = load_synthesizer(decoder, embedder=embedder)
    if not {"shading", "silhouette"} <= set(synth.output_channels):
        raise ConfigError(f"the decoder writes {synth.output_channels}; the metrics need shading and "
                          "silhouette")
    base = base_in = None
    if baseline is not None:
        base = load(baseline, model="view_baseline")
        base_task = _task_config(baseline)
        base_in = list(base_task.get("channels") or ["shading", "silhouette", "depth"][:base.cfg.in_channels])
        if list(base_task.get("targets") or []) not in ([], ["shading", "silhouette"]):
            raise ConfigError(f"the baseline writes {base_task.get('targets')}; expected shading, silhouette")
    scale = float(_task_config(embedder).get("target_scale", 1.0))
    test, train = ViewDataset(test_views), ViewDataset(train_views)
    chans = list(test.manifest["config"]["channels"])
    for need in synth.input_channels + (base_in or []) + ["shading", "silhouette"]:
        if need not in chans:
            raise ConfigError(f"{test_views} has channels {chans}; the networks need {need!r}")
    size = int(test.manifest["config"]["image_size"])
    names, labels = list(test.manifest["names"]), [int(x) for x in test.manifest["labels"]]
    chosen = select_meshes(labels, meshes, seed)
    train_names = list(train.manifest["names"])
    if meshes_by_name is None:
        paths = {**_paths(train_names, "train"), **_paths([names[m] for m in chosen], "test")}

        def meshes_by_name(name: str) -> Any:
            return load_mesh(paths[name], dtype=torch.float64)

    canon, canon_labels = _canonical(train)
    canon = canon * scale
    ic = [chans.index(c) for c in synth.input_channels]
    sh, si = chans.index("shading"), chans.index("silhouette")
    osh, osi = synth.output_channels.index("shading"), synth.output_channels.index("silhouette")
    rows: list[dict[str, Any]] = []
    fig_rows: list[dict[str, Tensor]] = []
    render_check = 0.0
    for n_mesh, m in enumerate(chosen):
        image, _, r0, label = test[m * test.views]
        r0 = r0.double()
        mesh = meshes_by_name(names[m])
        qs = torch.stack([SO3.from_axis_angle(_axis(seed, n_mesh * len(angles) + a),
                                              torch.tensor(math.radians(t), dtype=torch.float64))
                          for a, t in enumerate(angles)])
        poses = qs @ r0
        truth = render_views(mesh, torch.cat([r0[None], poses]), size=size,
                             channels=["shading", "silhouette"])
        render_check = max(render_check, float((truth[0, 0] - image[sh]).abs().max()))
        truth = truth[1:]
        e = embed(image[ic], synth.embedder)
        pred = {"embedding": decode_rotated(e, qs, synth.decoder)}
        pred["input"] = image[[sh, si]][None].expand(len(angles), -1, -1, -1)
        same = (canon_labels == int(label)).nonzero()[:, 0]
        query = rotate(e.double(), r0.T)
        nearest = int(same[int(_weighted_dist(query, canon[same]).argmin())])
        other = meshes_by_name(train_names[nearest])
        pred["retrieval"] = render_views(other, poses, size=size, channels=["shading", "silhouette"])
        if base is not None:
            x = image[[chans.index(c) for c in base_in]][None].expand(len(angles), -1, -1, -1)
            with torch.no_grad():
                pred["baseline"] = base(x.contiguous(), qs.float())
        for method, p in pred.items():
            ks, kv = (osh, osi) if method in ("embedding", "baseline") else (0, 1)
            for a, t in enumerate(angles):
                rows.append({"mesh": names[m], "label": int(label), "angle": t, "method": method,
                             "retrieved": train_names[nearest] if method == "retrieval" else None,
                             **image_metrics(p[a, ks], truth[a, 0], p[a, kv], truth[a, 1])})
        if n_mesh < figure_meshes:
            a90 = angles.index(90.0) if 90.0 in angles else len(angles) - 1
            fig_rows.append({"input": image[sh], "emb": e, "emb_rot": rotate(e.double(), qs[a90]).float(),
                             "out": pred["embedding"][a90, osh], "truth": truth[a90, 0],
                             "angle": torch.tensor(angles[a90])})
    table = summarize(rows, angles)
    pairs = paired(rows, angles, seed=seed)
    result = {"config": {"embedder": embedder, "decoder": decoder, "baseline": baseline,
                         "test_views": test_views, "train_views": train_views, "meshes": len(chosen),
                         "seed": seed, "angles": list(angles)},
              "render_check_max_abs": render_check, "table": table, "paired": pairs, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(files["json"], overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    with atomic_path(files["md"], overwrite=True) as tmp:
        tmp.write_text(markdown(table, result["config"]) + paired_markdown(pairs), encoding="utf-8")
    save_figure(files["fig"], fig_rows)
    return result


def summarize(rows: list[dict[str, Any]], angles: tuple[float, ...]) -> list[dict[str, Any]]:
    """Mean of every metric per ``(angle, method)`` (non-finite values left out, counted)."""
    table = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for t in angles:
        for method in methods:
            sel = [r for r in rows if r["angle"] == t and r["method"] == method]
            entry: dict[str, Any] = {"angle": t, "method": method, "n": len(sel)}
            for k in METRICS:
                vals = [r[k] for r in sel if math.isfinite(r[k])]
                entry[k] = float(np.mean(vals)) if vals else float("nan")
            table.append(entry)
    return table


def paired(rows: list[dict[str, Any]], angles: tuple[float, ...], *, method: str = "embedding",
           metrics: tuple[str, ...] = ("psnr", "ssim", "iou"), resamples: int = 2000,
           seed: int = 0) -> list[dict[str, Any]]:
    """``method`` against each other method on the same meshes, per angle and metric: the mean
    per-mesh difference (``method`` − other), its 95 % percentile-bootstrap interval over
    meshes (``resamples`` draws, seeded) and the share of meshes where ``method`` is higher.
    Meshes where either value is not finite are left out (``n`` counts the rest). A table's
    means can hide that a method wins on average through a few meshes; this shows it."""
    others = [m for m in dict.fromkeys(r["method"] for r in rows) if m != method]
    gen = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for t in angles:
        mine = {r["mesh"]: r for r in rows if r["angle"] == t and r["method"] == method}
        for other in others:
            theirs = {r["mesh"]: r for r in rows if r["angle"] == t and r["method"] == other}
            common = [m for m in mine if m in theirs]
            for k in metrics:
                d = np.array([mine[m][k] - theirs[m][k] for m in common
                              if math.isfinite(mine[m][k]) and math.isfinite(theirs[m][k])])
                entry: dict[str, Any] = {"angle": t, "against": other, "metric": k, "n": int(d.size)}
                if d.size:
                    boot = d[gen.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
                    lo, hi = np.percentile(boot, [2.5, 97.5])
                    entry.update(mean=float(d.mean()), low=float(lo), high=float(hi),
                                 wins=float((d > 0).mean()))
                else:
                    entry.update(mean=float("nan"), low=float("nan"), high=float("nan"), wins=float("nan"))
                out.append(entry)
    return out


def paired_markdown(pairs: list[dict[str, Any]], method: str = "embedding") -> str:
    if not pairs:
        return ""
    head = (f"\n## Paired, per mesh: {method} minus each other method\n\n"
            "Mean difference [95 % bootstrap interval over meshes] and the share of meshes where "
            f"{method} is higher.\n\n"
            f"| angle | against | metric | difference | interval | {method} higher | n |\n"
            "|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['angle']:g}° | {r['against']} | {r['metric']} | {r['mean']:+.3f} | "
                   f"[{r['low']:+.3f}, {r['high']:+.3f}] | {100 * r['wins']:.1f} % | {r['n']} |\n"
                   for r in pairs)
    return head + body


def markdown(table: list[dict[str, Any]], config: dict[str, Any]) -> str:
    head = ("| angle | method | PSNR | PSNR (silhouettes) | SSIM | SSIM (silhouettes) | IoU | n |\n"
            "|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['angle']:g}° | {r['method']} | {r['psnr']:.2f} | {r['psnr_region']:.2f} | "
                   f"{r['ssim']:.3f} | {r['ssim_region']:.3f} | {r['iou']:.3f} | {r['n']} |\n" for r in table)
    return (f"# Novel-view synthesis, {config['meshes']} ModelNet10 test meshes (seed {config['seed']})\n\n"
            f"embedder `{config['embedder']}`, decoder `{config['decoder']}`, baseline "
            f"`{config['baseline']}`; PSNR in dB on the shading channel; \"silhouettes\": over the union of "
            "the true and the predicted silhouette; retrieval is given the true class and poses.\n\n"
            + head + body)


def save_figure(path: Path, rows: list[dict[str, Tensor]]) -> None:
    """Per mesh: input, two embedding channels, the same after the turn, output, truth."""
    from equivision.figures._mpl import pyplot
    from equivision.figures._mpl import save_figure as save

    plt = pyplot()
    titles = ["input", "embedding ch 0", "embedding ch 1", "rotated ch 0", "rotated ch 1", "output", "truth"]
    n = max(len(rows), 1)
    fig, axes = plt.subplots(n, len(titles), figsize=(1.6 * len(titles), 1.7 * n), squeeze=False)
    for i, r in enumerate(rows):
        pics = [r["input"], r["emb"][0], r["emb"][1], r["emb_rot"][0], r["emb_rot"][1], r["out"], r["truth"]]
        for k, (ax, pic) in enumerate(zip(axes[i], pics, strict=True)):
            grey = k in (0, 5, 6)
            ax.imshow(pic.clamp(0, 1).numpy() if grey else pic.numpy(), cmap="gray" if grey else "RdBu_r",
                      vmin=0 if grey else None, vmax=1 if grey else None)
            if i == 0:
                ax.set_title(titles[k] + (f" ({float(r['angle']):g}°)" if k >= 3 else ""), fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    save(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m equivision.experiments.view_synthesis",
                                description="Novel-view synthesis by rotating the spherical embedding, "
                                "against the input view, retrieval and a Tatarchenko-style baseline.")
    p.add_argument("out", help="output folder (results.json, results.md, figure.png)")
    p.add_argument("--embedder", required=True, help="image_to_sphere run folder or packaged name")
    p.add_argument("--decoder", required=True, help="view-synthesis run folder or packaged name")
    p.add_argument("--baseline", help="view-synthesis-baseline run folder")
    p.add_argument("--test-views", default="runs/views-mn10-test-s1")
    p.add_argument("--train-views", default="runs/views-mn10-train-s1")
    p.add_argument("--meshes", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.out.startswith("-"):
        p.error(f"OUT must be a folder, got the flag {args.out!r}")
    try:
        res = run(args.out, embedder=args.embedder, decoder=args.decoder, baseline=args.baseline,
                  test_views=args.test_views, train_views=args.train_views, meshes=args.meshes,
                  seed=args.seed, overwrite=args.overwrite)
    except EquivisionError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(markdown(res["table"], res["config"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
