#!/usr/bin/env bash
# The CUDA checks in one go, sized for a short loan of one GPU (under 8 minutes in all): the
# test suite without the slow tests, with CUDA visible, then the benchmarks that take
# --device cuda. Rows go to $OUT when it is set (a remote device tool fetches that folder),
# else to benchmarks/results/; the test log lies beside them. Each step has its own time limit,
# so one that hangs cannot use up the loan; the script exits 1 if any step failed.
#
#     bash benchmarks/gpu.sh            # PYTHON=... to use another interpreter than .venv's
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu.sh: no CUDA device visible to torch (torch.cuda.is_available() is False): nothing was run" >&2
    exit 3
fi

DEST=${OUT:-benchmarks/results}
mkdir -p "$DEST"
failed=0

step() {  # step SECONDS COMMAND...: run with a time limit, remember a failure, go on
    local limit=$1
    shift
    echo "== $*"
    if ! timeout "$limit" "$@"; then
        echo "gpu.sh: failed or ran past ${limit}s: $*" >&2
        failed=1
    fi
}

"$PY" -c 'import torch; print("torch", torch.__version__, "on", torch.cuda.get_device_name())'
# the tests' CUDA parameters (marked cuda, present only where torch sees a GPU) first, so they
# run even if the CPU remainder of the suite is slow
step 80 bash -c "'$PY' -m pytest -q -m 'cuda and not slow' -n 4 --dist loadgroup -p no:cacheprovider 2>&1 \
    | tee '$DEST/gpu-tests-cuda.log'"
step 140 bash -c "'$PY' -m pytest -q -m 'not cuda and not slow' -n 4 --dist loadgroup -p no:cacheprovider 2>&1 \
    | tee '$DEST/gpu-tests.log'"
step 60 "$PY" benchmarks/reconstruction_frames.py --device cuda --jsonl "$DEST/reconstruction_frames.jsonl"
step 60 "$PY" benchmarks/gcnn.py --device cuda --jsonl "$DEST/gcnn.jsonl"
step 120 "$PY" benchmarks/spherical_cnn.py --quick --device cuda --jsonl "$DEST/spherical_cnn.jsonl"
exit $failed
