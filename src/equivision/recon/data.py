"""Training data for the displacement field: input clouds, near-surface queries, and the exact
displacement of each query to its nearest surface point, cached on disk.

One *prepared shape* holds (float32, unit-box coordinates: the mesh is normalised first)::

    cloud          (N, 3)  the input point cloud sampled on the surface (+ optional noise)
    cloud_normals  (N, 3)  the true normals of the faces the cloud points were drawn on
    queries        (Q, 3)  surface samples displaced by Gaussian noise at several scales
    displacements  (Q, 3)  closest surface point − query (exact, on the triangle mesh)
    query_scale    (Q,)    index of the noise scale each query was drawn with

Queries follow GeoUDF's preparation (surface samples + noise σ ∈ {0.003, 0.02, 0.05} of the
box in proportions 0.5 / 0.4 / 0.1 by default). Everything is reproducible from the seed: the
per-shape seed is derived from the dataset seed and the shape's name
(:func:`~equivision.data.seeds.name_seed`), so adding shapes does not change the others. Files
are safetensors (no pickle) in the dataset cache (:mod:`equivision.data.cache`), keyed by the
format version, shape name, configuration, seed and source file (name, size, time): a file
whose key differs, or that is unreadable, is rebuilt; a current one is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from equivision.data.cache import cache_key, file_fingerprint, is_current, read_cached, write_cached
from equivision.data.seeds import derive_seed, epoch_seed, name_seed
from equivision.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    InvalidInputError,
)
from equivision.geometry import add_gaussian_noise, normalize_mesh, sample_surface_poisson_disk
from equivision.io.meshes import Mesh, load_mesh, validate_mesh
from equivision.recon.closest import closest_points_on_mesh

FORMAT_VERSION = "1"
#: What the cache files record as their kind (and, for older readers, their format).
KIND = f"equivision-recon-data/{FORMAT_VERSION}"
DENSITIES = ("uniform", "blue", "varying")
KEYS = ("cloud", "cloud_normals", "queries", "displacements", "query_scale")


@dataclass(frozen=True)
class PrepConfig:
    """How one shape is turned into training data (all lengths are fractions of the unit box).

    ``density``: ``"uniform"`` (uniform by area), ``"blue"`` (Poisson-disk: even spacing) or
    ``"varying"`` (density changing smoothly across the shape by up to ``varying_ratio``
    between its sparsest and densest side, along a random direction, as in scans).
    """

    n_points: int = 10_000
    noise: float = 0.0
    density: str = "uniform"
    varying_ratio: float = 8.0
    n_queries: int = 16_384
    query_scales: tuple[float, ...] = (0.003, 0.02, 0.05)
    query_ratios: tuple[float, ...] = (0.5, 0.4, 0.1)

    def __post_init__(self) -> None:
        if int(self.n_points) != self.n_points or self.n_points < 1:
            raise InvalidInputError(f"n_points must be a positive integer, got {self.n_points}")
        if int(self.n_queries) != self.n_queries or self.n_queries < 1:
            raise InvalidInputError(f"n_queries must be a positive integer, got {self.n_queries}")
        if not (np.isfinite(self.noise) and self.noise >= 0):
            raise InvalidInputError(f"noise must be >= 0 (a fraction of the box), got {self.noise}")
        if self.density not in DENSITIES:
            raise InvalidInputError(f"density must be one of {DENSITIES}, got {self.density!r}")
        if not self.varying_ratio >= 1:
            raise InvalidInputError(f"varying_ratio must be >= 1, got {self.varying_ratio}")
        if len(self.query_scales) != len(self.query_ratios) or not self.query_scales:
            raise InvalidInputError("query_scales and query_ratios must have the same, non-zero length")
        if any(not s >= 0 for s in self.query_scales) or any(not r >= 0 for r in self.query_ratios):
            raise InvalidInputError("query scales and ratios must be >= 0")
        if not sum(self.query_ratios) > 0:
            raise InvalidInputError("query_ratios must not all be zero")

    def digest(self) -> str:
        """A short hash of the configuration (it names what a cached file was built with)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def shape_seed(seed: int, name: str) -> int:
    """The seed of one shape: stable across runs and independent of the other shapes."""
    return name_seed(seed, name)


# ----- sampling -----------------------------------------------------------------------------------
def sample_input_cloud(
    mesh: Mesh, n_points: int, *, noise: float = 0.0, density: str = "uniform",
    varying_ratio: float = 8.0, seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """An input cloud ``(points (n, 3), normals (n, 3))`` on ``mesh`` (see :class:`PrepConfig`
    for ``density``); Gaussian ``noise`` (σ, in the mesh's units) moves the points, not the
    normals. Reproducible with ``seed``."""
    from equivision.geometry import sample_surface_uniform

    cfg = PrepConfig(n_points=n_points, noise=noise, density=density, varying_ratio=varying_ratio)
    gen = torch.Generator().manual_seed(int(seed))
    if cfg.density == "uniform":
        pts, nrm = sample_surface_uniform(mesh, cfg.n_points, generator=gen)
    elif cfg.density == "blue":
        pts, nrm = sample_surface_poisson_disk(mesh, cfg.n_points, oversample=4, generator=gen)
    else:  # importance resampling of a uniform sample: weight exp(a·⟨x, d⟩), max/min = ratio
        cand, cnrm = sample_surface_uniform(mesh, 4 * cfg.n_points, generator=gen)
        d = torch.randn(3, generator=gen, dtype=torch.float64)
        t = cand.double() @ (d / d.norm())
        span = float(t.max() - t.min())
        w = torch.exp(np.log(cfg.varying_ratio) * (t - t.min()) / span) if span > 0 else torch.ones_like(t)
        keep = torch.multinomial(w, cfg.n_points, replacement=False, generator=gen)
        pts, nrm = cand[keep], cnrm[keep]
    if cfg.noise > 0:
        pts = add_gaussian_noise(pts, cfg.noise, generator=gen)
    return pts, nrm


def sample_queries(
    mesh: Mesh, n_queries: int, *, scales: Sequence[float] = (0.003, 0.02, 0.05),
    ratios: Sequence[float] = (0.5, 0.4, 0.1), seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Near-surface queries ``(queries (Q, 3), scale_index (Q,))``: uniform surface samples
    moved by isotropic Gaussian noise of σ = ``scales[i]`` for a fraction ``ratios[i]`` of
    them (counts rounded so they sum to ``n_queries``)."""
    from equivision.geometry import sample_surface_uniform

    cfg = PrepConfig(n_queries=n_queries, query_scales=tuple(scales), query_ratios=tuple(ratios))
    gen = torch.Generator().manual_seed(int(seed))
    r = np.asarray(cfg.query_ratios, dtype=np.float64)
    counts = np.floor(r / r.sum() * cfg.n_queries).astype(np.int64)
    counts[np.argmax(r)] += cfg.n_queries - counts.sum()
    base, _ = sample_surface_uniform(mesh, cfg.n_queries, generator=gen)
    idx = torch.from_numpy(np.repeat(np.arange(len(counts)), counts))
    sigma = torch.tensor(cfg.query_scales, dtype=torch.float64)[idx]
    eps = torch.randn(cfg.n_queries, 3, generator=gen, dtype=torch.float64)
    q = base.double() + sigma[:, None] * eps
    return q.to(mesh.vertices.dtype), idx.to(torch.int8)


def prepare_shape(mesh: Mesh, config: PrepConfig = PrepConfig(), *, seed: int = 0) -> dict[str, Tensor]:
    """Everything one shape contributes (see the module doc), in unit-box coordinates: the
    mesh is normalised to the unit bounding box first."""
    validate_mesh(mesh)
    m, _, _ = normalize_mesh(Mesh(mesh.vertices.double(), mesh.faces))
    cloud, normals = sample_input_cloud(m, config.n_points, noise=config.noise, density=config.density,
                                        varying_ratio=config.varying_ratio, seed=seed)
    q, scale_idx = sample_queries(m, config.n_queries, scales=config.query_scales,
                                  ratios=config.query_ratios, seed=seed + 1)
    closest, _, _ = closest_points_on_mesh(m, q, seed=seed)
    return {"cloud": cloud.float(), "cloud_normals": normals.float(), "queries": q.float(),
            "displacements": (closest - q).float(), "query_scale": scale_idx}


# ----- sources of shapes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeSource:
    """A named shape and how to get its mesh (loaded only when needed); ``fingerprint``
    identifies the source file's version (part of the cache key; empty for generated shapes)."""

    name: str
    load: Callable[[], Mesh] = field(compare=False)
    fingerprint: tuple = field(default=(), compare=False)


def procedural_sources(n_per_family: int, *, seed: int = 0, families: Sequence[str] | None = None,
                       resolution: int = 96) -> list[ShapeSource]:
    """``n_per_family`` seeded procedural shapes of each family (see
    :mod:`equivision.data.procedural`), meshed by marching cubes at ``resolution`` (part of
    the name, so a cache never mixes resolutions)."""
    from equivision.data.procedural import FAMILIES, make_shape

    fams = tuple(families) if families is not None else FAMILIES
    if int(n_per_family) != n_per_family or n_per_family < 1:
        raise InvalidInputError(f"n_per_family must be a positive integer, got {n_per_family}")
    if int(resolution) != resolution or resolution < 8:
        raise InvalidInputError(f"resolution must be an integer >= 8, got {resolution}")
    out = []
    for fam in fams:
        if fam not in FAMILIES:
            raise InvalidInputError(f"unknown shape family '{fam}'; families: {', '.join(FAMILIES)}")
        for i in range(int(n_per_family)):
            s = derive_seed(seed, i)
            out.append(ShapeSource(f"procedural-{fam}-{s}-r{resolution}",
                                   lambda fam=fam, s=s: make_shape(fam, s).mesh(resolution)))
    return out


def mesh_file_sources(paths: Sequence[str | os.PathLike[str]], *, prefix: str = "") -> list[ShapeSource]:
    """One source per mesh file (named ``prefix + stem``); files are read lazily, but must exist."""
    out = []
    for p in map(Path, paths):
        if not p.is_file():
            raise DataFileNotFoundError(f"mesh file {p} does not exist")
        fp = tuple(file_fingerprint([p])[0][1:])  # size and time: the name is the source's own
        out.append(ShapeSource(f"{prefix}{p.stem}", lambda p=p: load_mesh(p, dtype=torch.float64), fp))
    return out


def collection_sources(name: str = "abc", cls: str | None = None) -> list[ShapeSource]:
    """The meshes of a shared data collection (``abc``, ``classic``, ``shapenet10``)."""
    from equivision.data import mesh_files

    return mesh_file_sources(mesh_files(name, cls), prefix=f"{name}-" + (f"{cls}-" if cls else ""))


# ----- the on-disk cache ------------------------------------------------------------------------------
def _metadata(name: str, config: PrepConfig, seed: int) -> dict[str, str]:
    return {"format": KIND, "name": name, "config": json.dumps(asdict(config), sort_keys=True),
            "digest": config.digest(), "seed": str(int(seed))}


def _key(src: ShapeSource, config: PrepConfig, seed: int) -> str:
    return cache_key(KIND, src.name, asdict(config), int(seed), list(src.fingerprint))


def load_prepared(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read one prepared shape; typed errors for missing, corrupt or foreign files (it does
    not check the key: any prepared shape reads)."""
    p = Path(path)
    if not p.is_file():
        raise DataFileNotFoundError(f"prepared shape {p} does not exist")
    data, meta = read_cached(p, None)
    if not meta.get("format", "").startswith("equivision-recon-data/"):
        raise CorruptFileError(f"{p} is not an equivision reconstruction data file")
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise CorruptFileError(f"{p} lacks {', '.join(missing)}; delete it to rebuild")
    n, q = data["cloud"].shape[0], data["queries"].shape[0]
    if (data["cloud"].shape != (n, 3) or data["cloud_normals"].shape != (n, 3)
            or data["queries"].shape != (q, 3) or data["displacements"].shape != (q, 3)
            or data["query_scale"].shape != (q,)):
        raise CorruptFileError(f"{p} holds arrays of inconsistent shapes; delete it to rebuild")
    return data


def prepare_dataset(
    sources: Sequence[ShapeSource], out_dir: str | os.PathLike[str],
    config: PrepConfig = PrepConfig(), *, seed: int = 0, progress: bool = True,
) -> list[Path]:
    """Prepare every shape into ``out_dir/<name>.safetensors`` (created if needed), with a
    progress bar. Up-to-date files (same configuration, seed and format) are reused, so an
    interrupted run resumes; others are rebuilt. Returns the paths, in the order of
    ``sources``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InvalidInputError("shape names must be unique: "
                                f"{sorted({n for n in names if names.count(n) > 1})[:5]} repeat")
    bad = [n for n in names if not n or "/" in n or n.startswith(".")]
    if bad:
        raise InvalidInputError(f"shape names must be plain file names, got {bad[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    columns = (TextColumn("preparing {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("shapes", total=len(sources))
        for src in sources:
            path = out / f"{src.name}.safetensors"
            key = _key(src, config, seed)
            if not is_current(path, KIND, key):
                bar.update(task, description=src.name)
                mesh = src.load()
                data = prepare_shape(mesh, config, seed=shape_seed(seed, src.name))
                write_cached(path, data, KIND, key, _metadata(src.name, config, seed))
            paths.append(path)
            bar.advance(task)
    return paths


class PreparedShapes(torch.utils.data.Dataset):
    """The prepared shapes as a dataset: item ``i`` is shape ``i``'s cloud with
    ``n_queries`` of its queries (a fresh seeded subset per ``epoch``; all if ``None``)."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], n_queries: int | None = 2048,
                 seed: int = 0) -> None:
        if not paths:
            raise InvalidInputError("no prepared shapes given")
        if n_queries is not None and (int(n_queries) != n_queries or n_queries < 1):
            raise InvalidInputError(f"n_queries must be a positive integer or None, got {n_queries}")
        self.paths = [Path(p) for p in paths]
        for p in self.paths:
            if not p.is_file():
                raise DataFileNotFoundError(f"prepared shape {p} does not exist")
        self.n_queries, self.seed, self.epoch = n_queries, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        data = load_prepared(self.paths[i])
        q = data["queries"].shape[0]
        if self.n_queries is not None:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, i))
            pick = torch.randint(q, (self.n_queries,), generator=g) if q < self.n_queries \
                else torch.randperm(q, generator=g)[: self.n_queries]
            for k in ("queries", "displacements", "query_scale"):
                data[k] = data[k][pick]
        return data
