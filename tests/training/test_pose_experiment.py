"""The pose experiment and its regression baseline: the 6D rotation head, the pose-regression
task training on a tiny view dataset, and the experiment end to end on three synthetic meshes
(tiny random networks: the numbers are meaningless except the teacher's upper bound, which
with exactly rotated band-limited maps must find the true relative poses)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from equivision.errors import ConfigError
from equivision.experiments import pose as exp
from equivision.groups import SO3
from equivision.io.meshes import Mesh
from equivision.models import load
from equivision.models.pose_regression import PoseRegression, PoseRegressionConfig, rotation_from_6d
from equivision.models.spherical_cnn import SphericalCNNConfig
from equivision.sphere import isht, sht
from equivision.tasks.views import ViewConfig, build_view_dataset, sources_from_meshes
from equivision.training import get_task, train

pytestmark = pytest.mark.xdist_group("pose_experiment")
B = 8


class _BandLimited(torch.nn.Module):
    """An exactly equivariant 'teacher': the band-limited part of the ray-cast signal."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = SphericalCNNConfig(bandwidths=[B], channels=[])
        self.layer_names = ["input"]

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        return isht(sht(x.double())).to(x.dtype)


def _asymmetric(ball_x: float, rod: float) -> Mesh:
    """A box with a ball off one end and a rod off the middle: no rotational symmetry."""
    import trimesh

    parts = [trimesh.creation.box((1.0, 0.6, 0.4)),
             trimesh.creation.icosphere(2, 0.25).apply_translation((ball_x, 0.1, 0.0)),
             trimesh.creation.cylinder(0.08, rod, 12).apply_translation((-0.3, 0.0, 0.55))]
    m = trimesh.util.concatenate(parts)
    return Mesh(torch.tensor(m.vertices, dtype=torch.float64), torch.tensor(m.faces, dtype=torch.long))


MESHES = {"thing/a": (0, _asymmetric(0.65, 0.8)), "thing/b": (0, _asymmetric(0.6, 0.7)),
          "other/c": (1, _asymmetric(-0.65, 0.9))}


def _train_cfg(steps: int) -> dict:
    return {"steps": steps, "batch_size": 4, "lr": 1e-3, "eval_every": steps, "log_every": 1,
            "checkpoint_every": steps, "seed": 0, "device": "cpu", "warmup_steps": 0}


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pose") / "views"
    build_view_dataset(out, sources_from_meshes([(n, lab, m) for n, (lab, m) in MESHES.items()]),
                       _BandLimited(), ViewConfig(views=2, dof=3, bandwidth=B, layer="input", shard_size=2),
                       show_progress=False)
    return out


@pytest.fixture(scope="module")
def runs(views, tmp_path_factory) -> tuple[Path, Path]:
    """Tiny embedder and regression networks trained for 2 steps into run folders."""
    root = tmp_path_factory.mktemp("pose")
    channels = 2  # the ray cast's channels
    emb = {"in_channels": 3, "image_size": 64, "bandwidth": B, "out_channels": channels, "width": 4,
           "max_width": 8, "code_dim": 16}
    train(get_task("image-to-sphere"), {"train": _train_cfg(2), "task": {
        "train_views": str(views), "eval_views": str(views), "model": emb}}, root / "emb", console=None)
    reg = {"in_channels": 3, "image_size": 64, "width": 4, "max_width": 8, "code_dim": 16, "hidden": 8}
    train(get_task("pose-regression"), {"train": _train_cfg(2), "task": {
        "train_views": str(views), "eval_views": str(views), "model": reg}}, root / "reg", console=None)
    return root / "emb", root / "reg"


def test_6d_head_gives_rotations_and_recovers_a_rotation() -> None:
    r = SO3().random(5, seed=1, dtype=torch.float64)
    x = torch.cat([r[..., :, 0], r[..., :, 1]], -1) * 3.0  # any scale, still the same frame
    assert torch.allclose(rotation_from_6d(x), r, atol=1e-12)
    y = torch.randn(7, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = rotation_from_6d(y)
    eye = torch.eye(3, dtype=torch.float64).expand(7, 3, 3)
    assert torch.allclose(q.transpose(-1, -2) @ q, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(q), torch.ones(7, dtype=torch.float64))


def test_regression_encoder_is_the_image_to_sphere_encoder() -> None:
    from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig

    net = PoseRegression(PoseRegressionConfig(width=8, max_width=32, code_dim=64, hidden=16))
    i2s = ImageToSphere(ImageToSphereConfig(in_channels=3, bandwidth=16, out_channels=32, width=8,
                                            max_width=32, code_dim=64))
    shared = ("stem", "encoder", "to_code")
    enc = {k: v.shape for k, v in i2s.state_dict().items() if k.split(".")[0] in shared}
    mine = {k: v.shape for k, v in net.state_dict().items() if k.split(".")[0] in shared}
    assert enc == mine and not any(k.startswith(("decoder", "head", "from_code")) for k in net.state_dict())
    out = net(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 3, 3)


def test_regression_task_learns_a_fixed_pose(tmp_path, views) -> None:
    """A few dozen steps on one view's pose lower the chordal loss well below its start."""
    from equivision.tasks.pose_regression import PosedViews, PoseRegressionTask, PoseRegressionTaskConfig
    from equivision.tasks.views import ViewDataset

    torch.manual_seed(0)
    cfg = PoseRegressionTaskConfig(train_views=str(views), eval_views=str(views),
                                   model=PoseRegressionConfig(width=4, max_width=8, code_dim=16, hidden=16))
    task = PoseRegressionTask()
    net = task.build_model(cfg)
    image, rot = PosedViews(ViewDataset(views), [0, 1, 2])[0]
    batch = (image[None].expand(4, -1, -1, -1).contiguous(), rot[None].expand(4, 3, 3))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    first = float(task.loss(net, batch)[0].detach())
    for _ in range(60):
        loss, _ = task.loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    assert float(task.loss(net, batch)[0]) < 0.2 * first
    with pytest.raises(ConfigError, match=r"task\.loss"):
        PoseRegressionTaskConfig(loss="l1")


def test_experiment_end_to_end_target_bound_is_exact(tmp_path, views, runs) -> None:
    emb, reg = runs
    assert isinstance(load(str(reg)), PoseRegression)
    res = exp.run(tmp_path / "out", embedder=str(emb), regression=str(reg), test_views=views,
                  train_views=views, dofs=(3, 2), meshes_by_name=lambda n: MESHES[n][1])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    md = (tmp_path / "out" / "results.md").read_text()
    assert saved["config"]["meshes"] == 3 and "3DOF, instance" in md and "2DOF, absolute" in md
    errs = res["errors"]
    for dof in (2, 3):
        for method in exp.METHODS:
            sel = [e for e in errs if e["dof"] == dof and e["method"] == method]
            n_inst = [e for e in sel if e["protocol"] == "instance"]
            n_cat = [e for e in sel if e["protocol"] == "category"]
            n_abs = [e for e in sel if e["protocol"] == "absolute"]
            assert len(n_inst) == 9 and len(n_cat) == 2  # the lone "other" mesh has no partner
            assert len(n_abs) == (0 if method == "image_to_mesh" else 12)
    # the teacher's exactly rotated maps of an asymmetric mesh: the true relative pose
    target = [e["raw_deg"] for e in errs if e["method"] == "target" and e["protocol"] == "instance"]
    assert max(target) < 1e-3
    # a class of one mesh: its template is its own canonical map, so absolute pose is exact too
    lone = [e["raw_deg"] for e in errs if e["method"] == "target" and e["protocol"] == "absolute"
            and e["class"] == "other"]
    assert len(lone) == 8 and max(lone) < 1e-3
    rand = [e["raw_deg"] for e in errs if e["method"] == "random"]
    assert max(rand) > 30  # random rotations are not the truth
    row = next(r for r in res["table"] if (r["dof"], r["protocol"], r["method"], r["class"]) ==
               (3, "instance", "target", "all"))
    assert row["n"] == 9 and row["acc15"] == 1.0 and row["median_deg"] == row["sym_median_deg"]
    # correlations carry their confidence and symmetry flag; random and regression do not
    for e in errs:
        corr = e["method"] in ("embedding", "image_to_mesh", "target")
        assert (e["confidence"] is not None) == corr and (e["symmetric"] is not None) == corr
        if corr:
            assert 0.0 <= e["confidence"] <= 1.0
    conf = {(r["dof"], r["protocol"], r["method"]) for r in res["confidence"]}
    assert (3, "instance", "embedding") in conf and (3, "absolute", "target") in conf
    assert not any(m in ("random", "regression") for _, _, m in conf)
    assert "Is the confidence informative?" in md


def test_symmetric_error_only_for_symmetric_classes() -> None:
    errs = [{"dof": 3, "protocol": "instance", "method": "m", "class": c, "raw_deg": 170.0,
             "sym_deg": 10.0 if c in exp.SYMMETRIC_CLASSES else 170.0} for c in ("table", "chair")]
    table = {r["class"]: r for r in exp.summarize(errs)}
    assert table["table"]["sym_median_deg"] == 10.0 and table["chair"]["sym_median_deg"] == 170.0
    assert table["all"]["n"] == 2 and table["all"]["median_deg"] == 170.0


def test_bad_input_one_line(tmp_path, capsys, views, runs) -> None:
    emb, _ = runs
    assert exp.main([str(tmp_path / "o"), "--embedder", str(emb), "--test-views", str(views),
                     "--train-views", str(views), "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --limit") and err.count("\n") == 1
    assert exp.main([str(tmp_path / "o"), "--embedder", str(emb), "--test-views", str(tmp_path / "none"),
                     "--train-views", str(views)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "results.json").write_text("mine")
    assert exp.main([str(tmp_path / "o2"), "--embedder", str(emb), "--test-views", str(views),
                     "--train-views", str(views)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert (tmp_path / "o2" / "results.json").read_text() == "mine"


def test_random_rotation_errors_have_the_haar_median() -> None:
    """Uniform rotations against a fixed truth: the median error of the Haar measure
    (about 132.3°, where ∫₀^θ (1 − cos t)/π dt = 1/2)."""
    from equivision.metrics.rotations import rotation_error_summary

    r = SO3().random(20000, seed=3, dtype=torch.float64)
    med = rotation_error_summary(r, torch.eye(3, dtype=torch.float64)).median_deg
    theta = math.radians(med)
    assert abs((theta - math.sin(theta)) / math.pi - 0.5) < 0.01


def test_modelnet10_config_parses_with_the_image_network_encoder() -> None:
    from equivision.training.config import build_run_config

    root = Path(__file__).resolve().parents[2] / "configs"
    data = json.loads((root / "pose_regression_modelnet10.json").read_text())
    task = get_task(data.pop("task_name"))
    cfg = build_run_config(task.name, task.config_cls, data).task
    i2s = json.loads((root / "image_to_sphere_modelnet10.json").read_text())["task"]["model"]
    assert cfg.train_views == "runs/views-mn10-train-s1"
    assert cfg.channels == ["shading", "silhouette", "depth"]
    for k in ("in_channels", "image_size", "width", "max_width", "code_dim"):
        assert getattr(cfg.model, k) == i2s[k], k


def test_auroc_matches_the_pairwise_count() -> None:
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 6, (40,), generator=g).double()  # many ties
    pos = torch.rand(40, generator=g) < 0.4
    pairs = [(float(a > b) + 0.5 * float(a == b)) for a in score[pos] for b in score[~pos]]
    assert abs(exp.auroc(pos, score) - sum(pairs) / len(pairs)) < 1e-12
    assert exp.auroc(torch.tensor([True, False]), torch.tensor([1.0, 0.0])) == 1.0
    assert math.isnan(exp.auroc(torch.ones(3, dtype=torch.bool), torch.rand(3)))
