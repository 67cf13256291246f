"""Checkpoint pieces: safetensors I/O and its errors, optimizer state flattening, RNG state,
keep-last-k + best pruning."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from equivision.errors import CheckpointError, DataFileNotFoundError
from equivision.models.weights import check_compatible, file_sha256, read_tensors, save_tensors
from equivision.training import checkpoint as ckpt


def test_tensors_round_trip_with_tied_and_view_tensors(tmp_path) -> None:
    w = torch.randn(4, 3)
    tensors = {"a": w, "tied": w, "view": w[1:3], "scalar": torch.tensor(2.5),
               "ints": torch.arange(5)}
    save_tensors(tensors, tmp_path / "t.safetensors")
    back = read_tensors(tmp_path / "t.safetensors")
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(back[k], v) and back[k].dtype == v.dtype


def test_corrupt_truncated_and_tampered_files(tmp_path) -> None:
    p = tmp_path / "w.safetensors"
    save_tensors({"w": torch.randn(64, 64)}, p)
    sha = file_sha256(p)
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_tensors(tmp_path / "trunc.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 3 + b"not a header")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        read_tensors(tmp_path / "junk.safetensors")
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF  # inside the data: only the digest notices
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    read_tensors(tmp_path / "flip.safetensors")
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_tensors(tmp_path / "flip.safetensors", sha256=sha)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_tensors(tmp_path / "none.safetensors")


def test_check_compatible_names_the_mismatch() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Linear(8, 1))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    check_compatible(net, sd, "ok")
    bad = dict(sd, **{"0.weight": torch.zeros(4, 2)})
    with pytest.raises(CheckpointError, match=r"0.weight \(4, 2\) vs model \(8, 2\)"):
        check_compatible(net, bad, "f")
    missing = {k: v for k, v in sd.items() if k != "1.bias"}
    with pytest.raises(CheckpointError, match=r"missing 1.bias"):
        check_compatible(net, missing, "f")
    with pytest.raises(CheckpointError, match=r"unexpected extra"):
        check_compatible(net, dict(sd, extra=torch.zeros(1)), "f")


def _trained_optimizer(kind: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    opt = (torch.optim.Adam(net.parameters(), lr=1e-2) if kind == "adam" else
           torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
    return net, opt


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_optimizer_state_round_trip_continues_identically(tmp_path, kind: str) -> None:
    net, opt = _trained_optimizer(kind)
    tensors, rest = ckpt.flatten_state(opt.state_dict())
    ckpt.write_json(tmp_path / "rest.json", rest)
    save_tensors(tensors, tmp_path / "opt.safetensors")
    net2, opt2 = _trained_optimizer(kind)  # same weights, then a fresh optimizer
    opt2 = type(opt)(net2.parameters(), lr=1.0)
    import json

    opt2.load_state_dict(ckpt.unflatten_state(read_tensors(tmp_path / "opt.safetensors"),
                                              json.loads((tmp_path / "rest.json").read_text()),
                                              torch.device("cpu")))
    x = torch.randn(8, 3)
    for o, n in ((opt, net), (opt2, net2)):
        o.zero_grad()
        n(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rng_state_round_trip() -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leave a cached gaussian / mid-stream position
    state = ckpt.capture_rng()
    import json

    state = json.loads(json.dumps(state))
    first = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt.restore_rng(state)
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and first[3] == again[3]
    with pytest.raises(CheckpointError, match="RNG"):
        ckpt.restore_rng({"torch": "????"})


def _fake_checkpoint(run_dir, step: int) -> None:
    ckpt.save_checkpoint(run_dir, step, {"w": torch.full((2,), float(step))}, {}, {"x": step})


def test_find_prune_and_best(tmp_path) -> None:
    run = tmp_path / "run"
    with pytest.raises(DataFileNotFoundError):
        ckpt.find_checkpoint(run)
    run.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints"):
        ckpt.find_checkpoint(run)
    for s in (10, 20, 30, 40, 50):
        _fake_checkpoint(run, s)
    (ckpt.checkpoints_dir(run) / ".step-00000060.abc.tmp").mkdir()  # a killed write
    assert ckpt.checkpoint_steps(run) == [10, 20, 30, 40, 50]
    ckpt.write_best(run, 20, "mse", 0.5)
    ckpt.prune_checkpoints(run, keep_last=2, keep={20})
    assert ckpt.checkpoint_steps(run) == [20, 40, 50]
    assert ckpt.find_checkpoint(run, "latest").step == 50
    info = ckpt.find_checkpoint(run, "best")
    assert info.step == 20 and info.meta["x"] == 20
    assert ckpt.load_checkpoint_tensors(info, "model")["w"][0] == 20
    assert ckpt.find_checkpoint(run, "40").step == 40
    with pytest.raises(CheckpointError, match="no checkpoint at step 30"):
        ckpt.find_checkpoint(run, 30)
    with pytest.raises(CheckpointError, match="'latest', 'best' or a step"):
        ckpt.find_checkpoint(run, "newest")
    ckpt.remove_partial(run)
    assert not (ckpt.checkpoints_dir(run) / ".step-00000060.abc.tmp").exists()
    (info.path / "meta.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.find_checkpoint(run, "best")
