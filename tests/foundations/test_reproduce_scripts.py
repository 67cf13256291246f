"""scripts/reproduce_image_side.sh rebuilds the packaged image side: its steps must chain (the
views it builds are the ones the configs read, the decoder reads the image network it trains)
and match what the packaged files say they came from."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reproduce_image_side.sh"
PRETRAINED = ROOT / "src" / "equivision" / "pretrained"


def _text() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def test_the_steps_chain() -> None:
    text = _text()
    built = set(re.findall(r'"\$EV" data views (\S+)', text))
    trained = dict((run, cfg) for cfg, run in re.findall(r"^train (\S+) (\S+)$", text, re.M))
    assert built == {"runs/views-h6-train-v24-as", "runs/views-h6-test", "runs/views-h6-train-v24"}
    assert set(trained) == {"runs/i2s-h6-as-long", "runs/vs-h6-long"}
    i2s = json.loads((ROOT / trained["runs/i2s-h6-as-long"]).read_text())["task"]
    dec = json.loads((ROOT / trained["runs/vs-h6-long"]).read_text())["task"]
    assert {i2s["train_views"], i2s["eval_views"], dec["train_views"], dec["eval_views"]} <= built
    assert dec["embedder"] == "runs/i2s-h6-as-long"
    assert "--make-templates runs/views-h6-train-v24 --model runs/i2s-h6-as-long" in text


def test_the_packaged_files_name_the_scripts_configs() -> None:
    text = _text()
    i2s = json.loads((PRETRAINED / "image_to_sphere_modelnet10.json").read_text())
    dec = json.loads((PRETRAINED / "sphere_to_image_modelnet10.json").read_text())
    long_cfg = json.loads((ROOT / "configs/image_to_sphere_modelnet10_hull6_scaled_long.json").read_text())
    assert i2s["step"] == long_cfg["train"]["steps"] and i2s["config"]["task"]["train_views"] == \
        long_cfg["task"]["train_views"]
    dec_cfg = json.loads((ROOT / "configs/view_synthesis_modelnet10_hull6_long.json").read_text())
    assert dec["step"] == dec_cfg["train"]["steps"]  # the final checkpoint, as the script exports
    assert dec["config"]["task"]["embedder"] == "image_to_sphere_modelnet10"
    assert text.count('checkpoint="latest"') == 2


def test_a_bad_second_argument_is_one_line_and_exit_2(tmp_path) -> None:
    res = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), "--force"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "--overwrite" in res.stderr and not (tmp_path / "out").exists()
