"""Novel views from one image by rotating its spherical embedding (Esteves et al. 2019, §3.2.4);
also :mod:`equivision.pipelines.synthesize`. It sits beside the models so that the tasks and
the experiments, which the layering keeps below the pipelines, can use it.

The image network ``Ψ`` (:class:`~equivision.models.image_to_sphere.ImageToSphere`) maps an
image of ``R₀·M`` to maps ``≈ Φ(R₀·M)`` that rotate with the object; the decoder ``Γ``
(:class:`~equivision.models.sphere_to_image.SphereToImage`) maps such maps back to an image.
A view of the object turned by ``Q`` is ``Γ(Q·Ψ(I))`` with ``(Q·f)(x) = f(Q⁻¹x)``
(:func:`equivision.sphere.rotate`): the image of pose ``R₀·M`` rotated by ``Q`` shows
``Q·R₀·M``, as the view dataset's targets (``rotate(Φ(M), R)`` is the target of pose ``R``).
Rotations are in the camera frame of :mod:`equivision.render.camera` (+z up in the image,
the camera looking along +y).

The decoder always sees band-limited maps (degrees ``< b``): the rotation is exact only
for them, so the identity rotation projects the embedding too, and the synthesis task
trains the decoder on the same projection (:func:`band_limit`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from equivision._validation import check_finite
from equivision.errors import CheckpointError, InvalidInputError, ShapeError

__all__ = ["DEFAULT_SYNTHESIS_MODEL", "Synthesizer", "band_limit", "check_pair", "decode_rotated", "embed",
           "load_synthesizer", "run_config_of", "synthesize", "turntable_rotations"]

#: The packaged decoder trained on ModelNet10 views; its configuration names its embedder.
DEFAULT_SYNTHESIS_MODEL = "sphere_to_image_modelnet10"


def band_limit(maps: Tensor) -> Tensor:
    """Grid maps ``(..., 2b, 2b)`` reduced to their degrees ``< b`` (the part
    :func:`~equivision.sphere.rotate` rotates exactly), in float64 then back to the input dtype."""
    from equivision.sphere.sht import isht, sht

    return isht(sht(maps.double())).to(maps.dtype)


def check_pair(embedder: nn.Module, decoder: nn.Module) -> None:
    """:class:`CheckpointError` unless ``decoder`` reads the maps ``embedder`` writes (same
    channels and bandwidth)."""
    from equivision.models.image_to_sphere import ImageToSphere
    from equivision.models.sphere_to_image import SphereToImage

    if not isinstance(embedder, ImageToSphere):
        raise CheckpointError(f"the embedder must be an image_to_sphere network, got "
                              f"{type(embedder).__name__}")
    if not isinstance(decoder, SphereToImage):
        raise CheckpointError(f"the decoder must be a sphere_to_image network, got "
                              f"{type(decoder).__name__}")
    e, d = embedder.cfg, decoder.cfg
    if (e.out_channels, e.bandwidth) != (d.in_channels, d.bandwidth):
        raise CheckpointError(f"the embedder writes {e.out_channels} maps at bandwidth {e.bandwidth}, "
                              f"the decoder reads {d.in_channels} maps at bandwidth {d.bandwidth}")


def _check_image(image: Tensor, embedder: nn.Module) -> None:
    if not isinstance(image, Tensor) or not image.is_floating_point():
        raise InvalidInputError("the image must be a floating-point tensor (K, S, S)")
    cfg = embedder.cfg
    want = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if tuple(image.shape) != want:
        raise ShapeError(f"the image must have shape {want} for this embedder, got {tuple(image.shape)}")
    check_finite(image, "image")


@torch.no_grad()
def embed(image: Tensor, embedder: nn.Module) -> Tensor:
    """The band-limited embedding ``(C, 2b, 2b)`` of one image ``(K, S, S)``."""
    _check_image(image, embedder)
    p = next(embedder.parameters())
    return band_limit(embedder(image[None].to(p.device, p.dtype))[0])


@torch.no_grad()
def decode_rotated(embedding: Tensor, rotations: Tensor, decoder: nn.Module, *,
                   batch_size: int = 16) -> Tensor:
    """Images ``(N, K, S, S)`` of ``decoder(rotate(embedding, rotations[n]))`` for an embedding
    ``(C, 2b, 2b)`` and rotations ``(N, 3, 3)``, decoded ``batch_size`` at a time."""
    from equivision.groups.spatial import check_rotation_matrix
    from equivision.sphere.rotate import rotate

    if not isinstance(rotations, Tensor) or rotations.ndim != 3 or tuple(rotations.shape[1:]) != (3, 3) \
            or rotations.shape[0] == 0:
        shape = tuple(rotations.shape) if isinstance(rotations, Tensor) else type(rotations).__name__
        raise ShapeError(f"rotations must have shape (N, 3, 3) with N >= 1, got {shape}")
    check_rotation_matrix(rotations.double(), "rotations", atol=1e-5)
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    p = next(decoder.parameters())
    out = []
    for i in range(0, rotations.shape[0], batch_size):
        r = rotations[i:i + batch_size].to(embedding.device, torch.float64)
        maps = rotate(embedding.double(), r[:, None])  # (n, C, 2b, 2b)
        out.append(decoder(maps.to(p.device, p.dtype)).float().cpu())
    return torch.cat(out)


def synthesize(image: Tensor, rotations: Tensor, embedder: nn.Module, decoder: nn.Module, *,
               batch_size: int = 16) -> Tensor:
    """Novel views ``(N, K_out, S, S)`` of the object in ``image (K_in, S, S)`` turned by each
    of ``rotations (N, 3, 3)``: embed once, rotate the embedding, decode. Both networks should
    be in eval mode (as :func:`equivision.models.load` returns them)."""
    check_pair(embedder, decoder)
    return decode_rotated(embed(image, embedder), rotations, decoder, batch_size=batch_size)


def _axis_rotations(axis: tuple[float, float, float], angles: Tensor) -> Tensor:
    from equivision.groups.spatial import SO3

    a = torch.tensor(axis, dtype=torch.float64).expand(len(angles), 3)
    return SO3.from_axis_angle(a, angles)


def turntable_rotations(views: int, axes: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 1.0),
                                                                                  (1.0, 0.0, 0.0))) -> Tensor:
    """``(len(axes) · views, 3, 3)`` float64: ``views`` rotations by ``360° k / views``
    (``k = 0 … views − 1``) about each axis in turn; by default first about the camera's up
    axis +z (a turntable), then about its horizontal axis +x (tilting toward the camera)."""
    if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= 360:
        raise InvalidInputError(f"views must be an integer from 1 to 360, got {views!r}")
    angles = torch.arange(views, dtype=torch.float64) * (2 * math.pi / views)
    return torch.cat([_axis_rotations(ax, angles) for ax in axes])


@dataclass
class Synthesizer:
    """A loaded embedder–decoder pair and the image channels each works with."""

    embedder: nn.Module
    decoder: nn.Module
    input_channels: list[str]
    output_channels: list[str]

    def __call__(self, image: Tensor, rotations: Tensor) -> Tensor:
        return synthesize(image, rotations, self.embedder, self.decoder)


def run_config_of(name_or_run: str | Path) -> dict:
    """The training run's configuration recorded with a run folder (``config.json``) or a
    packaged model (its JSON's ``config``); ``{}`` when none is recorded."""
    from equivision.models import PRETRAINED_DIR

    p = Path(name_or_run)
    path = p / "config.json" if p.is_dir() else PRETRAINED_DIR / f"{name_or_run}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read the configuration of {name_or_run} ({path}): {e}") from e
    cfg = data.get("config", data) if not p.is_dir() else data
    return cfg if isinstance(cfg, dict) else {}


def load_synthesizer(model: str | Path = DEFAULT_SYNTHESIS_MODEL, *, embedder: str | Path | None = None,
                     device: str = "cpu") -> Synthesizer:
    """The decoder ``model`` (packaged name or ``view-synthesis`` run folder) and its embedder:
    ``embedder`` when given, else the one its training configuration names (``task.embedder``).
    :class:`CheckpointError` when the two do not fit together."""
    from equivision.models import load

    decoder = load(model, model="sphere_to_image", device=device)
    task = run_config_of(model).get("task") or {}
    source = embedder if embedder is not None else task.get("embedder")
    if not isinstance(source, str | Path) or not str(source):
        raise CheckpointError(f"{model} does not name its embedder (task.embedder); give one explicitly")
    emb = load(source, model="image_to_sphere", device=device)
    check_pair(emb, decoder)
    in_ch = list(task.get("channels") or ["shading", "silhouette", "depth"][:emb.cfg.in_channels])
    out_ch = list(task.get("targets") or ["shading", "silhouette", "depth"][:decoder.cfg.out_channels])
    if len(in_ch) != emb.cfg.in_channels or len(out_ch) != decoder.cfg.out_channels:
        raise CheckpointError(f"{model}: its recorded channels {in_ch} → {out_ch} do not fit the networks "
                              f"({emb.cfg.in_channels} in, {decoder.cfg.out_channels} out)")
    return Synthesizer(emb, decoder, in_ch, out_ch)
