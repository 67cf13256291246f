"""Novel-view synthesis: the rotation convention of the pipeline against the view dataset's
ground-truth maps, identity and round-trip checks, the three training tasks on a tiny view
dataset (with a tiny embedder trained into a run folder), and their config checks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from equivision.cli.synthesize import GIF_FRAME_MS, _save_gif
from equivision.data.procedural import make_shape
from equivision.errors import CheckpointError, ConfigError, ShapeError
from equivision.groups import SO3
from equivision.models import load
from equivision.models.sphere_to_image import SphereToImage, SphereToImageConfig
from equivision.pipelines.synthesize import (
    band_limit,
    decode_rotated,
    load_synthesizer,
    synthesize,
    turntable_rotations,
)
from equivision.tasks.view_synthesis import ViewPairs, ViewSynthesisTaskConfig, silhouette_iou
from equivision.tasks.views import ViewConfig, ViewDataset, build_view_dataset, sources_from_meshes
from equivision.training import get_task, train

pytestmark = pytest.mark.xdist_group("view_synthesis")
B = 8  # teacher input bandwidth; its stage1 maps are 4 channels at b = 4


def _train_cfg(steps: int) -> dict:
    return {"steps": steps, "batch_size": 4, "lr": 3e-3, "eval_every": steps, "log_every": 1,
            "checkpoint_every": steps, "seed": 0, "device": "cpu", "warmup_steps": 0}


EMBEDDER = {"in_channels": 3, "image_size": 64, "bandwidth": 4, "out_channels": 4, "width": 4,
            "max_width": 8, "code_dim": 16}
DECODER = {"in_channels": 4, "bandwidth": 4, "out_channels": 2, "image_size": 64, "width": 4,
           "max_width": 8, "code_dim": 16}


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> Path:
    from equivision.models.spherical_cnn import SphericalCNN, SphericalCNNConfig

    torch.manual_seed(3)
    teacher = SphericalCNN(SphericalCNNConfig(stem_channels=4, channels=[4], bandwidths=[B, 4])).eval()
    meshes = [(f"{fam}-1", i, make_shape(fam, 1).mesh(16))
              for i, fam in enumerate(("box", "cone", "capsule"))]
    out = tmp_path_factory.mktemp("vs") / "views"
    build_view_dataset(out, sources_from_meshes(meshes), teacher,
                       ViewConfig(views=4, dof=3, bandwidth=B, layer="stage1", shard_size=2, seed=1),
                       show_progress=False)
    return out


@pytest.fixture(scope="module")
def embedder_run(views, tmp_path_factory) -> Path:
    """A tiny image network trained for 2 steps: a real run folder to load as the embedder."""
    run = tmp_path_factory.mktemp("vs") / "embedder"
    train(get_task("image-to-sphere"), {"train": _train_cfg(2), "task": {
        "train_views": str(views), "eval_views": str(views), "model": EMBEDDER}}, run, console=None)
    return run


class _Maps(nn.Module):
    """A stand-in decoder that returns the maps it is given (to see what synthesis feeds it)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return x


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_rotation_convention_matches_the_ground_truth_maps(views) -> None:
    # item i shows R_i·M with target Φ(R_i·M) = rotate(Φ(M), R_i); turning it by Q = R_j R_iᵀ
    # must give the target of view j (R_j·M = Q·R_i·M), and the transpose must not
    ds = ViewDataset(views)
    for i, j in ((0, 1), (0, 3), (5, 6)):
        _, t_i, r_i, _ = ds[i]
        _, t_j, r_j, _ = ds[j]
        q = r_j.double() @ r_i.double().T
        change = float((t_j - t_i).norm())  # the maps share a large constant part: measure against the change
        got = decode_rotated(t_i, q[None], _Maps())[0]
        assert float((got - t_j).norm()) < 1e-3 * change, (i, j)
        wrong = decode_rotated(t_i, q.T[None], _Maps())[0]
        assert float((wrong - t_j).norm()) > 0.2 * change


def test_identity_and_round_trip(views, embedder_run) -> None:
    torch.manual_seed(0)
    emb = load(embedder_run)
    dec = SphereToImage(SphereToImageConfig(**DECODER)).eval()
    image = ViewDataset(views)[2][0]
    eye = torch.eye(3, dtype=torch.float64)[None]
    with torch.no_grad():
        direct = dec(band_limit(emb(image[None])))
    assert torch.allclose(synthesize(image, eye, emb, dec), direct, atol=1e-5)
    # rotating by Q then by Qᵀ gives back the band-limited embedding (to band-limit precision)
    e = band_limit(emb(image[None]).detach())[0]
    q = SO3().random(3, seed=4, dtype=torch.float64)
    from equivision.sphere.rotate import rotate

    there = rotate(e.double(), q[:, None])
    back = torch.stack([rotate(there[n], q[n].T) for n in range(3)])
    assert _rel(back, e.double().expand_as(back)) < 1e-6
    views_out = decode_rotated(e, q, dec)
    assert views_out.shape == (3, 2, 64, 64)
    assert not torch.allclose(views_out[0], views_out[1], atol=1e-4)


def test_synthesize_checks(views, embedder_run) -> None:
    emb = load(embedder_run)
    dec = SphereToImage(SphereToImageConfig(**{**DECODER, "in_channels": 8})).eval()
    image = ViewDataset(views)[0][0]
    with pytest.raises(CheckpointError, match="8 maps"):
        synthesize(image, torch.eye(3)[None], emb, dec)
    dec = SphereToImage(SphereToImageConfig(**DECODER)).eval()
    with pytest.raises(ShapeError, match=r"\(3, 64, 64\)"):
        synthesize(image[:1], torch.eye(3)[None], emb, dec)
    with pytest.raises(ShapeError, match="rotations"):
        synthesize(image, torch.eye(3), emb, dec)
    from equivision.errors import InvalidInputError, NotARotationError

    with pytest.raises(NotARotationError):
        synthesize(image, 2 * torch.eye(3)[None], emb, dec)
    with pytest.raises(InvalidInputError, match="finite"):
        synthesize(image * float("nan"), torch.eye(3)[None], emb, dec)


def test_turntable_rotations() -> None:
    r = turntable_rotations(4)
    assert r.shape == (8, 3, 3)
    assert torch.allclose(r[0], torch.eye(3, dtype=torch.float64)) and torch.allclose(r[4], r[0])
    # a quarter turn about +z sends +x to +y; about +x sends +y to +z
    assert torch.allclose(r[1] @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                          torch.tensor([0, 1.0, 0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(r[5] @ torch.tensor([0, 1.0, 0], dtype=torch.float64),
                          torch.tensor([0, 0, 1.0], dtype=torch.float64), atol=1e-12)


def test_silhouette_iou() -> None:
    a = torch.zeros(2, 4, 4)
    a[0, :2] = 1
    b = torch.zeros(2, 4, 4)
    b[0, :1] = 1
    assert float(silhouette_iou(a, b)) == pytest.approx((0.5 + 1.0) / 2)


def _eval(run: Path, metric: str) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["value"]) for r in csv.DictReader(f)
                if r["split"] == "eval" and r["metric"] == metric]


def test_view_synthesis_trains_and_loads(tmp_path, views, embedder_run) -> None:
    run = tmp_path / "vs"
    task = {"train_views": str(views), "eval_views": str(views), "embedder": str(embedder_run),
            "model": DECODER}
    train(get_task("view-synthesis"), {"train": _train_cfg(6), "task": task}, run, console=None)
    l1 = _eval(run, "l1")
    assert l1 and all(v == v for v in l1) and _eval(run, "iou")
    s = load_synthesizer(run)  # the decoder's config names its embedder
    assert s.output_channels == ["shading", "silhouette"]
    assert s.input_channels == ["shading", "silhouette", "depth"]
    out = s(ViewDataset(views)[0][0], turntable_rotations(2))
    assert out.shape == (4, 2, 64, 64)
    # `equivision eval` builds the datasets (and with them the embedder) without building the model
    from equivision.training.trainer import evaluate_run

    step, metrics = evaluate_run("view-synthesis", run)
    assert step == 6 and metrics["l1"] == pytest.approx(l1[-1], rel=1e-4)


def test_teacher_and_baseline_tasks_train(tmp_path, views) -> None:
    base = {"train_views": str(views), "eval_views": str(views)}
    train(get_task("view-synthesis-teacher"), {"train": _train_cfg(3), "task": {**base, "model": DECODER}},
          tmp_path / "t", console=None)
    assert _eval(tmp_path / "t", "l1")
    model = {"in_channels": 3, "out_channels": 2, "width": 4, "max_width": 8, "code_dim": 16,
             "rotation_dim": 8, "fusion_layers": 1}
    train(get_task("view-synthesis-baseline"), {"train": _train_cfg(3), "task": {**base, "model": model}},
          tmp_path / "b", console=None)
    assert _eval(tmp_path / "b", "l1")


def test_pairs_are_two_views_of_one_mesh(views) -> None:
    ds = ViewDataset(views)
    pairs = ViewPairs(ds, [0, 1, 2], [0, 1], fixed_seed=5)
    again = ViewPairs(ds, [0, 1, 2], [0, 1], fixed_seed=5)
    for k in range(len(pairs)):
        j = pairs.other_view(k)
        assert j != k and j // 4 == k // 4 and j == again.other_view(k)
        image, q, target = pairs[k]
        r_i, r_j = ds[k][2].double(), ds[j][2].double()
        assert torch.allclose(q.double() @ r_i, r_j, atol=1e-5)
        assert torch.equal(target, ds[j][0][:2]) and torch.equal(image, ds[k][0])
    assert len({pairs.other_view(k) for k in range(4)}) > 1


def test_config_checks(views, embedder_run) -> None:
    task = get_task("view-synthesis")
    good = {"train_views": str(views), "eval_views": str(views), "embedder": str(embedder_run)}
    with pytest.raises(ConfigError, match="bandwidth"):
        task.datasets(ViewSynthesisTaskConfig(**good, model=SphereToImageConfig(**{**DECODER,
                                                                                    "bandwidth": 8})))
    with pytest.raises(ConfigError, match="8 at bandwidth"):
        task.datasets(ViewSynthesisTaskConfig(**good, model=SphereToImageConfig(**{**DECODER,
                                                                                    "in_channels": 8})))
    with pytest.raises(ConfigError, match="image channels"):
        task.datasets(ViewSynthesisTaskConfig(**{**good, "channels": ["shading"]},
                                              model=SphereToImageConfig(**DECODER)))
    with pytest.raises(ConfigError, match="targets"):
        ViewSynthesisTaskConfig(**{**good, "targets": ["shading"]}, model=SphereToImageConfig(**DECODER))
    with pytest.raises(ConfigError, match="order"):
        task.datasets(ViewSynthesisTaskConfig(**{**good, "targets": ["silhouette", "shading"]},
                                              model=SphereToImageConfig(**DECODER)))
    from equivision.errors import UnknownModelError

    with pytest.raises(UnknownModelError):
        task.datasets(ViewSynthesisTaskConfig(**{**good, "embedder": "no_such_embedder"},
                                              model=SphereToImageConfig(**DECODER)))
    teacher = get_task("view-synthesis-teacher")
    with pytest.raises(ConfigError, match="4 maps at bandwidth 4"):
        teacher.datasets(teacher.config_cls(train_views=str(views), eval_views=str(views),
                                            model=SphereToImageConfig(**{**DECODER, "in_channels": 8})))

    for bad in (-0.1, float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ConfigError, match="ssim_weight"):
            ViewSynthesisTaskConfig(**{**good, "ssim_weight": bad}, model=SphereToImageConfig(**DECODER))


def test_ssim_term_of_the_loss(views, embedder_run) -> None:
    from equivision.metrics.images import ssim
    from equivision.tasks.view_synthesis import _metrics

    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 2, 16, 16, generator=g, requires_grad=True)
    target = torch.rand(2, 2, 16, 16, generator=g)
    l1, m = _metrics(pred, target, ("shading", "silhouette"))
    assert "ssim" not in m and float(l1) == pytest.approx(float((pred - target).abs().mean()))
    loss, m = _metrics(pred, target, ("shading", "silhouette"), 0.5)
    s = float(ssim(pred, target).mean())
    assert float(m["ssim"]) == pytest.approx(s)
    assert float(loss) == pytest.approx(float(l1) + 0.5 * (1 - s))
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    # wired through the task: a config with the term trains and logs it
    task = get_task("view-synthesis")
    cfg = ViewSynthesisTaskConfig(train_views=str(views), eval_views=str(views), embedder=str(embedder_run),
                                  ssim_weight=0.2, model=SphereToImageConfig(**DECODER))
    train_set, _ = task.datasets(cfg)
    batch = [torch.stack(t) for t in zip(*[train_set[i] for i in range(2)], strict=True)]
    from equivision.models import build_model

    net = build_model("sphere_to_image", DECODER)
    loss, m = task.loss(net, batch)
    assert "ssim" in m and float(loss) > float(m["l1"])

@pytest.fixture(scope="module")
def decoder_run(views, embedder_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vs") / "decoder"
    task = {"train_views": str(views), "eval_views": str(views), "embedder": str(embedder_run),
            "model": DECODER}
    train(get_task("view-synthesis"), {"train": _train_cfg(2), "task": task}, run, console=None)
    return run


def test_gif_has_one_frame_per_image(tmp_path) -> None:
    from PIL import Image

    frames = torch.rand(36, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    _save_gif(tmp_path / "a.gif", frames)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 36 and im.size == (34, 16)


def _cli(capsys, *argv: str) -> tuple[int, str]:
    from equivision.cli import main

    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_cli_writes_views_grid_and_gif(tmp_path, capsys, views, decoder_run) -> None:
    from PIL import Image

    from equivision.figures.images import save_image_grid

    view = tmp_path / "view.png"
    # the layout `equivision render` writes, with the tiles' channel names
    save_image_grid(view, ViewDataset(views)[0][0][None],
                    text={"equivision-strip": "shading,silhouette,depth"})
    code, err = _cli(capsys, "synthesize", str(view), "--model", str(decoder_run),
                     "-r", "axis-angle 0,0,1 90", "-r", "identity", "-o", str(tmp_path / "new.png"))
    assert code == 0, err
    with Image.open(tmp_path / "new.png") as im:
        assert im.size == (4 * 64 + 3 * 2, 64)  # 2 views × 2 channels in one row
    code, err = _cli(capsys, "synthesize", str(view), "--model", str(decoder_run), "--views", "3",
                     "-o", str(tmp_path / "grid.png"), "--gif", str(tmp_path / "t.gif"))
    assert code == 0, err
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (6 * 64 + 5 * 2, 2 * 64 + 2)
    with Image.open(tmp_path / "t.gif") as im:
        # Pillow merges equal consecutive frames (a barely trained decoder makes some): the
        # total duration still counts 36 frames
        total = 0
        for k in range(im.n_frames):
            im.seek(k)
            total += im.info["duration"]
        assert total == 36 * GIF_FRAME_MS and im.size == (2 * 64 + 2, 64)
    # the same outputs again: refused without --overwrite, replaced with it
    again = ["synthesize", str(view), "--model", str(decoder_run), "-o", str(tmp_path / "new.png")]
    code, err = _cli(capsys, *again)
    assert code == 2 and err.count("\n") == 1 and "exists" in err
    code, err = _cli(capsys, *again, "--overwrite")
    assert code == 0, err


@pytest.mark.parametrize(("args", "match"), [
    (["-r", "axis-angel 0,0,1 90", "-o", "{tmp}/a.png"], "accepted forms"),
    (["-r", "axis-angle 0,0,1", "-o", "{tmp}/a.png"], "takes 4 numbers"),
    (["-r", "identity", "--views", "4", "-o", "{tmp}/a.png"], "not both"),
    ([], "--gif"),
    (["-o", "{tmp}/a.jpg"], ".png"),
    (["--views", "0", "-o", "{tmp}/a.png"], "--views"),
    (["--model", "no_such_decoder", "-o", "{tmp}/a.png"], "no_such_decoder"),
    (["--model", "{embedder}", "-o", "{tmp}/a.png"], "sphere_to_image"),
])
def test_cli_bad_input_one_line(tmp_path, capsys, views, decoder_run, embedder_run, args, match) -> None:
    from equivision.figures.images import save_image_grid

    view = tmp_path / "view.png"
    save_image_grid(view, ViewDataset(views)[0][0][None])
    argv = [a.format(tmp=tmp_path, embedder=embedder_run) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(decoder_run)]
    code, err = _cli(capsys, "synthesize", str(view), *argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error:") and match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.png"]  # nothing written


def test_cli_bad_view_files(tmp_path, capsys, views, decoder_run) -> None:
    from equivision.figures.images import save_image_grid

    small = tmp_path / "small.png"
    # shading and silhouette where the embedder also reads depth
    save_image_grid(small, ViewDataset(views)[0][0][None, :2],
                    text={"equivision-strip": "shading,silhouette"})
    wide = tmp_path / "wide.png"
    save_image_grid(wide, ViewDataset(views)[0][0][None, :2])  # a picture without its channel names
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    cases = ((small, "depth cannot be derived"), (wide, "square"), (broken, "not a readable image"),
             (tmp_path / "none.png", "no such"))
    for path, match in cases:
        code, err = _cli(capsys, "synthesize", str(path), "--model", str(decoder_run),
                         "-o", str(tmp_path / "o.png"))
        assert code == 2 and err.count("\n") == 1 and match in err, err
        assert not (tmp_path / "o.png").exists()


def test_image_metrics() -> None:
    from equivision.experiments.view_synthesis import image_metrics

    g = torch.Generator().manual_seed(0)
    img = torch.rand(32, 32, generator=g)
    sil = torch.zeros(32, 32)
    sil[8:24, 8:24] = 1
    same = image_metrics(img, img, sil, sil)
    assert same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0) and same["iou"] == 1.0
    noisy = (img + 0.1 * torch.randn(32, 32, generator=g)).clamp(0, 1)
    m = image_metrics(noisy, img, sil, sil)
    assert 15 < m["psnr"] < 30 and m["ssim"] < 0.99
    shifted = torch.roll(sil, 8, dims=1)
    assert image_metrics(img, img, shifted, sil)["iou"] == pytest.approx(8 * 16 / (24 * 16))


def test_experiment_runs_and_writes_its_table(tmp_path, capsys, views, decoder_run) -> None:
    from equivision.experiments.view_synthesis import main, run

    model = {"in_channels": 3, "out_channels": 2, "width": 4, "max_width": 8, "code_dim": 16,
             "rotation_dim": 8, "fusion_layers": 1}
    base = tmp_path / "base"
    train(get_task("view-synthesis-baseline"), {"train": _train_cfg(1), "task": {
        "train_views": str(views), "eval_views": str(views), "model": model}}, base, console=None)
    meshes = {f"{fam}-1": make_shape(fam, 1).mesh(16) for fam in ("box", "cone", "capsule")}
    embedder = _task_embedder(decoder_run)
    res = run(tmp_path / "out", embedder=embedder, decoder=str(decoder_run), baseline=str(base),
              test_views=str(views), train_views=str(views), meshes=2, meshes_by_name=meshes.__getitem__)
    # the truths come from the renderer in the dataset's poses: pose R0 gives back the input view
    assert res["render_check_max_abs"] < 1e-5
    assert len(res["rows"]) == 2 * 4 * 4 and {r["method"] for r in res["rows"]} == {
        "embedding", "input", "retrieval", "baseline"}
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| 90° | retrieval |" in table and (tmp_path / "out" / "figure.png").stat().st_size > 0
    # retrieval keeps to the input's class, here one mesh each: it must return the mesh itself
    assert all(r["retrieved"] == r["mesh"] for r in res["rows"] if r["method"] == "retrieval")
    # outputs exist: refused in one line without --overwrite
    code = main([str(tmp_path / "out"), "--embedder", embedder, "--decoder", str(decoder_run),
                 "--test-views", str(views), "--train-views", str(views)])
    assert code == 2 and "exists" in capsys.readouterr().err
    assert "## Paired, per mesh" in table and len(res["paired"]) == 4 * 3 * 3  # angles × others × metrics


def test_paired_differences_win_rates_and_intervals() -> None:
    from equivision.experiments.view_synthesis import paired

    rows = []
    for i, (mine, other) in enumerate([(3.0, 1.0), (2.0, 2.5), (5.0, 1.0), (float("nan"), 0.0)]):
        for method, v in (("embedding", mine), ("input", other)):
            rows.append({"mesh": f"m{i}", "angle": 90.0, "method": method, "psnr": v, "ssim": v, "iou": v})
    out = paired(rows, (90.0,), metrics=("psnr",), resamples=500, seed=3)
    (r,) = out
    d = np.array([2.0, -0.5, 4.0])  # the NaN mesh is left out
    assert r["n"] == 3 and r["against"] == "input"
    assert r["mean"] == pytest.approx(d.mean()) and r["wins"] == pytest.approx(2 / 3)
    # the interval: the same draws, by a plain loop
    gen = np.random.default_rng(3)
    idx = gen.integers(0, 3, size=(500, 3))
    boot = [float(np.mean([d[j] for j in row])) for row in idx]
    assert r["low"] == pytest.approx(np.percentile(boot, 2.5))
    assert r["high"] == pytest.approx(np.percentile(boot, 97.5))
    assert r["low"] <= r["mean"] <= r["high"]
    # a constant difference has a degenerate interval; no common finite mesh gives NaNs
    const = [dict(x, psnr=(1.5 if x["method"] == "embedding" else 0.5)) for x in rows]
    (c,) = paired(const, (90.0,), metrics=("psnr",), resamples=50)
    assert c["low"] == pytest.approx(1.0) and c["high"] == pytest.approx(1.0) and c["wins"] == 1.0
    empty = [dict(x, psnr=float("nan")) for x in rows]
    (e,) = paired(empty, (90.0,), metrics=("psnr",))
    assert e["n"] == 0 and math.isnan(e["mean"])

def _task_embedder(run: Path) -> str:
    import json

    return json.loads((run / "config.json").read_text())["task"]["embedder"]


def test_modelnet10_configs_parse_and_sizes_match() -> None:
    import json

    from equivision.models import build_model, count_parameters
    from equivision.training.config import build_run_config

    root = Path(__file__).resolve().parents[2] / "configs"
    cfgs = {}
    names = ("view_synthesis_modelnet10", "view_synthesis_teacher_modelnet10", "view_baseline_modelnet10")
    for name in names:
        data = json.loads((root / f"{name}.json").read_text())
        task = get_task(data.pop("task_name"))
        cfgs[name] = build_run_config(task.name, task.config_cls, data).task
    i2s = json.loads((root / "image_to_sphere_modelnet10.json").read_text())["task"]["model"]
    pair = count_parameters(build_model("image_to_sphere", i2s)) + count_parameters(
        build_model("sphere_to_image", cfgs["view_synthesis_modelnet10"].model))
    base = count_parameters(build_model("view_baseline", cfgs["view_baseline_modelnet10"].model))
    assert abs(base / pair - 1) < 0.05, (base, pair)


def test_cli_default_model_missing_is_one_line(tmp_path, capsys, views, monkeypatch) -> None:
    import equivision.models as models
    from equivision.figures.images import save_image_grid

    # an installation without the packaged decoder (an empty pretrained folder)
    monkeypatch.setattr(models, "PRETRAINED_DIR", tmp_path / "no-pretrained")
    view = tmp_path / "view.png"
    save_image_grid(view, ViewDataset(views)[0][0][None])
    code, err = _cli(capsys, "synthesize", str(view), "-o", str(tmp_path / "a.png"))
    assert code == 2 and err.count("\n") == 1 and "not packaged yet" in err and "--model" in err
    assert not (tmp_path / "a.png").exists()
