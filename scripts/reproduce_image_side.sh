#!/usr/bin/env bash
# Rebuild the packaged image side from ../shared/data/modelnet10 with the fixed seeds of its
# configs: the image network image_to_sphere_modelnet10 (with its category templates) and the
# view decoder sphere_to_image_modelnet10 (docs/pose.md and docs/synthesis.md, Results).
#
#   scripts/reproduce_image_side.sh [OUT] [--overwrite]     (OUT default: runs/pretrained-image-side)
#
# Writes view datasets (5.9 GB) and run folders under runs/, then the four packaged files into
# OUT; to replace the shipped ones, give OUT=src/equivision/pretrained and --overwrite. Running it
# again resumes: view datasets by shard, trainings from their last checkpoint (a finished one is
# only evaluated). 2026-12-04, one CPU thread: 5–10 min of views, 54 min for the image
# network, 16 min for the decoder. The teacher is the packaged shapes_sphere_modelnet10_hull6.
set -euo pipefail
cd "$(dirname "$0")/.."
EV=${EQUIVISION:-.venv/bin/equivision}
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-runs/pretrained-image-side}
OVERWRITE=${2:-}
if [ -n "$OVERWRITE" ] && [ "$OVERWRITE" != "--overwrite" ]; then
  echo "error: the second argument can only be --overwrite, got '$OVERWRITE'" >&2
  exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

train() {  # config, run folder
  if [ -f "$2/config.json" ]; then "$EV" train -c "$1" --run "$2" --resume
  else "$EV" train -c "$1" --run "$2"; fi
}

mkdir -p "$OUT"
# the outputs are checked before any work starts (one line and exit 2 if one is in the way)
"$PY" - "$OUT" "$OVERWRITE" <<'PYEOF'
import sys
from pathlib import Path

from equivision.errors import EquivisionError
from equivision.io import OutputSpec, check_outputs

out, overwrite = Path(sys.argv[1]), sys.argv[2] == "--overwrite"
names = [f"{n}{e}" for n in ("image_to_sphere_modelnet10", "sphere_to_image_modelnet10")
         for e in (".json", ".safetensors")] + ["image_to_sphere_modelnet10.templates.safetensors"]
try:
    check_outputs([OutputSpec(n, out / n) for n in names], overwrite=overwrite)
except EquivisionError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
PYEOF

"$EV" data views runs/views-h6-train-v24-as --views 24 --seed 1 --scalings 4 --scale-range 0.2
"$EV" data views runs/views-h6-test --split test --views 4
"$EV" data views runs/views-h6-train-v24 --views 24 --seed 1
train configs/image_to_sphere_modelnet10_hull6_scaled_long.json runs/i2s-h6-as-long
"$EV" pose --make-templates runs/views-h6-train-v24 --model runs/i2s-h6-as-long --overwrite
train configs/view_synthesis_modelnet10_hull6_long.json runs/vs-h6-long

"$PY" - "$OUT" "$OVERWRITE" <<'PYEOF'
import json
import shutil
import sys
from pathlib import Path

from equivision.io import atomic_path
from equivision.models import export_pretrained

out, overwrite = Path(sys.argv[1]), sys.argv[2] == "--overwrite"
out.mkdir(parents=True, exist_ok=True)
templates = out / "image_to_sphere_modelnet10.templates.safetensors"
export_pretrained("runs/i2s-h6-as-long", "image_to_sphere_modelnet10", out, checkpoint="latest",
                  overwrite=overwrite, note="scripts/reproduce_image_side.sh: "
                  "configs/image_to_sphere_modelnet10_hull6_scaled_long.json, final checkpoint")
with atomic_path(templates, overwrite=overwrite) as tmp:
    shutil.copyfile("runs/i2s-h6-as-long/templates.safetensors", tmp)
weights = export_pretrained("runs/vs-h6-long", "sphere_to_image_modelnet10", out, checkpoint="latest",
                            overwrite=overwrite, note="scripts/reproduce_image_side.sh: "
                            "configs/view_synthesis_modelnet10_hull6_long.json, final checkpoint; "
                            "its config names the packaged embedder")
meta_path = weights.with_suffix(".json")
meta = json.loads(meta_path.read_text(encoding="utf-8"))
meta["config"]["task"]["embedder"] = "image_to_sphere_modelnet10"  # the run folder's packaged name
with atomic_path(meta_path, overwrite=True) as tmp:  # just written by export_pretrained
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
print(f"packaged image_to_sphere_modelnet10 (+ templates) and sphere_to_image_modelnet10 in {out}")
PYEOF
