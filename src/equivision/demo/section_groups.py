"""Demo section: groups acting on real data, and the equivariance harness at work."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from equivision.data.digits import mnist_or_drawn
from equivision.data.procedural import FAMILIES, make_shape
from equivision.demo import DemoContext, demo_section
from equivision.errors import EquivarianceError
from equivision.figures import save_cloud_row, save_image_row, save_mesh_row
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.groups import (
    C4,
    D4,
    SE2,
    SE3,
    SO2,
    SO3,
    ScaleTranslation2D,
    act_on_image,
    image_action,
    points_action,
)
from equivision.io import load_mesh
from equivision.testing import equivariance_error


def _demo_mesh(ctx: DemoContext):
    if ctx.data_root is not None and (ctx.data_root / "classic" / "bunny.ply").exists():
        mesh, _, _ = normalize_mesh(load_mesh(ctx.data_root / "classic" / "bunny.ply"))
        return mesh, "the Stanford bunny (shared/data/classic)"
    return make_shape("torus", 0).mesh(48), "a procedural torus (no shared data)"


@demo_section("Groups acting on images", order=10)
def _plane_section(ctx: DemoContext) -> str:
    images, _labels, source = mnist_or_drawn(n=64, seed=ctx.seed)
    digit = images[0].double()
    se2, st = SE2(), ScaleTranslation2D()
    views = [
        ("original", digit),
        ("C4: +90° (exact)", act_on_image(C4, torch.tensor(1), digit)),
        ("D4: mirror (exact)", act_on_image(D4, torch.tensor([0, 1]), digit)),
        ("SO(2): +30°", act_on_image(SO2(), torch.tensor(math.pi / 6, dtype=torch.float64), digit)),
        (
            "SE(2): −45°, t=(4,−3)",
            act_on_image(se2, torch.tensor([4.0, -3.0, -math.pi / 4], dtype=torch.float64), digit),
        ),
        ("R²⋊R+: s=0.6", act_on_image(st, torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64), digit)),
    ]
    save_image_row(ctx.figure("plane_actions.png"), views)

    # the left-regular representation is a homomorphism: L_g L_h f = L_{gh} f
    rows = []
    for name, grp, g, h in [
        ("C4", C4, torch.tensor(1), torch.tensor(3)),
        ("D4", D4, torch.tensor([1, 1]), torch.tensor([3, 0])),
        ("SO(2)", SO2(), torch.tensor(0.4, dtype=torch.float64), torch.tensor(1.1, dtype=torch.float64)),
        (
            "SE(2)",
            se2,
            torch.tensor([2.0, 1.0, 0.3], dtype=torch.float64),
            torch.tensor([-1.0, 3.0, 0.9], dtype=torch.float64),
        ),
    ]:
        a = act_on_image(grp, g, act_on_image(grp, h, digit))
        b = act_on_image(grp, grp.product(g, h), digit)
        rows.append(f"| {name} | {float((a - b).norm() / b.norm()):.2e} |")
    src = "an MNIST test digit" if source == "mnist" else "a digit drawn from a font (no shared data)"
    return (
        f"Planar groups act on {src} by the left-regular representation "
        "`(L_g f)(x) = f(g⁻¹x)`: rotations by multiples of 90° and mirrors permute pixels "
        "exactly, other angles and scales are interpolated.\n\n"
        "![planar group actions](plane_actions.png)\n\n"
        "Homomorphism check, relative error of `L_g L_h f` against `L_{gh} f` "
        "(0 for exact pixel permutations; interpolation error otherwise):\n\n"
        "| group | relative error |\n|---|---|\n" + "\n".join(rows) + "\n"
    )


@demo_section("Groups acting on 3D shapes", order=11)
def _space_section(ctx: DemoContext) -> str:
    mesh, what = _demo_mesh(ctx)
    pts, _ = sample_surface_uniform(mesh, 3000, seed=ctx.seed)
    so3 = SO3()
    rots = so3.random(3, seed=ctx.seed, dtype=pts.dtype)
    clouds = [("original", pts)] + [
        (
            f"R{i + 1}: {math.degrees(float(so3.geodesic_distance(so3.identity(), r))):.0f}° "
            f"about {[round(v, 2) for v in SO3.to_axis_angle(r)[0].tolist()]}",
            so3.act(r, pts),
        )
        for i, r in enumerate(rots)
    ]
    save_cloud_row(ctx.figure("so3_actions.png"), clouds)
    # ZYZ Euler and quaternion round trips on the same rotations
    a, b, c = SO3.to_euler_zyz(rots.double())
    euler_err = float((SO3.from_euler_zyz(a, b, c) - rots.double()).abs().max())
    quat_err = float((SO3.from_quaternion(SO3.to_quaternion(rots.double())) - rots.double()).abs().max())
    grid = SO3.grid(4096)
    probe = so3.random(2000, seed=ctx.seed + 1, dtype=torch.float32)
    cover = SO3.geodesic_distance(probe[:, None], grid[None]).amin(1).amax()
    return (
        f"SO(3) acts on points sampled from {what}: `x ↦ R x` for three uniform random "
        "rotations (angle and axis above each view).\n\n![SO(3) acting on a mesh](so3_actions.png)\n\n"
        f"Conversions on these rotations: ZYZ Euler round trip max error {euler_err:.1e}, "
        f"quaternion round trip {quat_err:.1e}. `SO3.grid(4096)` (deterministic super-Fibonacci "
        f"grid) covers SO(3) within {math.degrees(float(cover)):.1f}° of 2,000 random rotations.\n"
    )


@demo_section("The equivariance harness", order=12)
def _harness_section(ctx: DemoContext) -> str:
    gen = torch.Generator().manual_seed(ctx.seed)
    x = torch.rand(1, 1, 28, 28, generator=gen, dtype=torch.float64)
    iso = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float64) / 16
    rnd = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    c4 = C4.elements()
    act = image_action(C4)
    cases = [
        ("isotropic blur (3×3 binomial)", lambda t: F.conv2d(t, iso[None, None], padding=1), act),
        ("global max pool (invariant)", lambda t: t.amax(dim=(-1, -2)), None),
        ("random 3×3 convolution", lambda t: F.conv2d(t, rnd[None, None], padding=1), act),
    ]
    rows = []
    for name, fn, out in cases:
        err = equivariance_error(fn, x, act, out, c4)
        rows.append(f"| C4 | {name} | {err:.1e} | {'equivariant' if err < 1e-5 else '**not equivariant**'} |")
    pts = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    se3 = SE3()
    g = se3.random(8, seed=ctx.seed, dtype=torch.float64)
    space = [
        ("centroid", lambda p: p.mean(0, keepdim=True), points_action(se3)),
        ("pairwise distances (invariant)", lambda p: torch.cdist(p, p), None),
        ("sort each coordinate", lambda p: p.sort(dim=0).values, points_action(se3)),
    ]
    for name, fn, out in space:
        err = equivariance_error(fn, pts, points_action(se3), out, g)
        rows.append(
            f"| SE(3) | {name} | {err:.1e} | {'equivariant' if err < 1e-5 else '**not equivariant**'} |"
        )
    from equivision.testing import assert_equivariant

    try:
        assert_equivariant(cases[2][1], x, act, act, c4, tol=1e-5)
        caught = "(not caught: this should not happen)"
    except EquivarianceError as e:
        caught = str(e)
    return (
        "`equivision.testing.equivariance_error(fn, x, act_in, act_out, elements)` measures "
        "`max_g |f(g·x) − g·f(x)| / |g·f(x)|`; `assert_equivariant(..., tol)` turns it into a "
        "check. It passes equivariant functions and catches the others:\n\n"
        "| group | function | relative error | verdict (tol 1e-5) |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n`assert_equivariant` on the random convolution raises:\n\n"
        + f"```\nEquivarianceError: {caught}\n```\n"
    )


@demo_section("Procedural shapes", order=13)
def _shapes_section(ctx: DemoContext) -> str:
    save_mesh_row(ctx.figure("procedural_shapes.png"),
                  [(fam, make_shape(fam, ctx.seed).mesh(40)) for fam in FAMILIES])
    return (
        "Seeded procedural shapes (`equivision.data.procedural.make_shape(family, seed)`), built "
        "from signed distance functions and meshed by marching cubes, in the unit box, +y up. "
        "They stand in for real data where it is scarce and give exact distance fields for tests.\n\n"
        "![procedural shape families](procedural_shapes.png)\n"
    )
