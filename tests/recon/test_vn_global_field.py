"""The VN global displacement field: SE(3) equivariance through the harness, gradcheck of
the decoder, bad input, the reconstruct pipeline and CLI dispatching on the model type, and
the recon-vn-global task (config checks, a short run)."""

from __future__ import annotations

import pytest
import torch

from equivision.cli import main
from equivision.configio import to_dict
from equivision.data.procedural import make_shape
from equivision.errors import ConfigError, DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.groups import SE3
from equivision.io import load_mesh, save_point_cloud
from equivision.models import build_model, load
from equivision.models.vn_global_field import VNGlobalField, VNGlobalFieldConfig
from equivision.pipelines.reconstruct import check_field_model, reconstruct
from equivision.testing import assert_equivariant, equivariance_error
from equivision.training.checkpoint import save_checkpoint

TINY = VNGlobalFieldConfig(k=8, channels=[4, 8, 16], latent=8, frame_channels=3, hidden=32, blocks=2,
                           encoder_points=256)


def tiny_net(dtype: torch.dtype = torch.float32, seed: int = 0) -> VNGlobalField:
    torch.manual_seed(seed)
    net = VNGlobalField(TINY).to(dtype)
    # the output layer starts at zero (a zero field); give it weights so the test sees a field
    torch.nn.init.normal_(net.out.weight, std=0.3)
    torch.nn.init.normal_(net.out.bias, std=0.3)
    return net


def cloud_and_queries(dtype: torch.dtype, n: int = 300, q: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(2, n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.6, 0.3],
                                                                                 dtype=torch.float64)
    return pts.to(dtype), torch.randn(2, q, 3, generator=g, dtype=torch.float64).to(dtype)


SE3_ = SE3(translation_scale=2.0)


def act_in(g: torch.Tensor, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return SE3_.act(g, x[0]), SE3_.act(g, x[1])


def act_out(g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return d @ g[:3, :3].T  # a displacement rotates, no translation


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_field_is_se3_equivariant(dtype, tol, mode):
    net = tiny_net(dtype)
    getattr(net, mode)()
    x = cloud_and_queries(dtype)
    els = SE3_.random(6, seed=3, dtype=dtype)
    assert_equivariant(lambda v: net(*v), x, act_in, act_out, els, tol=tol)
    # the distance |Δ| is invariant
    assert_equivariant(lambda v: net(*v).norm(dim=-1), x, act_in, None, els, tol=tol)


def test_max_pooling_is_equivariant_too():
    cfg = VNGlobalFieldConfig(k=8, channels=[4, 8, 16], latent=8, frame_channels=3, hidden=32, blocks=2,
                              encoder_points=256, pooling="max")
    torch.manual_seed(0)
    net = VNGlobalField(cfg).double().eval()
    torch.nn.init.normal_(net.out.weight, std=0.3)
    x = cloud_and_queries(torch.float64)
    assert_equivariant(lambda v: net(*v), x, act_in, act_out, SE3_.random(4, seed=8, dtype=torch.float64),
                       tol=1e-10)
    with pytest.raises(ConfigError, match="pooling"):
        VNGlobalFieldConfig(pooling="sum")


def test_vectors_only_field_is_equivariant_too():
    cfg = VNGlobalFieldConfig(k=8, channels=[4, 8, 16], latent=8, frame_channels=3, hidden=32, blocks=2,
                              encoder_points=256, tensor_latent=0)
    torch.manual_seed(0)
    net = VNGlobalField(cfg).double().eval()
    torch.nn.init.normal_(net.out.weight, std=0.3)
    assert net.encode(cloud_and_queries(torch.float64)[0]).tensors is None
    assert_equivariant(lambda v: net(*v), cloud_and_queries(torch.float64), act_in, act_out,
                       SE3_.random(4, seed=8, dtype=torch.float64), tol=1e-10)
    with pytest.raises(ConfigError, match="tensor_latent"):
        VNGlobalFieldConfig(tensor_latent=-1)


def test_latent_matrices_rotate_as_r_s_rt_and_vectors_vanish_on_symmetric_clouds():
    """The reason for the matrices: every equivariant vector of a centrally symmetric cloud
    is zero, so ``z`` carries nothing there, while ``S`` (even) keeps the shape's axes."""
    net = tiny_net(torch.float64).eval()
    half = cloud_and_queries(torch.float64, n=100)[0]  # 200 points: under encoder_points
    sym = torch.cat([half, -half], 1)  # x and −x: centrally symmetric, centroid 0
    lat = net.encode(sym)
    assert lat.tensors is not None and lat.tensors.shape == (2, TINY.tensor_latent, 3, 3)
    assert lat.z.abs().max() < 1e-12
    assert lat.tensors.abs().amax((1, 2, 3)).min() > 1e-3
    assert torch.allclose(lat.tensors, lat.tensors.transpose(-1, -2))
    rot = SE3_.random(3, seed=4, dtype=torch.float64)[:, :3, :3]
    pts = cloud_and_queries(torch.float64)[0]
    base = net.encode(pts).tensors
    for r in rot:
        moved = net.encode(pts @ r.T).tensors
        assert torch.allclose(moved, r @ base @ r.T, atol=1e-10)


def test_harness_catches_a_non_equivariant_output():
    """The same field with the query's raw coordinates added to its displacement is no longer
    equivariant: the harness must say so."""
    net = tiny_net(torch.float64).eval()
    x = cloud_and_queries(torch.float64)
    els = SE3_.random(4, seed=3, dtype=torch.float64)
    err = equivariance_error(lambda v: net(*v) + 0.1 * v[1][..., :1], x, act_in, act_out, els)
    assert err > 1e-3


def test_scaling_scales_the_displacement():
    net = tiny_net(torch.float64).eval()
    pts, q = cloud_and_queries(torch.float64)
    assert torch.allclose(net(pts * 3.5, q * 3.5), 3.5 * net(pts, q), rtol=1e-10, atol=1e-12)


def test_subsampling_is_equivariant_and_used():
    cfg = VNGlobalFieldConfig(k=8, channels=[4, 8], latent=4, frame_channels=2, hidden=16, blocks=1,
                              encoder_points=64)
    net = VNGlobalField(cfg).double().eval()
    torch.nn.init.normal_(net.out.weight, std=0.3)
    pts, q = cloud_and_queries(torch.float64, n=500)
    els = SE3_.random(3, seed=5, dtype=torch.float64)
    assert_equivariant(lambda v: net(*v), (pts, q), act_in, act_out, els, tol=1e-10)
    # the encoder saw 64 of the 500 points: moving one it did not see changes nothing
    sub = net._subsample(pts)
    assert sub.shape == (2, 64, 3)
    unseen = next(i for i in range(500) if not (pts[0, i] == sub[0]).all(-1).any())
    moved = pts.clone()
    moved[:, unseen] += 10.0
    assert torch.equal(net(moved, q), net(pts, q))


def test_decoder_gradcheck():
    net = tiny_net(torch.float64).eval()
    pts, q = cloud_and_queries(torch.float64, n=40, q=5)
    lat = net.encode(pts)
    z, code = lat.z.detach().requires_grad_(), lat.code.detach().requires_grad_()
    qq = q.detach().requires_grad_()

    def dec(z_, code_, q_, s_):
        from equivision.models.vn_global_field import VNLatent

        return net.decode(VNLatent(z_, code_, lat.centroid, lat.scale, s_), q_)

    assert lat.tensors is not None
    s = lat.tensors.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda z_, c_, q_, s_: dec(z_, c_, q_, s_), (z, code, qq, s),
                                    eps=1e-6, atol=1e-6)
    # and the whole field with respect to the cloud
    assert torch.autograd.gradcheck(lambda p: net(p, q[:1]), (pts[:1, :20].clone().requires_grad_(),),
                                    eps=1e-6, atol=1e-5)


def test_bad_input_is_refused():
    net = tiny_net().eval()
    pts, q = cloud_and_queries(torch.float32)
    nan = pts.clone()
    nan[0, 3, 1] = float("nan")
    with pytest.raises(InvalidInputError, match=r"finite|NaN"):
        net(nan, q)
    with pytest.raises(DegenerateGeometryError, match="at least 8"):
        net(pts[:, :5], q)
    with pytest.raises(ShapeError, match=r"\(B, N, 3\)"):
        net(pts[0], q)
    with pytest.raises(ShapeError, match=r"\(B, N, 3\)"):
        net(pts, q[..., :2])
    with pytest.raises(ShapeError, match="batch size"):
        net(pts, q[:1])
    with pytest.raises(InvalidInputError, match="floating"):
        net(pts.long(), q)
    with pytest.raises(DegenerateGeometryError, match="one place"):
        net(torch.ones(1, 20, 3), q[:1])
    with pytest.raises(ShapeError):
        net.displacement_field(pts)


@pytest.mark.parametrize("gradient", [True, False])
def test_displacement_field_is_equivariant_with_either_direction(gradient):
    """What reconstruction queries: ``Δ`` itself, or ``−u ∇u/|∇u|`` of its length ``u``."""
    cfg = VNGlobalFieldConfig(**{**to_dict(TINY), "gradient_directions": gradient})
    torch.manual_seed(0)
    net = VNGlobalField(cfg).double().eval()
    torch.nn.init.normal_(net.out.weight, std=0.3)
    torch.nn.init.normal_(net.out.bias, std=0.3)
    pts, q = cloud_and_queries(torch.float64)
    pts, q = pts[0], q[0]
    d = net.displacement_field(pts, batch_size=16)(q)
    direct = net(pts[None], q[None])[0]
    assert torch.allclose(d.norm(dim=-1), direct.norm(dim=-1), atol=1e-12)  # the same distance
    if not gradient:
        assert torch.allclose(d, direct, atol=1e-12)
    else:  # the direction of −∇u, checked by finite differences of u
        eps = 1e-6
        u = lambda x: net(pts[None], x[None])[0].norm(dim=-1)  # noqa: E731
        num = torch.stack([(u(q + eps * e) - u(q - eps * e)) / (2 * eps)
                           for e in torch.eye(3, dtype=q.dtype)], -1)
        assert torch.allclose(d, -u(q)[:, None] * torch.nn.functional.normalize(num, dim=-1), atol=1e-6)
    els = SE3_.random(4, seed=9, dtype=torch.float64)
    assert_equivariant(lambda v: net.displacement_field(v[0])(v[1]), (pts, q),
                       lambda g, v: (SE3_.act(g, v[0]), SE3_.act(g, v[1])), act_out, els, tol=1e-9)


def test_config_checks():
    for bad in ({"k": 0}, {"channels": [8]}, {"encoder_points": 4, "k": 8}, {"negative_slope": 1.0},
                {"latent": True}, {"gradient_directions": 1}):
        with pytest.raises(ConfigError):
            VNGlobalFieldConfig(**bad)
    assert isinstance(build_model("vn_global_field", {"latent": 16}), VNGlobalField)


@pytest.fixture(scope="module")
def torus():
    mesh, _, _ = normalize_mesh(make_shape("torus", 2).mesh(48))
    pts, _ = sample_surface_uniform(mesh, 2000, seed=0)
    return pts


def sphere_points(n: int, radius: float = 0.5, seed: int = 0) -> torch.Tensor:
    d = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (radius * d / d.norm(dim=-1, keepdim=True)).float()


@pytest.fixture(scope="module")
def sphere_net():
    """A tiny field fitted (a few hundred Adam steps) to the exact displacement of a sphere,
    so that the extraction has a surface to find."""
    torch.manual_seed(0)
    net = VNGlobalField(TINY).eval()  # fitted as used: the batch norms' running statistics fixed
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    pts = sphere_points(400)[None]
    g = torch.Generator().manual_seed(2)
    for _ in range(300):
        d = torch.randn(1, 256, 3, generator=g)
        q = d / d.norm(dim=-1, keepdim=True) * (0.5 + 0.2 * (torch.rand(1, 256, 1, generator=g) * 2 - 1))
        target = q / q.norm(dim=-1, keepdim=True) * 0.5 - q
        loss = (net(pts, q) - target).square().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_pipeline_extracts_the_fitted_surface(sphere_net):
    cloud = sphere_points(2000, radius=3.0, seed=1) + torch.tensor([1.0, -2.0, 0.5])
    rec = reconstruct(cloud, sphere_net, resolution=32, compute_dtype=torch.float32)
    r = (rec.mesh.vertices.double() - torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).norm(dim=-1)
    assert len(rec.mesh.faces) > 100
    assert float((r - 3.0).abs().mean()) < 0.1 * 3.0  # within a tenth of the radius, in its units
    with pytest.raises(InvalidInputError, match="float32"):
        reconstruct(cloud, sphere_net, resolution=32, compute_dtype=torch.bfloat16)
    with pytest.raises(InvalidInputError, match="peif or vn_global_field"):
        reconstruct(cloud, build_model("toy_mlp"), resolution=32)
    with pytest.raises(InvalidInputError, match="not a reconstruction field"):
        check_field_model(torch.nn.Linear(3, 3))
    with pytest.raises(DegenerateGeometryError, match="distinct points"):
        reconstruct(cloud[:5], sphere_net, resolution=32)


def _run_folder(path, net: VNGlobalField):
    meta = {"model": {"name": "vn_global_field", "config": to_dict(net.cfg)}, "task": "recon-vn-global"}
    save_checkpoint(path, 1, net.state_dict(), {}, meta)
    return path


def test_cli_reconstructs_with_a_run_folder_and_dispatches_on_type(sphere_net, tmp_path, capsys):
    run = _run_folder(tmp_path / "run", sphere_net)
    assert isinstance(load(run), VNGlobalField)
    cloud = save_point_cloud(sphere_points(2000, seed=3) * 5.0 + 2.0, tmp_path / "sphere.ply")
    out = tmp_path / "mesh.ply"
    code = main(["reconstruct", str(cloud), "-o", str(out), "-r", "32", "--model", str(run)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "faces" in captured.out
    mesh = load_mesh(out)  # in the cloud's coordinates, not the unit box's
    assert len(mesh.faces) > 100
    assert float((mesh.vertices.mean(0) - 2.0).abs().max()) < 0.3


def test_cli_errors_are_one_line(torus, tmp_path, capsys, monkeypatch):
    import equivision.cli.reconstruct as cli_rec

    net = tiny_net().eval()
    run = _run_folder(tmp_path / "run", net)
    cloud = save_point_cloud(torus, tmp_path / "torus.ply")
    few = save_point_cloud(torus[:5], tmp_path / "few.ply")
    nan = tmp_path / "nan.xyz"
    nan.write_text("\n".join(["0 0 0", "nan 1 0", "1 1 1", "0 1 1"] * 10) + "\n")
    monkeypatch.setattr(cli_rec, "MODEL_ALIASES", {**cli_rec.MODEL_ALIASES, "vn_global": "no_such_default"})
    cases = [
        (["--model", "vn_global"], "not installed"),
        (["--model", str(run), "--precision", "bfloat16"], "float32"),
        (["--model", "toy"], "peif"),
    ]
    for extra, needle in cases:
        assert main(["reconstruct", str(cloud), "-o", str(tmp_path / "x.ply"), *extra]) == 2, extra
        e = capsys.readouterr().err
        assert needle in e and len(e.strip().splitlines()) == 1 and "Traceback" not in e, e
    for src, needle in ((few, "at least 8"), (nan, "")):
        assert main(["reconstruct", str(src), "-o", str(tmp_path / "y.ply"), "--model", str(run)]) == 2
        e = capsys.readouterr().err
        assert e.startswith("error:") and needle in e and len(e.strip().splitlines()) == 1, e
    assert not (tmp_path / "x.ply").exists() and not (tmp_path / "y.ply").exists()


def test_task_trains_a_few_steps(tmp_path):
    from equivision.tasks.recon_vn_global import ReconVNGlobalConfig
    from equivision.training import get_task, list_tasks, train

    assert "recon-vn-global" in list_tasks()
    with pytest.raises(ConfigError):
        ReconVNGlobalConfig(n_points=4, model=TINY)
    cfg = {
        "task_name": "recon-vn-global",
        "train": {"steps": 4, "batch_size": 2, "lr": 1e-3, "log_every": 2, "device": "cpu",
                  "schedule": "constant", "seed": 0},
        "task": {"data_dir": str(tmp_path / "data"), "procedural_per_family": 1,
                 "eval_procedural_per_family": 1, "use_abc": False, "n_points": 400, "prep_queries": 256,
                 "queries_per_item": 64, "repeats": 2, "model": to_dict(TINY)},
    }
    train("recon-vn-global", cfg, tmp_path / "run", progress=False)
    net = load(tmp_path / "run")
    assert isinstance(net, VNGlobalField)
    task = get_task("recon-vn-global")
    train_ds, _ = task.datasets(task.config_cls(**{**cfg["task"], "model": TINY}))
    item = train_ds[0]
    assert item["points"].shape == (256, 3) and item["queries"].shape == (64, 3)
    assert torch.equal(train_ds[3]["queries"], train_ds[3]["queries"])  # fixed by the index


def test_partial_training_items_are_half_space_crops(tmp_path):
    from equivision.recon.data import load_prepared
    from equivision.tasks.recon_vn_global import CloudQueries, ReconVNGlobalConfig

    with pytest.raises(ConfigError, match="partial_fraction"):
        ReconVNGlobalConfig(partial_fraction=1.5, model=TINY)
    task_cfg = {"data_dir": str(tmp_path / "data"), "procedural_per_family": 1,
                "eval_procedural_per_family": 1,
                "use_abc": False, "n_points": 400, "prep_queries": 256, "queries_per_item": 64, "repeats": 2,
                "model": TINY}
    from equivision.training import get_task

    task = get_task("recon-vn-global")
    whole, _ = task.datasets(task.config_cls(**task_cfg))
    part = CloudQueries(whole.paths, 150, 64, 2, 0, partial_fraction=1.0)
    for i in range(4):
        full = load_prepared(whole.paths[i % len(whole.paths)])["cloud"].float()
        pts = part[i]["points"]
        assert (torch.cdist(pts, full, compute_mode="donot_use_mm_for_euclid_dist").amin(1) == 0).all()
        # a half: some plane through the whole cloud's centroid has every point on one side,
        # found here as the direction of the crop's centroid shift
        shift = pts.mean(0) - full.mean(0)
        assert shift.norm() > 0.05
        assert torch.equal(part[i]["queries"], whole[i]["queries"])  # targets: the whole shape
    assert torch.equal(CloudQueries(whole.paths, 150, 64, 2, 0)[1]["points"],
                       CloudQueries(whole.paths, 150, 64, 2, 0, partial_fraction=0.0)[1]["points"])
