"""3D pose from images with the cross-domain embeddings: image–image (relative), image–mesh and
image–category (absolute, against a template of the category's canonical teacher maps).

The image network ``Ψ`` maps an image of ``R·M`` to approximately ``Φ(R·M)``, the teacher's
layer maps of the posed mesh; every answer is :func:`~equivision.sphere.relative_pose` of two
embeddings, so it carries that function's convention: ``relative(a, b)`` is the rotation
taking the object's pose in ``a`` onto its pose in ``b``; ``image_to_mesh(img, mesh)`` the
rotation ``R`` with the image showing ``R·mesh``; ``absolute(img, category)`` the rotation
from the category's canonical pose (the collection's axes) to the image's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from equivision.errors import CheckpointError, DataNotAvailableError, InvalidInputError, ShapeError
from equivision.io.images import ImageFile
from equivision.io.meshes import Mesh
from equivision.sphere.pose import RelativePose, relative_pose

__all__ = ["DEFAULT_POSE_MODEL", "TEMPLATES_FILE", "PoseEstimator", "compute_templates", "fit_image",
           "load_templates", "save_templates", "templates_path"]

#: The packaged image network ``pose`` uses by default (not shipped yet: a clear error until it is).
DEFAULT_POSE_MODEL = "image_to_sphere_modelnet10"
#: Beside a run folder's checkpoints; a packaged model ships ``<name>.templates.safetensors``.
TEMPLATES_FILE = "templates.safetensors"
_TEMPLATES_KIND = "equivision-templates/1"


# ----------------------------------------------------------------------------- images

def fit_image(image: ImageFile, channels: tuple[str, ...], size: int) -> tuple[Tensor, list[str]]:
    """The network input ``(K, size, size)`` for ``channels`` from an image file, and notes on
    what was derived. A missing silhouette is the non-background pixels of the shading (the
    renderer's background is 0, its lit surface at least 0.1); a missing depth cannot be
    derived and is refused, as is a missing shading. Square images of another size are resized
    (area averaging down, bilinear up; the silhouette thresholded at 0.5): the camera's field
    of view is the whole square, so resizing keeps the geometry. Non-square ones are refused:
    cropping or padding would change the field of view the network was trained with."""
    import torch.nn.functional as F

    x, have = image.data, image.channels
    notes: list[str] = []
    _, h, w = x.shape
    if h != w:
        raise ShapeError(f"the image is {w}×{h} pixels; the network reads square images of the "
                         f"fixed camera ({size}×{size}); crop it to a square around the object first")
    planes: list[Tensor] = []
    for c in channels:
        if c in have:
            planes.append(x[have.index(c)])
        elif c == "silhouette" and "shading" in have:
            planes.append((x[have.index("shading")] > 0.05).float())
            notes.append("silhouette derived from the non-black pixels of the shading")
        else:
            raise InvalidInputError(
                f"the network reads {', '.join(channels)}, but the image holds only {', '.join(have)}: "
                f"{c} cannot be derived; give an image with {c} (equivision render --tensors FILE "
                "writes all channels) or a network trained on shading only")
    y = torch.stack(planes)
    if h != size:
        mode = "area" if h > size else "bilinear"
        kw: dict[str, Any] = {} if mode == "area" else {"align_corners": False}
        y = F.interpolate(y[None], size=(size, size), mode=mode, **kw)[0].clamp(0, 1)
        for i, c in enumerate(channels):
            if c == "silhouette":
                y[i] = (y[i] >= 0.5).float()
        notes.append(f"resized from {h}×{h} to {size}×{size}")
    return y, notes


# ----------------------------------------------------------------------------- templates

def compute_templates(views_folder: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Per category, the mean ``(C, 2b, 2b)`` of the teacher's canonical maps of a view
    dataset's meshes. The category is a mesh name's part before ``/`` (``chair/chair_0001``),
    else its label number."""
    from equivision.tasks.views import ViewDataset

    ds = ViewDataset(views_folder)
    names = ds.manifest["names"]
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    k = 0
    for s in range(len(ds.manifest["shards"])):
        sh = ds.shard(s)
        for j in range(sh["canonical"].shape[0]):
            name = names[k]
            cat = name.split("/")[0] if "/" in name else str(int(sh["labels"][j]))
            m = sh["canonical"][j].double()
            sums[cat] = sums[cat] + m if cat in sums else m
            counts[cat] = counts.get(cat, 0) + 1
            k += 1
    return {c: (sums[c] / counts[c]).float() for c in sorted(sums)}


def save_templates(path: str | os.PathLike[str], templates: dict[str, Tensor], teacher: dict[str, Any],
                   *, overwrite: bool = False) -> Path:
    """Write templates (category → ``(C, 2b, 2b)``) and the teacher they come from (``name``,
    ``layer``, optionally ``digest``) as safetensors; the output is checked first."""
    from safetensors.torch import save_file

    from equivision.io import OutputSpec, atomic_path, check_outputs

    p = Path(path)
    check_outputs([OutputSpec("templates", p, (".safetensors",))], overwrite=overwrite)
    if not templates:
        raise InvalidInputError("no templates to save")
    meta = {"format": _TEMPLATES_KIND, "teacher": json.dumps(teacher)}
    with atomic_path(p, overwrite=overwrite) as tmp:
        save_file({c: t.float().contiguous() for c, t in templates.items()}, str(tmp), metadata=meta)
    return p


def load_templates(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(templates, teacher)`` of :func:`save_templates`'s file."""
    from safetensors import SafetensorError, safe_open

    from equivision.errors import CorruptFileError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _TEMPLATES_KIND:
                raise CorruptFileError(f"{path} is not an equivision templates file")
            return {k: f.get_tensor(k) for k in f.keys()}, json.loads(meta.get("teacher", "{}"))  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptFileError(f"{path} is not a readable templates file ({e})") from e


def templates_path(model: str | os.PathLike[str]) -> Path:
    """Where a model's templates live: ``<run>/templates.safetensors`` for a run folder,
    ``<pretrained>/<name>.templates.safetensors`` for a packaged name."""
    from equivision.models import PRETRAINED_DIR

    p = Path(model)
    return p / TEMPLATES_FILE if p.is_dir() else PRETRAINED_DIR / f"{model}.templates.safetensors"


# ----------------------------------------------------------------------------- the estimator

def _model_record(model: str) -> dict[str, Any]:
    """The run configuration recorded with a packaged name or run folder (no weights read)."""
    from equivision.models import PRETRAINED_DIR

    p = Path(model)
    if p.is_dir():
        cfg = p / "config.json"
        return json.loads(cfg.read_text()) if cfg.is_file() else {}
    meta = PRETRAINED_DIR / f"{model}.json"
    if "/" in str(model) or not meta.is_file():
        return {}
    return json.loads(meta.read_text()).get("config") or {}


def _find_manifest(views: str, model: Path) -> Path | None:
    """The training view dataset's manifest: a relative path was relative to where training
    ran, which is not recorded, so the working folder and the run folder's ancestors are tried."""
    v = Path(views)
    tries = [v]
    if not v.is_absolute() and model.is_dir():
        tries += [a / v for a in model.resolve().parents]
    for t in tries:
        if (t / "manifest.json").is_file():
            return t / "manifest.json"
    return None


@dataclass
class PoseEstimator:
    """An image network with the teacher whose maps it imitates.

    Build with :meth:`load` (packaged name or run folder) or directly from modules:
    ``net`` maps ``(B, K, S, S)`` to ``(B, C, 2b, 2b)``; ``channels`` names its ``K`` input
    planes; ``teacher`` (optional until a mesh is needed) is a spherical CNN with ``layer``;
    ``templates`` category → ``(C, 2b, 2b)``. ``out_bandwidth`` is the SO(3) grid's (``None``:
    the maps' own ``b``; the grid argmax is refined below the grid in any case)."""

    net: nn.Module
    channels: tuple[str, ...]
    image_size: int
    teacher: nn.Module | None = None
    layer: str | None = None
    templates: dict[str, Tensor] = field(default_factory=dict)
    out_bandwidth: int | None = None
    name: str = "model"
    # what load() found for a teacher that is loaded on first use: a name, run folder or module
    _teacher_ref: Any = field(default=None, init=False, repr=False)
    _device: str = field(default="cpu", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.teacher is not None:
            self.check_teacher()

    # -- construction
    @classmethod
    def load(cls, model: str = DEFAULT_POSE_MODEL, *, teacher: str | nn.Module | None = None,
             layer: str | None = None, templates: str | os.PathLike[str] | None = None,
             device: str = "cpu") -> PoseEstimator:
        """The image network ``model`` (packaged name or run folder of ``equivision train
        image-to-sphere``) and its teacher: ``teacher``/``layer`` when given, else the ones its
        templates file records, else those of the view dataset it was trained on; the network's
        maps are checked against that layer's at once. A missing packaged model is a one-line
        :class:`~equivision.errors.UnknownModelError`."""
        from equivision.models import load

        net = load(model, model="image_to_sphere", device=device)
        rec = _model_record(model)
        task = rec.get("task") or {}
        chans = tuple(task.get("channels") or (("shading",) if net.cfg.in_channels == 1
                                               else ("shading", "silhouette", "depth")))
        if len(chans) != net.cfg.in_channels:
            raise CheckpointError(f"{model}: records channels {list(chans)} for a network of "
                                  f"{net.cfg.in_channels} input channels")
        tpath = Path(templates) if templates is not None else templates_path(model)
        temps: dict[str, Tensor] = {}
        teacher_info: dict[str, Any] = {}
        if tpath.is_file():
            temps, teacher_info = load_templates(tpath)
        elif templates is not None:
            raise DataNotAvailableError(f"templates file {tpath} does not exist")
        if not teacher_info and task.get("train_views"):
            mpath = _find_manifest(str(task["train_views"]), Path(model))
            if mpath is not None:
                teacher_info = json.loads(mpath.read_text()).get("teacher") or {}
        est = cls(net, chans, int(net.cfg.image_size), None, layer or teacher_info.get("layer"),
                  temps, name=str(model))
        est._teacher_ref = teacher if teacher is not None else teacher_info.get("name")
        est._device = device
        if est._teacher_ref is not None:  # checked at once, so that no answer comes from a mismatch
            est.get_teacher()
        return est


    def get_teacher(self) -> nn.Module:
        """The teacher, loaded on first use and checked against the network."""
        if self.teacher is None:
            ref = self._teacher_ref
            if ref is None or self.layer is None:
                raise CheckpointError(f"{self.name}: no teacher is known for this network (its view "
                                      "dataset is not found); pass --teacher NAME|RUN and --layer")
            if isinstance(ref, nn.Module):
                self.teacher = ref.eval()
            else:
                from equivision.tasks.shapes_sphere import load_spherical_cnn

                self.teacher = load_spherical_cnn(str(ref), device=self._device)
            self.check_teacher()
        return self.teacher

    def check_teacher(self) -> None:
        """The network's maps must have the teacher layer's channels and bandwidth."""
        from equivision.tasks.views import input_bandwidth

        t = self.teacher
        assert t is not None
        layers = list(getattr(t, "layer_names", []))
        if self.layer not in layers:
            raise CheckpointError(f"teacher has no layer {self.layer!r}; layers: {', '.join(layers)}")
        bw = input_bandwidth(t)
        with torch.no_grad():
            p = next(t.parameters())
            x = torch.zeros(1, t.cfg.in_channels, 2 * bw, 2 * bw, dtype=p.dtype, device=p.device)
            c, n = t.features(x, self.layer).shape[1:3]
        cfg = self.net.cfg
        if (int(c), int(n) // 2) != (cfg.out_channels, cfg.bandwidth):
            raise CheckpointError(
                f"{self.name} predicts {cfg.out_channels} channels at bandwidth {cfg.bandwidth}, but "
                f"teacher layer {self.layer} has {int(c)} channels at bandwidth {int(n) // 2}")
        for k, v in self.templates.items():
            if tuple(v.shape) != (cfg.out_channels, 2 * cfg.bandwidth, 2 * cfg.bandwidth):
                raise CheckpointError(f"template {k!r} has shape {tuple(v.shape)}; the network "
                                      f"predicts {(cfg.out_channels, 2 * cfg.bandwidth, 2 * cfg.bandwidth)}")

    # -- embeddings
    @torch.no_grad()
    def embed_images(self, images: Tensor) -> Tensor:
        """Images ``(B, K, S, S)`` in ``[0, 1]`` to maps ``(B, C, 2b, 2b)``."""
        k, s = len(self.channels), self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (k, s, s):
            raise ShapeError(f"images must have shape (B, {k}, {s}, {s}) ({', '.join(self.channels)}), "
                             f"got {tuple(images.shape)}")
        if not torch.isfinite(images).all():
            raise InvalidInputError("images have NaN or infinite values")
        p = next(self.net.parameters())
        return self.net(images.to(p.device, p.dtype)).float().cpu()

    def embed_file(self, image: ImageFile) -> tuple[Tensor, list[str]]:
        """One image file to maps ``(C, 2b, 2b)`` (:func:`fit_image`), with its notes."""
        x, notes = fit_image(image, self.channels, self.image_size)
        return self.embed_images(x[None])[0], notes

    @torch.no_grad()
    def embed_mesh(self, mesh: Mesh) -> Tensor:
        """The teacher's maps ``(C, 2b, 2b)`` of the mesh as it is, cast exactly as the view
        dataset casts its meshes (:func:`~equivision.tasks.views.canonical_maps`). The cast
        does not depend on position or size; the mesh is first moved to the unit box in
        float64 only so that Embree's float32 rays stay exact for far-off meshes."""
        from equivision.geometry.normalize import check_mesh_area, normalize_mesh
        from equivision.tasks.views import canonical_maps, input_bandwidth

        teacher = self.get_teacher()
        check_mesh_area(mesh)
        unit, _, _ = normalize_mesh(Mesh(mesh.vertices.double(), mesh.faces))
        assert self.layer is not None
        return canonical_maps(unit, teacher, self.layer, input_bandwidth(teacher)).float().cpu()

    # -- poses
    def _pose(self, a: Tensor, b: Tensor) -> RelativePose:
        return relative_pose(a.double(), b.double(), out_bandwidth=self.out_bandwidth)

    def relative(self, a: Tensor, b: Tensor) -> RelativePose:
        """Rotation from image ``a``'s object pose to image ``b``'s; images ``(K, S, S)``."""
        e = self.embed_images(torch.stack([a, b]))
        return self._pose(e[0], e[1])

    def image_to_mesh(self, image: Tensor, mesh: Mesh) -> RelativePose:
        """``R`` with ``image`` ``(K, S, S)`` showing ``R·mesh``."""
        return self._pose(self.embed_mesh(mesh), self.embed_images(image[None])[0])

    def absolute(self, image: Tensor, category: str) -> RelativePose:
        """Rotation from ``category``'s canonical pose to the object's pose in ``image``."""
        return self._pose(self.template(category), self.embed_images(image[None])[0])

    def template(self, category: str) -> Tensor:
        if not self.templates:
            raise DataNotAvailableError(
                f"{self.name} has no category templates; make them from a view dataset with "
                "'equivision pose --make-templates VIEWS --model MODEL' (written beside the model)")
        if category not in self.templates:
            raise InvalidInputError(f"no template for category {category!r}; known: "
                                    f"{', '.join(sorted(self.templates))}")
        return self.templates[category]
