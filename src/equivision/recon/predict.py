"""The PEIF field on a whole cloud: patches → canonical frames → network → world displacement."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.nn.cpu import bf16_matmul_supported
from equivision.recon.frames import LocalFrames, canonical_patches, vectors_from_frame
from equivision.recon.patches import knn_patches

# Queries per network call: the activations of ~1k queries stay in cache on CPU (measured
# 1.3x the throughput of 16k-query calls on one thread); patches and frames are built for
# ``batch_size`` queries at once.
NET_CHUNK = 1024


#: ``--precision`` names (CLI, benchmark) to ``compute_dtype`` values of :func:`inference_dtype`.
COMPUTE_DTYPES: dict[str, torch.dtype | None] = {"auto": None, "float32": torch.float32,
                                                 "bfloat16": torch.bfloat16}


#: bfloat16 is chosen automatically only when measured at most this fraction of float32's time:
#: below it the difference is within the noise of a short benchmark (and bfloat16 costs accuracy).
BF16_MARGIN = 0.85
# The probe: a quarter of a network call's queries (the real layer shapes), one warm-up call
# per dtype, then rounds alternating float32 and bfloat16, best of each: alternating keeps
# load from other processes from favouring one side.
_PROBE_QUERIES, _PROBE_ROUNDS = 256, 2


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``--precision auto`` chose on this machine and why."""

    dtype: torch.dtype
    float32_ms: float | None = None  # best of a few network calls on _PROBE_QUERIES queries
    bfloat16_ms: float | None = None
    source: str = "measured"  # "measured", "cache" or why nothing was measured

    def describe(self) -> str:
        if self.float32_ms is None or self.bfloat16_ms is None:
            return f"auto: {self.source}"
        how = "measured" if self.source == "measured" else "measured earlier"
        return (f"auto: {how} {self.float32_ms:.1f} ms in float32 vs {self.bfloat16_ms:.1f} ms in "
                f"bfloat16 per {_PROBE_QUERIES} queries")


def choose_precision(float32_ms: float, bfloat16_ms: float, margin: float = BF16_MARGIN) -> torch.dtype:
    """bfloat16 only when it was measured faster than float32 by ``margin``; else float32."""
    ok = math.isfinite(float32_ms) and math.isfinite(bfloat16_ms) and bfloat16_ms > 0
    return torch.bfloat16 if ok and bfloat16_ms <= margin * float32_ms else torch.float32


def precision_cache_path() -> Path:
    """``$EQUIVISION_CACHE_DIR`` (else ``$XDG_CACHE_HOME/equivision``, else
    ``~/.cache/equivision``) ``/precision.json``."""
    root = os.environ.get("EQUIVISION_CACHE_DIR")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "equivision")
    return Path(root) / "precision.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine_key(model: nn.Module) -> str:
    """CPU model, its bfloat16/AMX/AVX-512 flags, torch version, threads and the network's
    layer shapes: a measurement holds for exactly this combination."""
    try:
        caps = torch.cpu.get_capabilities()
    except AttributeError:
        caps = {}
    flags = ",".join(sorted(k for k, v in caps.items() if v and ("amx" in k or "avx512" in k)))
    shapes = ";".join("x".join(map(str, t.shape)) for t in model.parameters())
    net = hashlib.sha1(f"{type(model).__name__}:{shapes}".encode()).hexdigest()[:12]
    return f"{_cpu_model()}|{flags}|torch {torch.__version__}|{torch.get_num_threads()} threads|{net}"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or corrupt: measured again and rewritten
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".precision-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:  # a read-only home only costs the measurement next time
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


def _network_timer(model: nn.Module) -> Callable[[torch.dtype], float]:
    """``timer(dtype)``: milliseconds of one network call on ``_PROBE_QUERIES`` random patches
    (the first call per dtype, which builds the bfloat16 weight copies, runs untimed first)."""
    k = int(model.cfg.k)  # type: ignore[union-attr]
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(_PROBE_QUERIES, k, 3, generator=g) * 0.05
    queries = torch.randn(_PROBE_QUERIES, 3, generator=g) * 0.05
    warm: set[torch.dtype] = set()

    def timer(dtype: torch.dtype) -> float:
        with torch.no_grad():
            if dtype not in warm:
                _net(model, patches, queries, dtype)
                warm.add(dtype)
            t0 = time.perf_counter()
            _net(model, patches, queries, dtype)
            return (time.perf_counter() - t0) * 1e3

    return timer


def measure_precisions(timer: Callable[[torch.dtype], float], rounds: int = _PROBE_ROUNDS
                       ) -> tuple[float, float]:
    """``(float32 ms, bfloat16 ms)``: the best of ``rounds`` alternating calls of ``timer``."""
    f32, b16 = math.inf, math.inf
    for _ in range(rounds):
        f32 = min(f32, float(timer(torch.float32)))
        b16 = min(b16, float(timer(torch.bfloat16)))
    return f32, b16


_CHOICES: dict[str, PrecisionChoice] = {}


def auto_precision(model: nn.Module, *, timer: Callable[[torch.dtype], float] | None = None,
                   cache: Path | None = None) -> PrecisionChoice:
    """The arithmetic ``compute_dtype=None`` uses for ``model`` on this CPU, by measurement.

    Only a float32 model on CPU with the bfloat16 path (``model.infer``) and native bfloat16
    products (:func:`~equivision.nn.cpu.bf16_matmul_supported`) is measured: the network
    on a few hundred queries in float32 and in bfloat16 (``timer(dtype)`` in ms; default a few
    real calls, well under a second), bfloat16 kept only when faster by :data:`BF16_MARGIN`
    (some CPUs with AVX-512 BF16 but no AMX run it slower than float32). The result is cached
    per machine key (CPU model and flags, torch version, threads, layer shapes) in
    ``cache`` (default :func:`precision_cache_path`) and in this process."""
    param = next(model.parameters())
    if param.device.type != "cpu" or param.dtype != torch.float32 or not hasattr(model, "infer"):
        what = str(param.dtype).removeprefix("torch.")
        return PrecisionChoice(param.dtype, source=f"the model's own {what} on {param.device.type}")
    if not bf16_matmul_supported():
        return PrecisionChoice(torch.float32, source="no native bfloat16 products on this CPU")
    key = _machine_key(model)
    path = cache if cache is not None else precision_cache_path()
    memo = f"{path}|{key}"
    if timer is None and memo in _CHOICES:
        return _CHOICES[memo]
    data = _read_cache(path)
    entry = data.get(key)
    if timer is None and isinstance(entry, dict):
        try:
            f32, b16 = float(entry["float32_ms"]), float(entry["bfloat16_ms"])
        except (KeyError, TypeError, ValueError):
            pass
        else:
            choice = PrecisionChoice(choose_precision(f32, b16), f32, b16, "cache")
            _CHOICES[memo] = choice
            return choice
    f32, b16 = measure_precisions(timer if timer is not None else _network_timer(model))
    choice = PrecisionChoice(choose_precision(f32, b16), f32, b16, "measured")
    data[key] = {"float32_ms": round(f32, 3), "bfloat16_ms": round(b16, 3),
                 "choice": str(choice.dtype).removeprefix("torch.")}
    _write_cache(path, data)
    if timer is None:
        _CHOICES[memo] = choice
    return choice


def inference_dtype(model: nn.Module, compute_dtype: torch.dtype | None = None) -> torch.dtype:
    """The arithmetic of the network for ``compute_dtype``.

    ``None`` (automatic): for a float32 model on CPU, without autograd, with the
    reduced-precision path (``model.infer``), whichever of float32 and bfloat16
    :func:`auto_precision` measured faster on this CPU (bfloat16 only with native products,
    AMX or AVX-512 BF16, and by a margin); else the model's own dtype.
    ``torch.float32``: always the ordinary forward, in the model's own
    dtype (float32 for the packaged model). ``torch.bfloat16``: always ``model.infer`` in
    bfloat16 (on any device; slow where bfloat16 products are emulated)."""
    param = next(model.parameters())
    if compute_dtype is None:
        if torch.is_grad_enabled():
            return param.dtype
        return auto_precision(model).dtype
    if compute_dtype == torch.float32:
        return param.dtype
    if compute_dtype != torch.bfloat16:
        raise InvalidInputError(
            f"compute_dtype must be None, torch.float32 or torch.bfloat16, got {compute_dtype}")
    if not hasattr(model, "infer"):
        raise InvalidInputError(f"{type(model).__name__} has no bfloat16 inference path (infer)")
    return torch.bfloat16


def _net(model: nn.Module, patches: Tensor, queries: Tensor, dtype: torch.dtype) -> Tensor:
    """The network on canonical patches: ``model.infer`` in ``dtype`` when that is bfloat16
    (no autograd), else the ordinary forward; in chunks of ``NET_CHUNK`` queries on CPU."""
    lowp = dtype == torch.bfloat16
    if lowp and torch.is_grad_enabled():
        raise InvalidInputError("bfloat16 inference runs without autograd (use torch.no_grad())")
    if not lowp and (torch.is_grad_enabled() or patches.device.type != "cpu"):
        return model(patches, queries)

    def call(p: Tensor, q: Tensor) -> Tensor:
        return model.infer(p, q, dtype) if lowp else model(p, q)  # type: ignore[operator]

    return torch.cat([call(patches[s : s + NET_CHUNK], queries[s : s + NET_CHUNK])
                      for s in range(0, max(1, patches.shape[0]), NET_CHUNK)], 0)


def centred_patches(cloud: Tensor, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ablation's input: K-NN patches ``(Q, k, 3)`` and queries ``(Q, 3)`` centred on the
    patch centroid, in world axes (no rotation)."""
    patches, _ = knn_patches(cloud, queries, k)
    mu = patches.mean(1, keepdim=True)
    return patches - mu, queries - mu[:, 0]


def view_offsets(frames: LocalFrames, views: int, spread: float) -> Tensor:
    """Anchor offsets ``(views, Q, 3)`` of :func:`predict_displacement`'s ``field_views``: zero
    (the query itself), then ``±h (cos θⱼ u₁ + sin θⱼ u₂)`` for ``θⱼ = πj/m``, ``j < m =
    (views − 1) / 2``, in the tangent plane of the query's patch (axes ``u₁, u₂`` of its frame),
    ``h = spread · √λ₁`` (the patch's largest standard deviation: scale-free). Both signs of each
    axis are used, so the offsets do not depend on the frame's sign choices."""
    m = (views - 1) // 2
    u1, u2 = frames.rotations[..., 0], frames.rotations[..., 1]
    h = spread * frames.eigenvalues[..., :1].clamp_min(0).sqrt()
    out = [torch.zeros_like(u1)]
    for j in range(m):
        t = math.pi * j / m
        v = h * (math.cos(t) * u1 + math.sin(t) * u2)
        out += [v, -v]
    return torch.stack(out, 0)


def check_field_views(views: int, spread: float) -> None:
    if isinstance(views, bool) or not isinstance(views, int) or views < 1 or views % 2 == 0:
        raise InvalidInputError(f"field_views must be an odd positive integer (1, 3, 5, ...), got {views!r}")
    if not (math.isfinite(spread) and spread > 0):
        raise InvalidInputError(f"view_spread must be positive and finite, got {spread!r}")


def view_displacements(model: nn.Module, cloud: Tensor, queries: Tensor, k: int, dtype: torch.dtype,
                       views: int, spread: float) -> tuple[Tensor, Tensor]:
    """``(offsets, displacements)``, both ``(views, Q, 3)``: the field at the anchors
    ``queries + offsets`` (see :func:`view_offsets`), each from the anchor's own patch."""
    cp = canonical_patches(cloud, queries, k)
    off = view_offsets(cp.frames, views, spread).to(cloud.dtype)
    local = _net(model, cp.patches.to(cloud.dtype), cp.queries.to(cloud.dtype), dtype)
    first = vectors_from_frame(local, cp.frames).to(cloud.dtype)
    if views == 1:
        return off, first[None]
    anchors = (queries[None] + off[1:]).reshape(-1, 3)
    acp = canonical_patches(cloud, anchors, k)
    alocal = _net(model, acp.patches.to(cloud.dtype), acp.queries.to(cloud.dtype), dtype)
    rest = vectors_from_frame(alocal, acp.frames).to(cloud.dtype).reshape(views - 1, -1, 3)
    return off, torch.cat([first[None], rest], 0)


#: The plane of the views replaces the query's own direction only within this angle of it: beyond,
#: the views straddle an edge or a thin part and their plane is no surface.
PLANE_MAX_ANGLE = 45.0


def plane_displacement(offsets: Tensor, displacements: Tensor, max_angle: float = PLANE_MAX_ANGLE) -> Tensor:
    """Combine views ``(V, Q, 3)`` into displacements ``(Q, 3)``: the direction is the normal of
    the plane fitted (least squares) through the predicted surface points ``offsets +
    displacements`` (relative to the query), signed like the query's own prediction
    ``displacements[0]``, whose distance is kept; where the normal is more than ``max_angle``
    degrees from that prediction, the prediction is kept as it is.

    Equivariant when the views are: the plane turns with them, and its sign comes from the
    query's own prediction. On a plane sampled exactly it gives the exact displacement (all
    surface points lie on it)."""
    d0 = displacements[0]
    p = (offsets + displacements).double()
    c = p - p.mean(0, keepdim=True)
    normal = torch.linalg.eigh(torch.einsum("vqi,vqj->qij", c, c))[1][..., 0].to(d0.dtype)
    dist = d0.norm(dim=-1, keepdim=True)
    cos = (normal * d0).sum(-1, keepdim=True) / dist.clamp_min(torch.finfo(d0.dtype).tiny)
    normal = torch.where(cos < 0, -normal, normal)
    keep = cos.abs() >= math.cos(math.radians(max_angle))
    return torch.where(keep, normal * dist, d0)


def predict_displacement(
    model: nn.Module,
    cloud: Tensor,
    queries: Tensor,
    *,
    pose_normalization: bool | None = None,
    batch_size: int = 16384,
    compute_dtype: torch.dtype | None = None,
    field_views: int = 1,
    view_spread: float = 0.5,
) -> Tensor:
    """Displacement ``(Q, 3)`` from each query ``(Q, 3)`` to the surface sampled by ``cloud (N, 3)``.

    With ``pose_normalization`` (PEIF) each K-NN patch is expressed in its canonical frame and
    the prediction rotated back: the field is SE(3)-equivariant by construction. Without it
    (the paper's ablation) patches are only centred on their centroid, keeping world axes.
    ``None`` (default): as the model was trained (``model.cfg.pose_normalization``).
    The model's ``cfg.k`` fixes K; the cloud must have at least K points.
    ``compute_dtype``: the network's arithmetic (see :func:`inference_dtype`): ``None``
    (default) runs a float32 model in bfloat16 on CPUs with native bfloat16 products (about
    3x faster; the field changes by ~0.3 % of its norm on average), ``torch.float32`` forces
    float32. The output has the cloud's dtype either way.
    ``field_views`` (odd; default 1, one patch per query): with ``V > 1`` the network also runs
    on the patches of ``V − 1`` anchors around the query in its patch's tangent plane
    (:func:`view_offsets`, ``view_spread`` × the patch's largest standard deviation), and the
    direction becomes the normal of the plane through the ``V`` predicted surface points
    (:func:`plane_displacement`): about ``V`` times the network's cost. Measured with ``V = 5``
    (docs/metrics.md, "Averaging the field over patches"): the median angle to the exact
    direction within half a voxel of the surface 9.5° → 6.5° over seven test shapes, but the
    meshes extracted from it are no better (NC within ±0.0015, CD-L1 and F@1% up to 0.003
    worse) at 3-10x the time, so :func:`~equivision.pipelines.reconstruct.reconstruct` does
    not use it. Needs pose normalisation.
    """
    check_points(cloud, "cloud", 3)
    check_points(queries, "queries", 3, min_points=0)
    if cloud.ndim != 2 or queries.ndim != 2:
        raise InvalidInputError("cloud and queries must be (N, 3) and (Q, 3)")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
    k = int(model.cfg.k)  # type: ignore[union-attr]
    if cloud.shape[0] < k:
        raise DegenerateGeometryError(
            f"the cloud has {cloud.shape[0]} points; this model needs at least k={k}"
        )
    if pose_normalization is None:
        pose_normalization = bool(getattr(model.cfg, "pose_normalization", True))
    check_field_views(field_views, view_spread)
    if field_views > 1 and not pose_normalization:
        raise InvalidInputError("field_views > 1 needs pose normalisation (the views are placed in the "
                                "patch's canonical frame)")
    dtype = inference_dtype(model, compute_dtype)
    out = []
    for s in range(0, queries.shape[0], batch_size):
        q = queries[s : s + batch_size]
        if field_views > 1:
            off, disp = view_displacements(model, cloud, q, k, dtype, field_views, view_spread)
            out.append(plane_displacement(off, disp))
        elif pose_normalization:
            cp = canonical_patches(cloud, q, k)
            local = _net(model, cp.patches.to(cloud.dtype), cp.queries.to(cloud.dtype), dtype)
            out.append(vectors_from_frame(local, cp.frames).to(cloud.dtype))
        else:
            out.append(_net(model, *centred_patches(cloud, q, k), dtype).to(cloud.dtype))
    return torch.cat(out, 0) if out else cloud.new_zeros(0, 3)


def displacement_field(model: nn.Module, cloud: Tensor, **kwargs) -> Callable[[Tensor], Tensor]:
    """``queries -> displacement`` closure for :func:`equivision.recon.extract.extract_mesh_udf`."""

    @torch.inference_mode()
    def field(q: Tensor) -> Tensor:
        return predict_displacement(model, cloud, q.to(cloud.dtype), **kwargs)

    return field
