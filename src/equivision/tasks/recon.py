"""The ``recon`` task: train PEIF's displacement predictor (``equivision train recon``).

Data (prepared once into ``data_dir`` by :func:`equivision.recon.data.prepare_dataset`,
reproducible from ``data_seed``): seeded procedural shapes of every family plus the shared
ABC CAD models, the last ``abc_holdout`` of which (in sorted order) are kept out of training
for evaluation, with more procedural shapes of another seed; with ``modelnet10_per_class`` N > 0,
also N meshes of each class of ModelNet10's *training* split (a pick seeded by ``data_seed``;
its test split and the benchmark's ShapeNet objects stay unseen). Without the shared data the
task trains and evaluates on procedural shapes alone (and says so in the run's log).

A training item is one shape's input cloud with ``queries_per_item`` of its near-surface
queries (a subset fixed by the item's index, so runs resume bitwise); items repeat each shape
``repeats`` times with different subsets. The K-NN patches are put in their canonical frames
(or, with ``task.model.pose_normalization: false``, the paper's ablation, only centred)
in the dataset (a data-loader worker when ``train.num_workers > 0``); the loss back-rotates the
network's output and compares it with the exact displacement (L1), plus ``memory_weight`` ×
the memory-bank separation term, as in the paper (β = 0.1).

Eval metrics: ``l1`` (the loss's displacement term), ``udf_error`` (mean | |Δ̂| − |Δ| |, in
unit-box units) and ``angle_deg`` (mean angle between predicted and true displacement for
queries farther than 0.005 from the surface).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from equivision._validation import require_positive
from equivision.data.seeds import eval_seed, stream_seed
from equivision.errors import ConfigError
from equivision.models.peif import PEIFConfig
from equivision.recon.data import PrepConfig, load_prepared
from equivision.recon.frames import canonical_patches
from equivision.recon.predict import centred_patches
from equivision.training.config import check_fields
from equivision.training.tasks import Task, register_task


def default_recon_model() -> PEIFConfig:
    """The CPU-sized configuration the packaged default uses (D = 64, 4 × 256 memory items)."""
    return PEIFConfig(
        k=32,
        feature_dim=64,
        top_k=8,
        memory_heads=4,
        memory_items=256,
        mlp_a=[256, 256, 256, 256],
        mlp_d=[256, 256, 256],
    )


@dataclass
class ReconDataFields:
    """The data fields of the reconstruction tasks (PEIF's and the VN global field's share
    them, with the same defaults, so both use one prepared cache)."""

    data_dir: str = "runs/recon-data"
    """Cache of prepared shapes (reused when up to date)."""
    data_seed: int = 0
    procedural_per_family: int = 8
    eval_procedural_per_family: int = 1
    use_abc: bool = True
    abc_holdout: int = 3
    modelnet10_per_class: int = 0
    """Training meshes per class from ModelNet10's training split (0: none)."""
    n_points: int = 10_000
    noise: float = 0.0
    prep_queries: int = 16_384
    queries_per_item: int = 2048
    repeats: int = 50

    def check_data_fields(self, k: int) -> None:
        """:class:`ConfigError` for a bad data field (``k``: the model's neighbour count)."""
        check_fields(self, "task")
        for name in ("procedural_per_family", "n_points", "prep_queries", "queries_per_item", "repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"task.{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.modelnet10_per_class, bool) or not isinstance(self.modelnet10_per_class, int) \
                or self.modelnet10_per_class < 0:
            raise ConfigError(
                f"task.modelnet10_per_class must be an integer >= 0, got {self.modelnet10_per_class!r}")
        if self.n_points < k:
            raise ConfigError(f"task.n_points ({self.n_points}) must be >= task.model.k ({k})")
        require_positive(self.noise, "task.noise", allow_zero=True, error=ConfigError)


@dataclass
class ReconConfig(ReconDataFields):
    memory_weight: float = 0.1
    model: PEIFConfig = field(default_factory=default_recon_model)

    def __post_init__(self) -> None:
        self.check_data_fields(self.model.k)
        require_positive(self.memory_weight, "task.memory_weight", allow_zero=True, error=ConfigError)


class PatchQueries(Dataset):
    """Items of prepared shapes as canonical patches: ``len = shapes × repeats``."""

    def __init__(self, paths: list[Path], k: int, queries_per_item: int, repeats: int, seed: int,
                 pose_normalization: bool = True) -> None:
        self.paths, self.k, self.n_q, self.repeats, self.seed = paths, k, queries_per_item, repeats, seed
        self.pose_normalization = pose_normalization

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        data = load_prepared(self.paths[i % len(self.paths)])
        g = torch.Generator().manual_seed(stream_seed(self.seed, i))
        q_all = data["queries"].shape[0]
        pick = torch.randperm(q_all, generator=g)[: self.n_q]
        if len(pick) < self.n_q:
            pick = torch.randint(q_all, (self.n_q,), generator=g)
        queries, target = data["queries"][pick], data["displacements"][pick]
        if not self.pose_normalization:  # the ablation: centred patches, world axes
            patches, centred = centred_patches(data["cloud"], queries, self.k)
            return {
                "patches": patches.float(),
                "queries": centred.float(),
                "rotations": torch.eye(3).expand(len(pick), 3, 3).contiguous(),
                "target": target.float(),
            }
        cp = canonical_patches(data["cloud"], queries, self.k)
        return {
            "patches": cp.patches.float(),
            "queries": cp.queries.float(),
            "rotations": cp.frames.rotations.float(),
            "target": target.float(),
        }


def _concat(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([it[k] for it in items], 0) for k in items[0]}


def recon_sources(cfg: ReconConfig) -> tuple[list, list, str]:
    """(train sources, eval sources, a note on what data was used)."""
    from equivision.data import find_data_root
    from equivision.recon.data import collection_sources, mesh_file_sources, procedural_sources

    train = procedural_sources(cfg.procedural_per_family, seed=cfg.data_seed)
    evals = procedural_sources(cfg.eval_procedural_per_family, seed=eval_seed(cfg.data_seed))
    note = f"{len(train)} procedural training shapes"
    if cfg.use_abc and find_data_root() is not None:
        abc = collection_sources("abc")
        hold = min(cfg.abc_holdout, len(abc) - 1)
        train += abc[: len(abc) - hold]
        evals += abc[len(abc) - hold :]
        note += f" + {len(abc) - hold} ABC (held out: {', '.join(s.name for s in abc[len(abc) - hold :])})"
    elif cfg.use_abc:
        note += " (no shared data: ABC not used)"
    if cfg.modelnet10_per_class > 0:
        if find_data_root() is None:
            note += " (no shared data: ModelNet10 not used)"
        else:
            picked = modelnet10_training_meshes(cfg.modelnet10_per_class, cfg.data_seed)
            train += mesh_file_sources(picked, prefix="modelnet10-")
            note += f" + {len(picked)} ModelNet10 training meshes"
    return train, evals, note


def modelnet10_training_meshes(per_class: int, seed: int) -> list[Path]:
    """``per_class`` mesh files of each ModelNet10 class from its training split (all of a
    class if it has fewer), picked by a permutation seeded by ``seed`` and the class, in
    class then name order."""
    from equivision.data import mesh_files
    from equivision.data.registry import get_collection

    out: list[Path] = []
    for i, cls in enumerate(get_collection("modelnet10").classes):
        files = mesh_files("modelnet10", cls, split="train")
        g = torch.Generator().manual_seed(stream_seed(seed, 1_000 + i))
        pick = torch.randperm(len(files), generator=g)[:per_class].sort().values
        out += [files[j] for j in pick.tolist()]
    return out


@register_task("recon")
class ReconTask(Task):
    config_cls = ReconConfig
    model_name = "peif"
    best_metric, best_mode = "l1", "min"
    collate = staticmethod(_concat)

    def datasets(self, cfg: ReconConfig) -> tuple[Dataset, Dataset]:
        from equivision.recon.data import prepare_dataset

        train_src, eval_src, _ = recon_sources(cfg)
        prep = PrepConfig(n_points=cfg.n_points, noise=cfg.noise, n_queries=cfg.prep_queries)
        root = Path(cfg.data_dir)
        train_paths = prepare_dataset(train_src, root, prep, seed=cfg.data_seed)
        eval_paths = prepare_dataset(eval_src, root, prep, seed=cfg.data_seed)
        k, pose = cfg.model.k, cfg.model.pose_normalization
        return (
            PatchQueries(train_paths, k, cfg.queries_per_item, cfg.repeats, cfg.data_seed, pose),
            PatchQueries(eval_paths, k, cfg.queries_per_item, 1, cfg.data_seed + 1, pose),
        )

    def loss(self, model: torch.nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        local = model(batch["patches"], batch["queries"])
        # back to the world frame as a vector (Δq = Δq̄ Uᵀ), as recon.frames.vectors_from_frame
        pred = (local[..., None, :] @ batch["rotations"].transpose(-1, -2))[..., 0, :]
        target = batch["target"]
        l1 = (pred - target).abs().sum(-1).mean()
        net = model.module if hasattr(model, "module") else model
        sep = net.memory_separation_loss()
        loss = l1 + self._memory_weight * sep
        with torch.no_grad():
            udf_err = (pred.norm(dim=-1) - target.norm(dim=-1)).abs().mean()
            far = target.norm(dim=-1) > 0.005
            cos = torch.nn.functional.cosine_similarity(pred[far], target[far], dim=-1).clamp(-1, 1)
            angle = torch.rad2deg(torch.acos(cos)).mean() if bool(far.any()) else torch.zeros(())
        return loss, {"l1": l1.detach(), "separation": sep.detach(), "udf_error": udf_err, "angle_deg": angle}

    _memory_weight: float = 0.1  # set from the config when the model is built for a run

    def build_model(self, cfg: ReconConfig) -> torch.nn.Module:
        self._memory_weight = cfg.memory_weight
        return super().build_model(cfg)
