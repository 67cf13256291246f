"""The synthesis decoder (spherical maps → image) and the non-equivariant view baseline:
shapes, config and input checks, registry, and the decoder's azimuthal periodicity."""

from __future__ import annotations

import pytest
import torch

from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.models import build_model, count_parameters
from equivision.models.sphere_to_image import SphereToImage, SphereToImageConfig
from equivision.models.view_baseline import ViewBaseline, ViewBaselineConfig

SMALL = {"width": 8, "max_width": 32, "code_dim": 64}


def test_decoder_shapes() -> None:
    torch.manual_seed(0)
    net = SphereToImage(SphereToImageConfig(in_channels=32, bandwidth=16, out_channels=2, **SMALL)).eval()
    assert net(torch.randn(3, 32, 32, 32)).shape == (3, 2, 64, 64)
    net = SphereToImage(SphereToImageConfig(in_channels=4, bandwidth=4, out_channels=3, image_size=32,
                                            width=4, max_width=8, code_dim=16)).eval()
    assert net(torch.randn(2, 4, 8, 8)).shape == (2, 3, 32, 32)


def test_registered_and_sizes() -> None:
    # the baseline's default size is chosen to match the equivariant pair's (stated in its config)
    i2s = build_model("image_to_sphere", {"in_channels": 3, "bandwidth": 16, "out_channels": 32})
    pair = count_parameters(i2s) + count_parameters(build_model("sphere_to_image", {}))
    base = count_parameters(build_model("view_baseline", {}))
    assert 0.8 < base / pair < 1.25, (base, pair)


@pytest.mark.parametrize("kw", [{"image_size": 48}, {"image_size": 4}, {"bandwidth": 6}, {"bandwidth": 1},
                                {"out_channels": 4}, {"width": 64, "max_width": 32}, {"code_dim": 0},
                                {"in_channels": 1.5}])
def test_decoder_config_errors(kw) -> None:
    with pytest.raises(ConfigError):
        SphereToImageConfig(**kw)


@pytest.mark.parametrize("kw", [{"image_size": 48}, {"in_channels": 4}, {"fusion_layers": -1},
                                {"width": 64, "max_width": 32}])
def test_baseline_config_errors(kw) -> None:
    with pytest.raises(ConfigError):
        ViewBaselineConfig(**kw)


def test_decoder_input_checks() -> None:
    net = SphereToImage(SphereToImageConfig(in_channels=4, bandwidth=4, out_channels=2, image_size=16,
                                            width=4, max_width=8, code_dim=16)).eval()
    bads = (torch.randn(2, 4, 16, 16), torch.randn(2, 3, 8, 8), torch.randn(4, 8, 8), torch.randn(0, 4, 8, 8))
    for bad in bads:
        with pytest.raises(ShapeError, match="bandwidth 4"):
            net(bad)
    with pytest.raises(InvalidInputError, match="floating"):
        net(torch.ones(1, 4, 8, 8, dtype=torch.long))


def test_baseline_shapes_and_rotation_matters() -> None:
    torch.manual_seed(0)
    net = ViewBaseline(ViewBaselineConfig(in_channels=3, out_channels=2, width=4, max_width=8, code_dim=16,
                                          rotation_dim=8, fusion_layers=1)).eval()
    x = torch.rand(2, 3, 64, 64)
    eye = torch.eye(3).expand(2, 3, 3)
    y = net(x, eye)
    assert y.shape == (2, 2, 64, 64)
    flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0])).expand(2, 3, 3)
    assert not torch.allclose(net(x, flip), y)  # the rotation reaches the output
    with pytest.raises(ShapeError, match="rotations"):
        net(x, torch.eye(3)[None])
    with pytest.raises(ShapeError, match="images"):
        net(torch.rand(2, 1, 64, 64), eye)


def test_encoder_commutes_with_even_azimuthal_shifts() -> None:
    # circular padding and 2x2 pooling: shifting the maps by 2^stages columns shifts every
    # encoder map by whole columns, so the pooled features before the linear layer roll too
    torch.manual_seed(1)
    net = SphereToImage(SphereToImageConfig(in_channels=2, bandwidth=8, out_channels=1, image_size=16,
                                            width=4, max_width=8, code_dim=8)).eval()
    x = torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        a = net.enc_out(net.encoder(net.stem(x)))
        b = net.enc_out(net.encoder(net.stem(torch.roll(x, 4, dims=-1))))
    assert a.shape[-1] == 4
    assert torch.allclose(torch.roll(a, 1, dims=-1), b, atol=1e-5)
    assert not torch.allclose(a, b, atol=1e-3)
