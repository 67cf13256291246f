"""Cost of the training engine over a bare PyTorch loop, and of its checkpoints.

Row 1: optimizer steps per second of ``equivision.training.train`` on the toy task (MLP
2-256-256-256-1, batch 256, Adam, cosine schedule, metrics.csv every 10 steps, checkpoint and
eval at the end) against the anchor: a hand-written loop with the same model, optimizer,
schedule, batch and data (DataLoader with shuffle), no logging.
Row 2: seconds to write one checkpoint (weights + Adam state as safetensors, SHA-256, JSON
with RNG state; atomic folder) against the anchor: ``safetensors.torch.save_file`` of the
weights and the Adam moments alone.

Run: .venv/bin/python benchmarks/training_overhead.py [--quick] [--jsonl PATH]
(``--quick``: 100 steps, best of 2.)
"""

from __future__ import annotations

import argparse
import io
import math
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from safetensors.torch import save_file

from _results import RowWriter, add_jsonl_option
from equivision.models import build_model
from equivision.training import checkpoint as ckpt
from equivision.training import train
from equivision.training.toy import ToyConfig, ToyTask

STEPS, BATCH, HIDDEN, DEPTH = 300, 256, 256, 3
REPEATS = 3


def bare_loop(task_cfg: ToyConfig, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model("toy_mlp", task_cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    train_ds, _ = ToyTask().datasets(task_cfg)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=BATCH, shuffle=True,
                                         drop_last=True)
    step, t0 = 0, time.perf_counter()
    while step < steps:
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= steps:
                break
    return steps / (time.perf_counter() - t0)


def engine(task_cfg: dict, tmp: Path, steps: int) -> float:
    cfg = {"train": {"steps": steps, "batch_size": BATCH, "lr": 1e-3, "log_every": 10,
                     "device": "cpu"}, "task": task_cfg}
    t0 = time.perf_counter()
    train("toy", cfg, tmp / "run", console=Console(file=io.StringIO()))
    return steps / (time.perf_counter() - t0)


def checkpoint_times(task_cfg: ToyConfig, tmp: Path) -> tuple[float, float]:
    model = build_model("toy_mlp", task_cfg.model)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 2)).sum().backward()
    opt.step()
    tensors, rest = ckpt.flatten_state(opt.state_dict())
    sd = model.state_dict()
    t0 = time.perf_counter()
    for i in range(5):
        ckpt.save_checkpoint(tmp / "ck", i, sd, tensors, {"optimizer": rest,
                                                          "rng": [ckpt.capture_rng()]})
    ours = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    for i in range(5):
        save_file({**{k: v.contiguous() for k, v in sd.items()}, **tensors},
                  str(tmp / f"raw{i}.safetensors"))
    raw = (time.perf_counter() - t0) / 5
    return ours, raw


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 steps, best of 2")
    add_jsonl_option(ap, "training_overhead")
    args = ap.parse_args(argv)
    steps, repeats = (100, 2) if args.quick else (STEPS, REPEATS)
    torch.set_num_threads(1)
    task_cfg = {"n_train": 8192, "n_eval": 1024, "model": {"hidden": HIDDEN, "depth": DEPTH}}
    cfg = ToyConfig(n_train=8192, n_eval=1024)
    cfg.model.hidden, cfg.model.depth = HIDDEN, DEPTH
    n_params = sum(p.numel() for p in build_model("toy_mlp", cfg.model).parameters())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bare_loop(cfg, steps)  # warm-up (allocator, kernels)
        bares, engines = [], []
        for i in range(repeats):  # alternated, best of repeats: the machine is shared
            bares.append(bare_loop(cfg, steps))
            engines.append(engine(task_cfg, tmp / str(i), steps))
        bare, ours = max(bares), max(engines)
        ck, raw = checkpoint_times(cfg, tmp)
    print(f"toy MLP, {n_params:,} parameters, batch {BATCH}, {steps} steps, CPU 1 thread, "
          f"best of {repeats}")
    print(f"{'measure':<34}{'equivision':>12}{'anchor':>12}{'ratio':>8}")
    print(f"{'steps/s (anchor: bare loop)':<34}{ours:>12.1f}{bare:>12.1f}{ours / bare:>8.2f}")
    print(f"{'checkpoint s (anchor: save_file)':<34}{ck:>12.4f}{raw:>12.4f}{ck / raw:>8.2f}")
    out = RowWriter("training_overhead", args.jsonl, dtype="float32", mode="quick" if args.quick else "full",
                    settings={"steps": steps, "batch": BATCH, "repeats": repeats, "parameters": n_params})
    out.add(f"optimizer steps/s, toy MLP, {steps} steps", ours, "steps/s", higher_is_better=True,
            anchor="bare PyTorch loop", anchor_figure=bare)
    out.add("one checkpoint (weights + Adam state)", ck, "s", higher_is_better=False,
            anchor="safetensors save_file", anchor_figure=raw)
    print(f"{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
