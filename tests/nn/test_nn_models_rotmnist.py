"""Ready G-CNN models, the rotated-MNIST data and the rotmnist task (a few training steps
through the ordinary trainer)."""

from __future__ import annotations

import pytest
import torch

from equivision.data.rotmnist import (
    RandomlyRescaled,
    RandomlyRotated,
    make_split,
    rescale_images,
    rot90_images,
    rotate_images,
)
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.groups import SO2, act_on_image
from equivision.models.gcnn import (
    GCNNConfig,
    PlainCNN,
    ScaleCNN,
    build_gcnn,
    count_parameters,
    matched_plain_width,
    p4cnn,
)


def _digits(n: int = 60) -> tuple[torch.Tensor, torch.Tensor, str]:
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 28, 28)
    images[:, 8:20, 12:16] = torch.rand(n, 12, 4, generator=g)  # an off-centre bar
    return images, torch.arange(n) % 10, "test"


@pytest.mark.parametrize("arch", ["plain", "p4", "p4m", "p8", "scale", "scale_zoom"])
def test_models_map_digits_to_logits(arch):
    model = build_gcnn(GCNNConfig(arch=arch, width=3, depth=3)).eval()
    out = model(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_e2cnn_anchor_model_builds():
    pytest.importorskip("e2cnn")
    model = build_gcnn(GCNNConfig(arch="e2cnn_c8", width=2, depth=3)).eval()
    x = torch.rand(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    # a checkpoint saved in training mode loads into a fresh model (no cached filters)
    state = model.train().state_dict()
    fresh = build_gcnn(GCNNConfig(arch="e2cnn_c8", width=2, depth=3))
    fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))


def test_plain_baseline_matches_p4_parameter_count():
    for width in (4, 8, 12):
        p4 = count_parameters(p4cnn(width=width))
        plain = count_parameters(build_gcnn(GCNNConfig(arch="plain", width=width)))
        assert abs(plain - p4) <= 0.1 * p4, (width, plain, p4)  # one channel is ~8% at width 4
    w = matched_plain_width(10_000)  # the closest width, checked against real modules
    gaps = {v: abs(count_parameters(PlainCNN(v)) - 10_000) for v in (w - 1, w, w + 1)}
    assert gaps[w] == min(gaps.values())


def test_scale_model_features_have_width():
    m = ScaleCNN(width=3, depth=2, num_scales=2).eval()
    assert m.features(torch.rand(2, 1, 16, 16)).shape == (2, 3)


def test_model_config_and_input_errors():
    with pytest.raises(ConfigError, match="arch"):
        GCNNConfig(arch="p5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="width"):
        GCNNConfig(width=0)
    with pytest.raises(ConfigError, match="dropout"):
        GCNNConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="scale_size"):
        GCNNConfig(arch="scale_zoom", num_scales=2, scale_size=3)
    with pytest.raises(ShapeError, match=r"\(B, 1, H, W\)"):
        build_gcnn(GCNNConfig(arch="scale_zoom", width=2, depth=2))(torch.rand(1, 2, 8, 8))
    with pytest.raises(ShapeError, match="at least 4"):
        p4cnn(width=2)(torch.rand(1, 1, 3, 3))
    with pytest.raises(InvalidInputError):
        matched_plain_width(0)


# ----------------------------------------------------------------------------- data

def test_split_is_fixed_and_disjoint():
    d = _digits()
    a1 = make_split("A", n_train=40, n_test=20, digits=d)
    a2 = make_split("A", n_train=40, n_test=20, digits=d)
    assert torch.equal(a1.train_images, a2.train_images)
    assert torch.equal(a1.test_labels, a2.test_labels)
    b = make_split("B", n_train=40, n_test=20, digits=d)
    # B trains upright on the same digits and tests on the same rotated digits as A
    assert torch.equal(b.test_images, a1.test_images)
    assert torch.equal(b.train_labels, a1.train_labels)
    assert not torch.equal(b.train_images, a1.train_images)
    assert a1.train_images.shape == (40, 1, 28, 28) and a1.test_images.shape == (20, 1, 28, 28)
    # scale_B: trains like B (full size, upright), tests like scale (shrunk)
    sc = make_split("scale", n_train=40, n_test=20, digits=d)
    sb = make_split("scale_B", n_train=40, n_test=20, digits=d)
    assert torch.equal(sb.train_images, b.train_images)
    assert torch.equal(sb.test_images, sc.test_images)
    # train and test are different digits: the split is a permutation
    other = make_split("A", split_seed=5, n_train=40, n_test=20, digits=d)
    assert not torch.equal(other.test_upright, a1.test_upright)


def test_transforms_match_the_group_actions():
    x = torch.rand(3, 28, 28)
    angles = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    for i in range(3):
        ref = act_on_image(SO2(), angles[i], x[i])
        torch.testing.assert_close(rotate_images(x, angles)[i], ref)
    torch.testing.assert_close(rot90_images(x, torch.tensor([0, 1, 3])),
                               torch.stack([x[0], torch.rot90(x[1], 1), torch.rot90(x[2], 3)]))
    small = rescale_images(x, torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(small[2], x[2])
    assert float(small[0, :5].abs().sum()) == 0.0  # shrunk about the centre: border empty


def test_blur_and_antialiased_shrink_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(3, 28, 28, dtype=torch.float64)
    sigmas = torch.tensor([0.0, 0.7, 1.6], dtype=torch.float64)
    from equivision.data.rotmnist import blur_images

    blurred = blur_images(x, sigmas)
    torch.testing.assert_close(blurred[0], x[0])
    for i in (1, 2):
        ref = ndimage.gaussian_filter(x[i].numpy(), float(sigmas[i]), mode="constant",
                                      truncate=4.0)
        torch.testing.assert_close(blurred[i], torch.from_numpy(ref))
    factors = torch.tensor([0.3, 1.0, 0.5], dtype=torch.float64)
    shrunk = rescale_images(x, factors)
    ref = rescale_images(blur_images(x, (1 / factors - 1) / 2), factors, antialias=False)
    torch.testing.assert_close(shrunk, ref)
    torch.testing.assert_close(shrunk[1], x[1])  # factor 1: untouched
    # a one-pixel stroke shrunk 0.3× survives as a faint line instead of breaking up
    stroke = torch.zeros(1, 28, 28, dtype=torch.float64)
    stroke[0, :, 13] = 1.0
    f = torch.tensor([0.3], dtype=torch.float64)
    aa, point = rescale_images(stroke, f), rescale_images(stroke, f, antialias=False)
    assert float(aa.sum()) == pytest.approx(0.3 * 28 * 0.3, rel=0.2)  # ink scales with area
    assert float(point.sum()) < 0.5 * float(aa.sum())


def test_split_bad_input():
    with pytest.raises(InvalidInputError, match="protocol"):
        make_split("C", digits=_digits())
    with pytest.raises(InvalidInputError, match="n_train"):
        make_split("A", n_train=50, n_test=20, digits=_digits())


def test_online_augmentation_draws_fresh_transforms_from_the_seeded_rng():
    split = make_split("A", n_train=40, n_test=20, digits=_digits())
    torch.testing.assert_close(split.train_source, make_split("B", n_train=40, n_test=20,
                                                              digits=_digits()).train_images)
    ds = RandomlyRotated(split.train_source, split.train_labels)
    torch.manual_seed(5)
    a, label = ds[3]
    b, _ = ds[3]
    assert a.shape == (1, 28, 28) and int(label) == int(split.train_labels[3])
    assert not torch.equal(a, b)  # a fresh angle at every access
    torch.manual_seed(5)  # ... drawn from the global RNG: reproducible by seed
    angle = torch.rand(1, dtype=torch.float64) * 2 * torch.pi
    torch.testing.assert_close(a, rotate_images(split.train_source[3], angle))
    # rotation keeps the ink (up to what bilinear resampling moves off the centre-bar)
    assert float(a.sum()) == pytest.approx(float(split.train_source[3].sum()), rel=0.05)

    scaled = RandomlyRescaled(split.train_source, split.train_labels)
    torch.manual_seed(6)
    c, _ = scaled[0]
    torch.manual_seed(6)
    factor = 0.3 + 0.7 * torch.rand(1, dtype=torch.float64)
    torch.testing.assert_close(c, rescale_images(split.train_source[0], factor))
    with pytest.raises(InvalidInputError, match=r"\(N, 1, H, W\)"):
        RandomlyRotated(split.train_source[:, 0], split.train_labels)


# ----------------------------------------------------------------------------- task

def test_rotmnist_task_trains_a_few_steps(tmp_path, data_root):
    from equivision.tasks.rotmnist import RotMNISTTask
    from equivision.training import train

    cfg = {"train": {"steps": 3, "batch_size": 8, "device": "cpu", "log_every": 1},
           "task": {"protocol": "B", "n_train": 32, "n_test": 16,
                    "model": {"arch": "p4", "width": 2, "depth": 2}}}
    res = train(RotMNISTTask(), cfg, tmp_path / "run", progress=False)
    assert set(res.eval_metrics) >= {"error", "error_upright", "error_rot90", "loss"}
    # P4 is exactly invariant to quarter turns: upright and rot90 errors agree
    assert res.eval_metrics["error_upright"] == res.eval_metrics["error_rot90"]
    from equivision.training import evaluate_run

    step, metrics = evaluate_run(RotMNISTTask(), tmp_path / "run")
    assert step == 3 and metrics["error"] == pytest.approx(res.eval_metrics["error"])


def test_rotmnist_config_errors():
    from equivision.tasks.rotmnist import RotMNISTConfig

    with pytest.raises(ConfigError, match="protocol"):
        RotMNISTConfig(protocol="Z")
    with pytest.raises(ConfigError, match="10,000"):
        RotMNISTConfig(n_train=9000, n_test=2000)
    with pytest.raises(ConfigError, match="in_channels"):
        RotMNISTConfig(model=GCNNConfig(in_channels=3))
    with pytest.raises(ConfigError, match="augment"):
        RotMNISTConfig(protocol="B", augment=True)


def test_rotmnist_task_augment_uses_the_source_digits(data_root):
    from equivision.tasks.rotmnist import RotMNISTConfig, RotMNISTTask

    train_a, test_a = RotMNISTTask().datasets(RotMNISTConfig(protocol="A", augment=True,
                                                             n_train=50, n_test=20))
    train_s, _ = RotMNISTTask().datasets(RotMNISTConfig(protocol="scale", augment=True,
                                                        n_train=50, n_test=20))
    assert isinstance(train_a, RandomlyRotated) and isinstance(train_s, RandomlyRescaled)
    _, test_fixed = RotMNISTTask().datasets(RotMNISTConfig(protocol="A", n_train=50, n_test=20))
    torch.testing.assert_close(test_a.tensors[0], test_fixed.tensors[0])  # same test set


def test_experiment_names_order_and_summary(tmp_path):
    import json

    from equivision.experiments.rotmnist import (
        EXPERIMENT_RUNS,
        ExperimentRun,
        experiment_jobs,
        summarize_experiment,
    )

    jobs = experiment_jobs((0, 1))
    names = [run.name(seed) for seed, run in jobs]
    assert len(names) == len(set(names)) == 2 * len(EXPERIMENT_RUNS)
    assert names[0] == "A_plain_s0"  # the short schedule keeps its first names
    assert "A_4000+aug_p4_w12_s1" in names
    # within a schedule, the first seed of every protocol-A model comes first
    long_jobs = [(s, r.arch) for s, r in jobs if r.schedule == "4000+aug"]
    assert {a for s, a in long_jobs[:4]} == {"plain", "p4", "p8", "e2cnn_c8"}
    assert all(s == 0 for s, _ in long_jobs[:4])

    rows = [  # an old row without steps/augment belongs to the short schedule
        {"protocol": "A", "arch": "p4", "width": 8, "seed": 0, "params": 100, "seconds": 60.0,
         "error": 5.0},
        {"protocol": "A", "arch": "p4", "width": 12, "steps": 4000, "augment": True, "seed": 0,
         "params": 200, "seconds": 120.0, "error": 2.0},
        {"protocol": "A", "arch": "p4", "width": 12, "steps": 4000, "augment": True, "seed": 1,
         "params": 200, "seconds": 180.0, "error": 3.0},
        # a width no longer in the experiment: left out, and counted
        {"protocol": "A", "arch": "p4", "width": 10, "steps": 4000, "augment": True, "seed": 0,
         "params": 150, "seconds": 100.0, "error": 9.0},
    ]
    (tmp_path / "results_0.json").write_text(json.dumps(rows))
    table = summarize_experiment(str(tmp_path))
    assert "| A: rotated → rotated | 5.00 ± 0.00 (n=1) |" in table
    assert "| A: rotated → rotated [4000 steps, fresh transforms] | 2.50 ± 0.71 (n=2) |" in table
    assert "| minutes per run [4000 steps, fresh transforms] | 2.5 |" in table
    assert "(1 row of runs no longer in the experiment left out.)" in table
    zoom = ExperimentRun("scale", "scale_zoom", 12, 4000, True, num_scales=4)
    assert zoom.name(2) == "scale_4000+aug_scale_zoom_w12_S4_s2"
    assert ExperimentRun.of_row({"protocol": "scale", "arch": "scale_zoom", "width": 12,
                                 "steps": 4000, "augment": True, "num_scales": 4}) == zoom
    assert ExperimentRun("B", "p4", 8).schedule == "short"


def test_spatial_max_pool_keeps_a_small_objects_features():
    torch.manual_seed(0)
    x = torch.zeros(1, 1, 28, 28)
    x[..., 12:16, 12:16] = 1.0
    for pool in ("mean", "max"):
        m = PlainCNN(width=4, depth=2, spatial_pool=pool).eval()
        feats = m.features(x)
        # padding the same blob into a larger canvas dilutes the mean, not the max
        big = torch.nn.functional.pad(x, (14, 14, 14, 14))
        ratio = float(m.features(big).abs().sum() / feats.abs().sum())
        assert (ratio == pytest.approx(1.0, abs=1e-5)) == (pool == "max"), (pool, ratio)
    with pytest.raises(ConfigError, match="spatial_pool"):
        GCNNConfig(spatial_pool="sum")


def test_magnification_consistency():
    from equivision.experiments.rotmnist import magnification_consistency

    v = torch.linspace(0.2, 0.9, 6)
    x = torch.zeros(6, 1, 28, 28)
    x[:, :, 10:18, 10:18] = v[:, None, None, None]  # flat squares of different brightness

    class Ink(torch.nn.Module):  # logits from the total ink: magnifying √2× doubles it
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            m = t.sum((1, 2, 3))
            return torch.stack([m, torch.full_like(m, 45.0)], -1)

    class Peak(torch.nn.Module):  # logits from the brightest pixel: a flat square keeps it
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            p = t.amax((1, 2, 3))
            return torch.stack([10 * p, torch.full_like(p, 5.0)], -1)

    inv = magnification_consistency(Peak(), x)
    assert inv["changed"] == 0.0 and inv["log_prob_change"] < 1e-6
    var = magnification_consistency(Ink(), x)
    assert var["changed"] > 0 and var["log_prob_change"] > 0.1, var
    # the same quantity as the shared harness reports for an invariant output
    from equivision.groups import ScaleTranslation2D, image_action
    from equivision.testing import equivariance_error

    g = [torch.tensor([0.0, 0.0, 2**0.5], dtype=torch.float64)]
    ref = equivariance_error(lambda t: Ink()(t).double().log_softmax(-1), x,
                             image_action(ScaleTranslation2D()), None, g)
    assert var["log_prob_change"] == pytest.approx(ref, rel=1e-9)
    with pytest.raises(InvalidInputError, match="non-empty"):
        magnification_consistency(Peak(), x[:0])
    d = _digits()
    assert make_split("scale", n_train=40, n_test=20, digits=d).test_scales.shape == (20,)
    assert make_split("A", n_train=40, n_test=20, digits=d).test_scales is None
