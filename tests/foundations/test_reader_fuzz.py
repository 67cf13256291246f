"""Fuzzing every reader: seeded random bytes and mutated valid files must give either a typed
EquivisionError or a valid result (finite float32 arrays of the documented shapes, face
indices in range), never another exception, a hang or a huge allocation."""

from __future__ import annotations

import contextlib
import gzip
import json
import resource
import shutil
import signal
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from equivision.errors import EquivisionError
from equivision.io import Mesh, load_mesh, load_point_cloud, read_idx, save_point_cloud
from equivision.models import PRETRAINED_DIR, load
from equivision.models.weights import read_tensors, save_tensors
from equivision.training.checkpoint import CHECKPOINT_FORMAT
from equivision.training.config import read_json

EXAMPLES = 40  # mutations per seed file; the whole file stays well under 30 s on 2 cores
SECONDS_PER_CALL = 10
HEADROOM = 1 << 30  # no reader may grow the address space by a GiB for a file of a few KiB

pytestmark = pytest.mark.xdist_group("reader_fuzz")


class _Hang(BaseException):  # BaseException: readers' `except Exception` must not swallow it
    pass


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """Fail on a call that runs past SECONDS_PER_CALL or allocates more than HEADROOM."""

    def on_alarm(signum, frame):
        raise _Hang(f"reader ran past {SECONDS_PER_CALL} s")

    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CALL)
    resource.setrlimit(resource.RLIMIT_AS, (vm + HEADROOM, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- what a valid result is, per reader ------------------------------------------------

def _valid_mesh(m: Any) -> None:
    assert isinstance(m, Mesh)
    v, f = m
    assert v.dtype == torch.float32 and v.ndim == 2 and v.shape[1] == 3 and v.shape[0] > 0
    assert f.dtype == torch.int64 and f.ndim == 2 and f.shape[1] == 3 and f.shape[0] > 0
    assert bool(torch.isfinite(v).all())
    assert int(f.min()) >= 0 and int(f.max()) < v.shape[0]


def _valid_cloud(r: Any) -> None:
    pts, nrm = r
    assert pts.dtype == torch.float32 and pts.ndim == 2 and pts.shape[1] == 3 and pts.shape[0] > 0
    assert bool(torch.isfinite(pts).all())
    if nrm is not None:
        assert nrm.dtype == torch.float32 and nrm.shape == pts.shape
        assert bool(torch.isfinite(nrm).all())


def _valid_idx(a: Any) -> None:
    assert isinstance(a, np.ndarray) and a.dtype.isnative


def _valid_tensors(d: Any) -> None:
    assert isinstance(d, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                       for k, t in d.items())


def _valid_json(d: Any) -> None:
    assert isinstance(d, dict)


def _valid_module(m: Any) -> None:
    assert isinstance(m, torch.nn.Module) and not m.training


# ---- mutations ---------------------------------------------------------------------------

_TOKENS = [b"nan", b"inf", b"-inf", b"1e308", b"-1", b"0", b"1000000000000", b"-5", b"abc", b"",
           b"4294967295", b"2.5"]


def _mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation of ``data``: its name and the mutated bytes."""
    n = len(data)
    kind = int(rng.integers(7))
    i = int(rng.integers(n + 1))
    j = min(n, i + int(rng.integers(1, 64)))
    if kind == 0:
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            if b:
                k = int(rng.integers(len(b)))
                b[k] ^= 1 << int(rng.integers(8))
        return "bit flips", bytes(b)
    if kind == 1:
        return f"truncated at {i}", data[:i]
    if kind == 2:
        return f"chunk {i}:{j} duplicated", data[:j] + data[i:j] + data[j:]
    if kind == 3:
        return f"chunk {i}:{j} deleted", data[:i] + data[j:]
    if kind == 4:
        return f"chunk {i}:{j} random", data[:i] + rng.bytes(j - i) + data[j:]
    if kind == 5:
        return "random bytes", rng.bytes(int(rng.integers(0, 512)))
    # a number in the text (header counts, coordinates, face indices) replaced by a token
    import re

    nums = list(re.finditer(rb"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", data))
    if not nums:
        return "no number to edit", data
    m = nums[int(rng.integers(len(nums)))]
    tok = _TOKENS[int(rng.integers(len(_TOKENS)))]
    return f"number at {m.start()} -> {tok!r}", data[: m.start()] + tok + data[m.end():]


def _mutate_json(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """Replace a random value of a JSON document by a value of another type."""
    doc = json.loads(data)
    nodes: list[tuple[Any, Any]] = []

    def walk(x: Any) -> None:
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, v in items:
            nodes.append((x, k))
            walk(v)

    walk(doc)
    parent, key = nodes[int(rng.integers(len(nodes)))]
    new = [None, 5, -1, 2.5, "x", [], {}, [1, 2], {"a": 1}, True, 10**12][int(rng.integers(11))]
    parent[key] = new
    return f"{key!r} -> {new!r}", json.dumps(doc).encode()


# ---- seed files ----------------------------------------------------------------------------

def _small_meshes():
    import trimesh

    return {"box": trimesh.creation.box(), "ico": trimesh.creation.icosphere(subdivisions=1)}


def _mesh_seeds() -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for name, tm in _small_meshes().items():
        out[f"{name}-ply-binary"] = (".ply", tm.export(file_type="ply"))
        out[f"{name}-ply-ascii"] = (".ply", tm.export(file_type="ply", encoding="ascii"))
        out[f"{name}-obj"] = (".obj", tm.export(file_type="obj").encode())
        out[f"{name}-off"] = (".off", tm.export(file_type="off").encode())
        out[f"{name}-stl-binary"] = (".stl", tm.export(file_type="stl"))
        out[f"{name}-stl-ascii"] = (".stl", tm.export(file_type="stl_ascii").encode())
        out[f"{name}-glb"] = (".glb", tm.export(file_type="glb"))
    return out


def _cloud_seeds(tmp: Path) -> dict[str, tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    pts = torch.as_tensor(rng.normal(size=(20, 3)), dtype=torch.float32)
    nrm = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(20, 3)), dtype=torch.float32))
    out: dict[str, tuple[str, bytes]] = {}
    for name, ext, normals in [("ply-binary", ".ply", nrm), ("xyz", ".xyz", None),
                               ("xyz-normals", ".xyz", nrm), ("npy", ".npy", None),
                               ("npy-normals", ".npy", nrm)]:
        p = save_point_cloud(pts, tmp / f"seed-{name}{ext}", normals=normals)
        out[name] = (ext, p.read_bytes())
    rows = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in pts.tolist())
    out["ply-ascii"] = (".ply", (f"ply\nformat ascii 1.0\nelement vertex {len(pts)}\nproperty float x\n"
                                 "property float y\nproperty float z\nelement face 0\n"
                                 "property list uchar int vertex_indices\nend_header\n" + rows).encode())
    return out


def _idx_bytes(a: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", s) for s in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def _real_seeds(data_root: Path | None) -> dict[str, tuple[str, bytes]]:
    if data_root is None:
        return {}
    return {f"real-{n}": (".ply", (data_root / "classic" / f"{n}.ply").read_bytes())
            for n in ("cube", "cylinder") if (data_root / "classic" / f"{n}.ply").is_file()}


# ---- the fuzz loop ---------------------------------------------------------------------------

def _fuzz(tmp: Path, ext: str, seed_bytes: bytes, reader: Callable[[Path], Any],
          valid: Callable[[Any], None], seed: int, mutate=_mutate) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    path = tmp / f"fuzz{ext}"
    counts = {"valid": 0, "typed": 0}
    cases = [("unmutated", seed_bytes)] + [mutate(seed_bytes, rng) for _ in range(EXAMPLES)]
    for what, data in cases:
        path.write_bytes(data)
        try:
            with _bounded():
                result = reader(path)
        except EquivisionError:
            counts["typed"] += 1
            continue
        except _Hang:
            pytest.fail(f"{ext} reader hung on mutation '{what}'")
        except Exception as e:  # the failure this test exists to find
            pytest.fail(f"{ext} reader raised {type(e).__name__} ({e}) on mutation '{what}'")
        try:
            valid(result)
        except AssertionError:
            pytest.fail(f"{ext} reader returned an invalid result on mutation '{what}'")
        counts["valid"] += 1
    assert counts["valid"] >= 1, "the unmutated seed must load"
    return counts


MESH_SEEDS = _mesh_seeds()


@pytest.mark.parametrize("name", sorted(MESH_SEEDS))
def test_load_mesh_fuzz(tmp_path, name):
    ext, data = MESH_SEEDS[name]
    _fuzz(tmp_path, ext, data, load_mesh, _valid_mesh, seed=sorted(MESH_SEEDS).index(name))


def test_load_mesh_and_cloud_fuzz_real_files(tmp_path):
    from equivision.data import find_data_root

    seeds = _real_seeds(find_data_root())
    if not seeds:
        pytest.skip("../shared/data is absent (set $EQUIVISION_DATA to fuzz real files)")
    for k, (_name, (ext, data)) in enumerate(sorted(seeds.items())):
        _fuzz(tmp_path, ext, data, load_mesh, _valid_mesh, seed=100 + k)
        _fuzz(tmp_path, ext, data, load_point_cloud, _valid_cloud, seed=200 + k)


@pytest.mark.parametrize("name", ["ply-binary", "ply-ascii", "xyz", "xyz-normals", "npy", "npy-normals",
                                  "mesh-ply-binary", "mesh-ply-ascii"])
def test_load_point_cloud_fuzz(tmp_path, name):
    if name.startswith("mesh-"):
        ext, data = MESH_SEEDS["ico" + name[4:]]
    else:
        ext, data = _cloud_seeds(tmp_path)[name]
    _fuzz(tmp_path, ext, data, load_point_cloud, _valid_cloud, seed=300 + len(name))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_fuzz(tmp_path, gz):
    rng = np.random.default_rng(1)
    for k, (a, code) in enumerate([(rng.integers(0, 256, (5, 4, 4)).astype(np.uint8), 0x08),
                                   (rng.normal(size=(3, 2)).astype(np.float32), 0x0D),
                                   (np.arange(7, dtype=np.int32), 0x0C)]):
        data = _idx_bytes(a, code)
        if gz:
            data = gzip.compress(data, mtime=0)
        _fuzz(tmp_path, ".gz" if gz else ".idx", data, read_idx, _valid_idx, seed=400 + k)


def test_read_tensors_fuzz(tmp_path):
    g = torch.Generator().manual_seed(0)
    p = save_tensors({"w": torch.randn(4, 3, generator=g), "b": torch.zeros(3),
                      "step": torch.tensor([7])}, tmp_path / "seed.safetensors")
    _fuzz(tmp_path, ".safetensors", p.read_bytes(), read_tensors, _valid_tensors, seed=500)


def test_read_json_fuzz(tmp_path):
    doc = json.dumps({"train": {"steps": 10, "lr": 0.1, "schedule": "cosine"},
                      "task": {"n_train": 8, "model": {"hidden": [4, 4]}}}, indent=2).encode()
    _fuzz(tmp_path, ".json", doc, read_json, _valid_json, seed=600)
    _fuzz(tmp_path, ".json", doc, read_json, _valid_json, seed=601, mutate=_mutate_json)


def _toy_run(run: Path, meta: bytes, weights: bytes) -> Path:
    step = run / "checkpoints" / "step-00000001"
    step.mkdir(parents=True, exist_ok=True)
    (step / "meta.json").write_bytes(meta)
    (step / "model.safetensors").write_bytes(weights)
    return run


@pytest.mark.parametrize("target", ["meta.json", "meta.json-values", "model.safetensors"])
def test_load_run_folder_fuzz(tmp_path, target):
    """``models.load`` of a run folder whose checkpoint files are mutated."""
    toy = json.loads((PRETRAINED_DIR / "toy.json").read_text())
    weights = (PRETRAINED_DIR / "toy.safetensors").read_bytes()
    meta = json.dumps({"format": CHECKPOINT_FORMAT, "step": 1, "model": toy["model"]}).encode()
    run = tmp_path / "run"

    def reader_meta(path: Path) -> Any:
        return load(_toy_run(run, path.read_bytes(), weights))

    def reader_weights(path: Path) -> Any:
        return load(_toy_run(run, meta, path.read_bytes()))

    if target == "model.safetensors":
        _fuzz(tmp_path, ".safetensors", weights, reader_weights, _valid_module, seed=700)
    else:
        mutate = _mutate_json if target.endswith("values") else _mutate
        _fuzz(tmp_path, ".json", meta, reader_meta, _valid_module, seed=701, mutate=mutate)
    shutil.rmtree(run, ignore_errors=True)


# ---- hand-made cases: the headers that must be refused before any allocation ----------------

def _ply_cloud(count: str, binary: bool) -> bytes:
    fmt = "binary_little_endian" if binary else "ascii"
    head = (f"ply\nformat {fmt} 1.0\nelement vertex {count}\nproperty float x\nproperty float y\n"
            "property float z\nend_header\n").encode()
    return head + (np.zeros((2, 3), "<f4").tobytes() if binary else b"0 0 0\n1 1 1\n")


def _obj(faces: str) -> bytes:
    return f"v 0 0 0\nv 1 0 0\nv 0 1 0\n{faces}\n".encode()


def _stl(count: int) -> bytes:
    return b"\0" * 80 + struct.pack("<I", count) + b"\0" * 50


_NAN_PLY = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
_FACE = b"element face 1\nproperty list uchar int vertex_indices\nend_header\n"

HANDMADE: list[tuple[str, str, bytes, Callable[[Path], Any], Callable[[Any], None]]] = [
    ("ply-cloud-binary-1e12", ".ply", _ply_cloud("1000000000000", True), load_point_cloud, _valid_cloud),
    ("ply-cloud-ascii-1e12", ".ply", _ply_cloud("1000000000000", False), load_point_cloud, _valid_cloud),
    ("ply-cloud-negative", ".ply", _ply_cloud("-5", True), load_point_cloud, _valid_cloud),
    ("ply-cloud-ascii-negative", ".ply", _ply_cloud("-5", False), load_point_cloud, _valid_cloud),
    ("ply-mesh-binary-1e12", ".ply", _ply_cloud("1000000000000", True), load_mesh, _valid_mesh),
    ("ply-mesh-ascii-1e12", ".ply", _ply_cloud("1000000000000", False), load_mesh, _valid_mesh),
    ("ply-ascii-nan", ".ply", _NAN_PLY + _FACE + b"nan 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", load_mesh, _valid_mesh),
    ("ply-ascii-inf", ".ply", _NAN_PLY + _FACE + b"inf 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", load_mesh, _valid_mesh),
    ("ply-cloud-ascii-nan", ".ply", _NAN_PLY + b"end_header\nnan 0 0\n1 0 0\n0 1 0\n", load_point_cloud,
     _valid_cloud),
    ("ply-face-out-of-range", ".ply", _NAN_PLY + _FACE + b"0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n", load_mesh,
     _valid_mesh),
    ("obj-index-0", ".obj", _obj("f 0 1 2"), load_mesh, _valid_mesh),
    ("obj-index-negative", ".obj", _obj("f -9 1 2"), load_mesh, _valid_mesh),
    ("obj-index-out-of-range", ".obj", _obj("f 1 2 99"), load_mesh, _valid_mesh),
    ("off-counts-too-large", ".off", b"OFF\n1000000000000 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", load_mesh,
     _valid_mesh),
    ("off-counts-negative", ".off", b"OFF\n-3 -1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", load_mesh, _valid_mesh),
    ("off-face-out-of-range", ".off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", load_mesh, _valid_mesh),
    ("stl-count-larger-than-file", ".stl", _stl(10**9), load_mesh, _valid_mesh),
    ("stl-count-off-by-one", ".stl", _stl(2), load_mesh, _valid_mesh),
    ("glb-garbage", ".glb", b"glTF" + bytes(range(256)), load_mesh, _valid_mesh),
    ("xyz-text", ".xyz", b"x y z\n1 2 3\n", load_point_cloud, _valid_cloud),
    ("xyz-ragged", ".xyz", b"1 2 3\n4 5\n", load_point_cloud, _valid_cloud),
    ("xyz-nan-normals", ".xyz", b"1 2 3 nan 0 0\n4 5 6 0 0 1\n", load_point_cloud, _valid_cloud),
    ("idx-huge-shape", ".idx", bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 60000, 60000), read_idx,
     _valid_idx),
    ("safetensors-huge-header", ".safetensors", struct.pack("<Q", 10**12) + b"{}", read_tensors,
     _valid_tensors),
]


@pytest.mark.parametrize("case", HANDMADE, ids=[c[0] for c in HANDMADE])
def test_handmade_headers(tmp_path, case):
    _name, ext, data, reader, valid = case
    path = tmp_path / f"case{ext}"
    path.write_bytes(data)
    try:
        with _bounded():
            result = reader(path)
    except EquivisionError:
        return
    valid(result)


@pytest.mark.parametrize("make", ["object", "3d", "wrong-columns", "strings", "complex"])
def test_npy_refused_without_unpickling(tmp_path, monkeypatch, make):
    import pickle

    arrays = {"object": np.array([[object()] * 3], dtype=object), "3d": np.zeros((2, 3, 3), np.float32),
              "wrong-columns": np.zeros((4, 4), np.float32), "strings": np.array([["a", "b", "c"]]),
              "complex": np.zeros((2, 3), np.complex64)}
    p = tmp_path / "x.npy"
    with open(p, "wb") as f:
        np.save(f, arrays[make], allow_pickle=True)

    def no_unpickling(*a, **k):
        raise AssertionError("the reader unpickled a .npy file")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(EquivisionError):
        load_point_cloud(p)


def test_big_endian_npy_reads(tmp_path):
    p = tmp_path / "be.npy"
    np.save(p, np.arange(12, dtype=">f8").reshape(4, 3))
    pts, _ = load_point_cloud(p)
    assert pts.dtype == torch.float32 and pts[1].tolist() == [3.0, 4.0, 5.0]
