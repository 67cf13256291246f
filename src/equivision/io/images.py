"""Reading and writing single images for the image network: PNG/JPEG through Pillow, and a
lossless safetensors image file that ``equivision render --tensors`` writes.

:func:`read_image` returns :class:`ImageFile`: ``data`` float32 ``(K, H, W)`` in ``[0, 1]`` and
``channels``, the name of each plane (``"shading"``, ``"silhouette"``, ``"depth"``):

* grayscale (8-bit ``L``, 16-bit ``I;16`` / ``I``, 1-bit): one plane, ``shading`` (16-bit
  values are divided by 65535, 8-bit by 255);
* RGB (also palette and CMYK, converted): the luminance ``0.299 R + 0.587 G + 0.114 B`` as
  ``shading`` — unless the PNG carries the text chunk ``equivision-channels``, written by
  :func:`write_image`, naming what each of its planes is;
* with alpha (``LA``, ``RGBA``, a transparent palette): the grey value composited on black
  (the renderer's background) as ``shading`` and the alpha as ``silhouette``;
* a ``.safetensors`` file holding ``image`` ``(K, H, W)`` or ``(1, K, H, W)`` float, its
  metadata ``channels`` naming the planes: read bit for bit.

Refused with typed errors: a path that is not a file (:class:`DataFileNotFoundError`), a file
that is not a readable image (:class:`CorruptFileError`), an unknown extension
(:class:`UnsupportedFormatError`), 0 pixels, a constant image (nothing to see), NaN or values
outside ``[0, 1]`` (:class:`InvalidInputError`). Sizes and channel counts are not decided
here: the pose pipeline fits them to its network (``docs/pose.md``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from equivision.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    InvalidInputError,
    ShapeError,
    UnsupportedFormatError,
)

__all__ = ["CHANNEL_NAMES", "IMAGE_FORMATS", "ImageFile", "read_image", "write_image", "write_image_tensors"]

#: Plane names an image file may declare (the renderer's channels).
CHANNEL_NAMES = ("shading", "silhouette", "depth")
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".safetensors")
_PNG_KEY = "equivision-channels"
#: PNG text chunk of ``equivision render``'s picture of one view: the channel names of the
#: tiles laid side by side, ``STRIP_GAP`` pixels apart.
STRIP_KEY = "equivision-strip"
STRIP_GAP = 2
_SAFETENSORS_KIND = "equivision-image/1"


@dataclass(frozen=True)
class ImageFile:
    """One image read from a file: ``data`` float32 ``(K, H, W)`` in ``[0, 1]``, ``channels``
    the ``K`` plane names, ``source`` a short description of what was in the file."""

    data: Tensor
    channels: tuple[str, ...]
    source: str


def _check_channels(names: Sequence[str], k: int, where: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in names)
    if len(names) != k or any(n not in CHANNEL_NAMES for n in names) or len(set(names)) != k:
        raise CorruptFileError(f"{where}: declares channels {list(names)} for {k} planes; expected "
                               f"{k} distinct names of {', '.join(CHANNEL_NAMES)}")
    return names


def _check_content(data: Tensor, where: str) -> Tensor:
    if data.ndim != 3 or data.shape[0] == 0 or data.shape[1] == 0 or data.shape[2] == 0:
        raise InvalidInputError(f"{where}: the image is empty ({tuple(data.shape)})")
    if not torch.isfinite(data).all():
        raise InvalidInputError(f"{where}: the image has NaN or infinite values")
    if float(data.min()) < 0 or float(data.max()) > 1:
        raise InvalidInputError(f"{where}: values must lie in [0, 1], got [{float(data.min()):.3g}, "
                                f"{float(data.max()):.3g}]")
    if float(data.max() - data.min()) == 0:
        raise InvalidInputError(f"{where}: the image is constant ({float(data.flatten()[0]):.3g} "
                                "everywhere): there is nothing to see")
    return data


def _read_safetensors(path: Path) -> ImageFile:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "image" not in f.keys():  # noqa: SIM118 (safe_open has no __contains__)
                raise CorruptFileError(f"{path}: a safetensors file without an 'image' tensor "
                                       "(write one with 'equivision render --tensors')")
            image = f.get_tensor("image")
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptFileError(f"{path} is not a readable safetensors image ({e})") from e
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 4:
        raise ShapeError(f"{path} holds {image.shape[0]} images; give one image per file "
                         "(render each pose with its own --tensors file)")
    if image.ndim != 3 or not image.is_floating_point():
        raise ShapeError(f"{path}: 'image' must be a float tensor (K, H, W), got {image.dtype} "
                         f"{tuple(image.shape)}")
    names = meta.get("channels")
    if names is None:
        raise CorruptFileError(f"{path}: the metadata does not name the image's channels")
    chans = _check_channels(names.split(","), image.shape[0], str(path))
    return ImageFile(_check_content(image.float(), str(path)), chans, "safetensors " + ",".join(chans))


def _read_pillow(path: Path) -> ImageFile:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            info = dict(im.info)
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode == "PA":
                im = im.convert("RGBA")
            arr = np.asarray(im)
            mode = im.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptFileError(f"{path} is not a readable image ({' '.join(str(e).split())[:160]})") from e
    where = str(path)
    if arr.size == 0:
        raise InvalidInputError(f"{where}: the image is empty ({mode}, {arr.shape})")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNGs open as I;16 or I; a 32-bit integer image has no fixed scale
        data = torch.from_numpy(arr.astype(np.float64) / 65535.0)[None]
        if mode == "I" and float(data.max()) > 1:
            raise InvalidInputError(f"{where}: 32-bit integer image with values above 65535")
        kind = "16-bit grey"
    elif mode == "F":
        data = torch.from_numpy(arr.astype(np.float64))[None]
        kind = "float grey"
    elif mode in ("L", "LA", "RGB", "RGBA"):
        a = torch.from_numpy(arr.astype(np.float64) / 255.0)
        if a.ndim == 2:
            a = a[:, :, None]
        a = a.permute(2, 0, 1)
        strip = info.get(STRIP_KEY)
        if strip is not None and mode == "L":
            return _read_strip(a, str(strip), where)
        text = info.get(_PNG_KEY)
        if text is not None and mode in ("L", "RGB"):
            chans = _check_channels(str(text).split(","), a.shape[0] if mode == "RGB" else 1, where)
            if mode == "RGB" and len(chans) < 3:
                raise CorruptFileError(f"{where}: declares {len(chans)} channels in an RGB file")
            return ImageFile(_check_content(a.float(), where), chans, f"8-bit {','.join(chans)}")
        grey = a[:1] if mode in ("L", "LA") else (0.299 * a[0:1] + 0.587 * a[1:2] + 0.114 * a[2:3])
        if mode in ("LA", "RGBA"):
            alpha = a[-1:]
            data = torch.cat([grey * alpha, alpha])  # composited on the renderer's black background
            return ImageFile(_check_content(data.float(), where), ("shading", "silhouette"),
                             f"8-bit {'grey' if mode == 'LA' else 'RGB'} with alpha")
        data = grey
        kind = "8-bit grey" if mode == "L" else "8-bit RGB (luminance)"
    else:
        raise UnsupportedFormatError(f"{where}: image mode {mode!r} is not supported; save it as "
                                     "8- or 16-bit grey, RGB or RGBA")
    return ImageFile(_check_content(data.float(), where), ("shading",), kind)


def _read_strip(a: Tensor, names: str, where: str) -> ImageFile:
    """The channels of a render picture ``(1, S, K·S + gap·(K − 1))`` named ``names``."""
    chans = names.split(",")
    k, (_, s, w) = len(chans), a.shape
    if w != k * s + STRIP_GAP * (k - 1):
        raise CorruptFileError(f"{where}: declares {k} tiles of {s}×{s} side by side, but is {w} pixels wide")
    chans = list(_check_channels(chans, k, where))
    tiles = torch.stack([a[0, :, i * (s + STRIP_GAP):i * (s + STRIP_GAP) + s] for i in range(k)])
    return ImageFile(_check_content(tiles.float(), where), tuple(chans), f"8-bit render of {','.join(chans)}")


def read_image(path: str | os.PathLike[str]) -> ImageFile:
    """One image of a PNG, JPEG or safetensors file (module docstring for the rules)."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise DataFileNotFoundError(f"{p} is not a file")
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(p)
    if suffix not in IMAGE_FORMATS:
        raise UnsupportedFormatError(f"{p}: cannot read '{p.suffix}' images; use {', '.join(IMAGE_FORMATS)}")
    return _read_pillow(p)


def write_image(path: str | os.PathLike[str], image: Tensor, channels: Sequence[str] = ("shading",)) -> None:
    """An 8-bit PNG of ``image`` ``(K, H, W)`` in ``[0, 1]`` (``K`` = 1: grey; 3: one plane per
    RGB component, named in the ``equivision-channels`` text chunk so that :func:`read_image`
    gives the planes back). Lossy to 1/255; :func:`write_image_tensors` is exact. The path is
    replaced through a temporary file (callers check their outputs first)."""
    from PIL import Image, PngImagePlugin

    from equivision.io.atomic import atomic_path

    if image.ndim != 3 or image.shape[0] not in (1, 3) or not image.is_floating_point():
        raise ShapeError(f"image must be a float tensor (1 or 3, H, W), got {tuple(image.shape)}")
    chans = _check_channels(channels, image.shape[0], "write_image")
    pix = (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    info = PngImagePlugin.PngInfo()
    info.add_text(_PNG_KEY, ",".join(chans))
    im = Image.fromarray(pix[0]) if pix.shape[0] == 1 else Image.fromarray(np.moveaxis(pix, 0, -1), "RGB")
    with atomic_path(Path(path), overwrite=True) as tmp:
        im.save(tmp, format="PNG", pnginfo=info)


def write_image_tensors(path: str | os.PathLike[str], image: Tensor, channels: Sequence[str],
                        extra: dict[str, str] | None = None) -> None:
    """A safetensors image file: ``image`` ``(K, H, W)`` float32 exactly, the channel names in
    its metadata (``extra`` adds metadata, e.g. the pose). Replaced through a temporary file."""
    from safetensors.torch import save_file

    from equivision.io.atomic import atomic_path

    if image.ndim != 3 or not image.is_floating_point():
        raise ShapeError(f"image must be a float tensor (K, H, W), got {tuple(image.shape)}")
    chans = _check_channels(channels, image.shape[0], "write_image_tensors")
    meta = {"format": _SAFETENSORS_KIND, "channels": ",".join(chans), **(extra or {})}
    with atomic_path(Path(path), overwrite=True) as tmp:
        save_file({"image": image.detach().cpu().float().contiguous()}, str(tmp), metadata=meta)
