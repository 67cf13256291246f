"""CLI inputs: bad values give one ``error:`` line and exit 2, user text prints literally,
far-off coordinates give the same answers as centred ones, --help starts without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from equivision.cli import check_device, main
from equivision.errors import DegenerateGeometryError, InvalidInputError


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def chair_path(data_root):
    from equivision.data import mesh_files

    return mesh_files("shapenet10", "chair")[0]


# --- devices ---------------------------------------------------------------------------


def test_check_device_accepts_and_refuses(monkeypatch):
    assert check_device("cpu") == "cpu"
    assert check_device(" CPU ") == "cpu"
    assert check_device("auto", allow_auto=True) == "auto"
    with pytest.raises(InvalidInputError, match="cpu, cuda or cuda:N, got 'auto'"):
        check_device("auto")
    for bad in ("foo", "cuda:", "cuda:x", "cuda1", "gpu", ""):
        with pytest.raises(InvalidInputError, match="--device must be"):
            check_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError, match="no CUDA device"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda") == "cuda"
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(InvalidInputError, match=r"2 CUDA device\(s\), cuda:0 to cuda:1"):
        check_device("cuda:2")


@pytest.mark.parametrize("device", ["foo", "cuda:99"])
def test_every_device_option_is_checked_before_work(capsys, tmp_path, device):
    cloud = tmp_path / "c.xyz"  # never read: the device is refused first
    mesh = tmp_path / "m.ply"
    argvs = [
        ["classify", mesh, "--device", device],
        ["reconstruct", cloud, "-o", tmp_path / "o.ply", "--device", device],
        ["demo", "--out", tmp_path / "demo", "--device", device],
        ["train", "toy", "--run", tmp_path / "run", "--device", device],
        ["eval", "toy", "--run", tmp_path / "run", "--device", device],
    ]
    for argv in argvs:
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, "--device")
    assert list(tmp_path.iterdir()) == []


# --- values ----------------------------------------------------------------------------


def test_top_must_be_positive(capsys, chair_path):
    code, _, err = run(["classify", chair_path, "--top", "-1"], capsys)
    assert code == 2 and "Traceback" not in err and "--top" in err
    from equivision.pipelines.classify import Classification

    c = Classification(torch.tensor([0.7, 0.3]), ("a", "b"))
    assert c.top(5) == [("a", pytest.approx(0.7)), ("b", pytest.approx(0.3))]
    with pytest.raises(InvalidInputError, match="positive"):
        c.top(0)


def test_resolution_is_bounded_with_a_memory_estimate(capsys, tmp_path):
    from equivision.pipelines.reconstruct import MAX_RESOLUTION, check_resolution

    code, _, err = run(["reconstruct", tmp_path / "c.xyz", "-o", tmp_path / "o.ply", "-r", 100000], capsys)
    assert_one_line_error(code, err, f"4 to {MAX_RESOLUTION}", "GiB")
    assert check_resolution(128) == 128
    for bad in (3, MAX_RESOLUTION + 1, -5):
        with pytest.raises(InvalidInputError):
            check_resolution(bad)


def test_threshold_nan_names_the_value(capsys, tmp_path):
    code, _, err = run(["evaluate", tmp_path / "a.ply", tmp_path / "b.ply", "--threshold", "nan"], capsys)
    assert_one_line_error(code, err, "got nan")
    code, _, err = run(["evaluate", tmp_path / "a.ply", tmp_path / "b.ply", "--threshold", "0.01",
                        "--threshold", "-2"], capsys)
    assert_one_line_error(code, err, "got -2.0")


# --- markup ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a[/b].ply", "[draft].ply", "[bold]x[/bold].ply"])
def test_paths_with_markup_print_literally(capsys, tmp_path, name):
    missing = tmp_path / name
    code, _, err = run(["classify", missing], capsys)
    assert_one_line_error(code, err, str(missing))


def test_table_title_prints_brackets(capsys, tmp_path, chair_path):
    import shutil

    p = tmp_path / "[draft].ply"
    shutil.copy(chair_path, p)
    code, out, err = run(["classify", p, "--top", "1"], capsys)
    assert code == 0, err
    assert "[draft].ply" in out


def test_demo_log_lines_escape_user_text(monkeypatch, capsys, tmp_path):
    import equivision.demo as demo_mod

    class Result:
        failed = ()

    def fake_run_demo(ctx, only=None, log=print):
        log("[/dim] wrote [draft].png")
        (ctx.out_dir / "report.md").write_text("x")
        return Result()

    monkeypatch.setattr(demo_mod, "run_demo", fake_run_demo)
    code, out, err = run(["demo", "--out", tmp_path / "demo"], capsys)
    assert code == 0, err
    assert "[/dim] wrote [draft].png" in out


# --- start-up --------------------------------------------------------------------------


def test_cli_import_and_help_do_not_import_torch():
    code = (
        "import sys\n"
        "import equivision, equivision.cli\n"
        "from equivision.cli import main\n"
        "rc = main(['--help'])\n"
        "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'trimesh', 'scipy') if m in sys.modules]\n"
        "print('RC', rc, 'HEAVY', heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "RC 0 HEAVY []" in res.stdout, res.stdout[-500:]


def test_public_api_still_importable():
    import equivision

    assert issubclass(equivision.EquivisionError, Exception)
    assert isinstance(equivision.__version__, str)


# --- far from the origin: centre and scale in float64 ------------------------------------

OFFSET = 1e6


def _chair_cloud(chair_path, n: int) -> np.ndarray:
    import trimesh

    tm = trimesh.load(chair_path, process=False)
    pts, _ = trimesh.sample.sample_surface(tm, n, seed=0)
    return np.asarray(pts, dtype=np.float64)


def test_offset_cloud_reconstructs_the_same(capsys, tmp_path, chair_path):
    from equivision.io import load_mesh

    pts = _chair_cloud(chair_path, 2000)
    meshes, lines = [], []
    for name, shift in (("near", 0.0), ("far", OFFSET)):
        np.savetxt(tmp_path / f"{name}.xyz", pts + shift, fmt="%.17g")
        out = tmp_path / f"{name}.ply"
        code, text, err = run(["reconstruct", tmp_path / f"{name}.xyz", "-o", out, "-r", 32,
                               "--precision", "float32"], capsys)
        assert code == 0, err
        lines.append(" ".join(text.split()).split(" in ")[0])  # "N points → F faces at resolution 32"
        meshes.append(load_mesh(out, dtype=torch.float64))
    assert lines[0] == lines[1] and lines[0].startswith("2000 points"), lines
    near, far = meshes
    assert torch.equal(near.faces, far.faces)
    # the centred coordinates go through float32 once: about 1e-7 of the unit box
    assert float((far.vertices - OFFSET - near.vertices).abs().max()) < 1e-4


def test_offset_mesh_keeps_its_vertices_and_class(capsys, tmp_path, chair_path):
    from equivision.io import load_mesh, save_mesh
    from equivision.io.meshes import Mesh

    m = load_mesh(chair_path, dtype=torch.float64)
    far_path = tmp_path / "far.ply"
    save_mesh(Mesh(m.vertices + OFFSET, m.faces), far_path)  # PLY with double vertices
    far = load_mesh(far_path, dtype=torch.float64)
    assert float((far.vertices - OFFSET - m.vertices).abs().max()) < 1e-9
    assert len(torch.unique(far.vertices, dim=0)) == len(torch.unique(m.vertices, dim=0))
    outs = []
    for p in (chair_path, far_path):
        code, out, err = run(["classify", p, "--json"], capsys)
        assert code == 0, err
        outs.append(json.loads(out))
    for c in outs[0]:
        assert outs[1][c] == pytest.approx(outs[0][c], abs=1e-5), c


def test_normalize_points_centres_in_float64():
    from equivision.geometry import normalize_points

    g = torch.Generator().manual_seed(0)
    p = torch.rand(500, 3, generator=g, dtype=torch.float64)
    unit, center, _ = normalize_points(p + OFFSET)
    ref, _, _ = normalize_points(p)
    assert unit.dtype == center.dtype == torch.float64
    assert float((unit - ref).abs().max()) < 1e-9
    unit32, c32, s32 = normalize_points(p.float())
    assert unit32.dtype == c32.dtype == s32.dtype == torch.float32


# --- degenerate relative to its own size -------------------------------------------------


def _line_mesh(noise: float, scale: float = 1.0):
    from equivision.io.meshes import Mesh

    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 40, dtype=torch.float64)
    v = torch.stack([t, 2 * t, 3 * t], 1) * scale
    v = v + noise * scale * torch.randn(v.shape, generator=g, dtype=torch.float64)
    f = torch.stack([torch.arange(38), torch.arange(1, 39), torch.arange(2, 40)], 1)
    return Mesh(v, f)


def test_collinear_mesh_is_refused_at_any_scale():
    from equivision.geometry.normalize import check_mesh_area
    from equivision.io.meshes import Mesh

    for noise in (0.0, 1e-7):
        for scale in (1e-3, 1.0, 1e4):
            with pytest.raises(DegenerateGeometryError, match="almost no surface"):
                check_mesh_area(_line_mesh(noise, scale))
    # a flat square has area: classification and ray casting handle it
    sq = Mesh(torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.float64) * 1e-3,
              torch.tensor([[0, 1, 2], [0, 2, 3]]))
    assert check_mesh_area(sq) == pytest.approx(1.0)


def test_classify_refuses_a_collinear_mesh(capsys, tmp_path, data_root):
    from equivision.io import save_mesh

    p = tmp_path / "line.ply"
    save_mesh(_line_mesh(1e-7), p)
    code, _, err = run(["classify", p], capsys)
    assert_one_line_error(code, err, "almost no surface")


def test_reconstruction_refuses_a_line_but_takes_a_flat_square():
    from equivision.pipelines.reconstruct import check_cloud_for_surface

    g = torch.Generator().manual_seed(0)
    t = torch.rand(300, 1, generator=g, dtype=torch.float64)
    for shift in (0.0, OFFSET):
        line = t * torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64) + shift
        line = line + 1e-9 * torch.randn(line.shape, generator=g, dtype=torch.float64)
        with pytest.raises(DegenerateGeometryError, match="one line"):
            check_cloud_for_surface(line, 8)
        square = torch.cat([torch.rand(300, 2, generator=g, dtype=torch.float64),
                            torch.zeros(300, 1, dtype=torch.float64)], 1) + shift
        assert check_cloud_for_surface(square, 8).shape == (300, 3)


# --- --precision auto: chosen by measurement ---------------------------------------------


@pytest.fixture
def small_peif(monkeypatch, tmp_path):
    import equivision.recon.predict as predict
    from equivision.models.peif import PEIFConfig, PEIFNet

    monkeypatch.setenv("EQUIVISION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(predict, "bf16_matmul_supported", lambda: True)
    monkeypatch.setattr(predict, "_CHOICES", {})
    torch.manual_seed(0)
    return PEIFNet(PEIFConfig(k=8, feature_dim=16, memory_items=8, mlp_a=[16, 16], mlp_d=[16, 16])).eval()


def test_choose_precision_needs_a_margin():
    from equivision.recon.predict import BF16_MARGIN, choose_precision

    assert choose_precision(10.0, 5.0) == torch.bfloat16
    assert choose_precision(10.0, 10.0 * BF16_MARGIN) == torch.bfloat16
    assert choose_precision(10.0, 9.5) == torch.float32  # faster, but within the noise
    assert choose_precision(13.2, 22.3) == torch.float32  # AVX-512 BF16 without AMX
    assert choose_precision(10.0, float("nan")) == torch.float32


def test_auto_precision_measures_caches_and_reports(small_peif, tmp_path):
    from equivision.recon.predict import auto_precision, precision_cache_path

    calls: list[torch.dtype] = []

    def slow_bf16(dtype):
        calls.append(dtype)
        return {torch.float32: 13.2, torch.bfloat16: 22.3}[dtype]

    choice = auto_precision(small_peif, timer=slow_bf16)
    assert choice.dtype == torch.float32 and choice.source == "measured"
    assert torch.float32 in calls and torch.bfloat16 in calls
    assert "13.2 ms in float32 vs 22.3 ms in bfloat16" in choice.describe()
    path = precision_cache_path()
    assert path == tmp_path / "cache" / "precision.json"
    (entry,) = json.loads(path.read_text()).values()
    assert entry == {"float32_ms": 13.2, "bfloat16_ms": 22.3, "choice": "float32"}
    cached = auto_precision(small_peif)  # no timer: read from the cache, nothing measured
    assert (cached.dtype, cached.source, cached.float32_ms) == (torch.float32, "cache", 13.2)
    fast = auto_precision(small_peif, timer=lambda d: 40.0 if d == torch.float32 else 12.0)
    assert fast.dtype == torch.bfloat16  # an injected timer always measures (and rewrites)
    assert json.loads(path.read_text())[next(iter(json.loads(path.read_text())))]["choice"] == "bfloat16"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 1}', ""])
def test_corrupt_precision_cache_is_ignored_and_rewritten(small_peif, content):
    from equivision.recon.predict import auto_precision, precision_cache_path

    path = precision_cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    choice = auto_precision(small_peif, timer=lambda d: 10.0 if d == torch.float32 else 4.0)
    assert choice.dtype == torch.bfloat16
    data = json.loads(path.read_text())
    assert any(v.get("choice") == "bfloat16" for v in data.values() if isinstance(v, dict))
    assert not [p for p in path.parent.iterdir() if p.name != "precision.json"]  # no temp left


def test_bad_cache_entry_is_measured_again(small_peif):
    import equivision.recon.predict as predict

    path = predict.precision_cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({predict._machine_key(small_peif): {"float32_ms": "fast"}}))
    measured = []
    monkey_timer = lambda d: measured.append(d) or (5.0 if d == torch.float32 else 50.0)  # noqa: E731
    real = predict._network_timer
    predict._network_timer = lambda model: monkey_timer
    try:
        choice = predict.auto_precision(small_peif)
    finally:
        predict._network_timer = real
    assert measured and choice.dtype == torch.float32 and choice.source == "measured"


def test_no_native_bf16_means_float32_without_measuring(small_peif, monkeypatch):
    import equivision.recon.predict as predict

    monkeypatch.setattr(predict, "bf16_matmul_supported", lambda: False)
    choice = predict.auto_precision(small_peif, timer=lambda d: pytest.fail("measured"))
    assert choice.dtype == torch.float32 and "no native bfloat16" in choice.describe()
    with torch.no_grad():
        assert predict.inference_dtype(small_peif.double()) == torch.float64  # never lowered
