"""Reading images for the image network: every PNG flavour, the lossless safetensors file, and
one typed error for each kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from equivision.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    InvalidInputError,
    UnsupportedFormatError,
)
from equivision.io.images import read_image, write_image, write_image_tensors


def _ramp(h: int = 8, w: int = 8) -> np.ndarray:
    return np.arange(h * w, dtype=np.float64).reshape(h, w) / (h * w - 1)


def test_grey_8_and_16_bit(tmp_path) -> None:
    r = _ramp()
    Image.fromarray((r * 255).round().astype(np.uint8)).save(tmp_path / "g8.png")
    Image.fromarray((r * 65535).round().astype(np.uint16)).save(tmp_path / "g16.png")
    a, b = read_image(tmp_path / "g8.png"), read_image(tmp_path / "g16.png")
    assert a.channels == b.channels == ("shading",) and a.data.dtype == torch.float32
    assert a.data.shape == (1, 8, 8)
    np.testing.assert_allclose(a.data[0].numpy(), r, atol=0.5 / 255 + 1e-7)
    np.testing.assert_allclose(b.data[0].numpy(), r, atol=0.5 / 65535 + 1e-7)
    truth = torch.from_numpy(r).float()
    assert float((b.data[0] - truth).abs().max()) < float((a.data[0] - truth).abs().max())


def test_rgb_is_luminance_and_rgba_gives_a_silhouette(tmp_path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2:6, 2:6] = (255, 0, 0)
    rgb[0, 0] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    im = read_image(tmp_path / "rgb.png")
    assert im.channels == ("shading",)
    assert float(im.data[0, 3, 3]) == pytest.approx(0.299, abs=1e-6)
    assert float(im.data[0, 0, 0]) == pytest.approx(0.114, abs=1e-6)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200  # grey everywhere, visible only where alpha is set
    rgba[2:6, 3:7, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    im = read_image(tmp_path / "rgba.png")
    assert im.channels == ("shading", "silhouette")
    assert float(im.data[1].sum()) == 16 and float(im.data[0, 0, 0]) == 0  # composited on black
    assert float(im.data[0, 3, 4]) == pytest.approx(200 / 255, abs=1e-6)


def test_written_images_read_back_with_their_channels(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 16, 16, generator=g)
    names = ("shading", "silhouette", "depth")
    write_image(tmp_path / "x.png", x, names)
    back = read_image(tmp_path / "x.png")
    assert back.channels == names and float((back.data - x).abs().max()) <= 0.5 / 255 + 1e-6
    write_image_tensors(tmp_path / "x.safetensors", x, names, {"rotation": "1,0,0,0,1,0,0,0,1"})
    exact = read_image(tmp_path / "x.safetensors")
    assert exact.channels == names and torch.equal(exact.data, x)


def test_jpeg_reads(tmp_path) -> None:
    Image.fromarray((_ramp(16, 16) * 255).astype(np.uint8)).save(tmp_path / "a.jpg", quality=95)
    assert read_image(tmp_path / "a.jpg").data.shape == (1, 16, 16)


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda p: p.mkdir(), DataFileNotFoundError, "not a file"),
    (lambda p: None, DataFileNotFoundError, "no such file"),
    (lambda p: p.write_text("not an image"), CorruptFileError, "not a readable image"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), CorruptFileError, "not a readable image"),
    (lambda p: Image.new("L", (8, 8), 77).save(p), InvalidInputError, "constant"),
])
def test_bad_png_files(tmp_path, make, error, match) -> None:
    p = tmp_path / "bad.png"
    make(p)
    with pytest.raises(error, match=match):
        read_image(p)


def test_truncated_png(tmp_path) -> None:
    p = tmp_path / "t.png"
    Image.fromarray((_ramp(32, 32) * 255).astype(np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:60])
    with pytest.raises(CorruptFileError):
        read_image(p)


@pytest.mark.parametrize(("tensor", "match"), [
    (torch.zeros(1, 0, 0), "empty"),
    (torch.full((1, 4, 4), float("nan")), "NaN"),
    (torch.linspace(0, 2, 16).reshape(1, 4, 4), r"\[0, 1\]"),
])
def test_bad_safetensors_images(tmp_path, tensor, match) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "x.safetensors"
    save_file({"image": tensor}, str(p), metadata={"channels": "shading"})
    with pytest.raises(InvalidInputError, match=match):
        read_image(p)


def test_unknown_extension_and_undeclared_channels(tmp_path) -> None:
    from safetensors.torch import save_file

    (tmp_path / "a.bmpx").write_bytes(b"xx")
    with pytest.raises(UnsupportedFormatError, match="cannot read"):
        read_image(tmp_path / "a.bmpx")
    save_file({"image": torch.rand(2, 4, 4)}, str(tmp_path / "y.safetensors"),
              metadata={"channels": "shading"})
    with pytest.raises(CorruptFileError, match="declares channels"):
        read_image(tmp_path / "y.safetensors")
