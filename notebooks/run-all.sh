#!/usr/bin/env bash
# Executes every notebook headless, in order, then checks that no cell failed and that each
# notebook drew the pictures it should (notebooks/check_outputs.py). Needs ./kernel-setup.sh.
#   notebooks/run-all.sh                   quick mode (FOOD101_QUICK=1) unless FOOD101_QUICK=0 is set
# Executed copies go to data-cache/notebooks/executed/; the committed notebooks stay clean.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="${FOOD101_CACHE:-$PWD/data-cache}"
jupyter="$cache/venv-jupyter/bin/jupyter"
[[ -x "$jupyter" ]] || jupyter="$(command -v jupyter || true)"
[[ -n "$jupyter" ]] || { echo "no jupyter: run ./kernel-setup.sh first" >&2; exit 1; }

export FOOD101_QUICK="${FOOD101_QUICK:-1}"
# With the real assets beside the checkout (CI has them), quick mode uses real photos and weights.
shared="$PWD/../shared"
if [[ "$FOOD101_QUICK" != 0 && -d "$shared/weights" ]]; then
    export FOOD101_DATA="${FOOD101_DATA:-$shared/datasets/cats_and_dogs_filtered}"
    export FOOD101_WEIGHTS="${FOOD101_WEIGHTS:-$shared/weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors}"
fi
# One evcxr build folder, used by one kernel at a time: only the first notebook builds candle.
export EVCXR_TMPDIR="$cache/evcxr-build"
mkdir -p "$EVCXR_TMPDIR"
out="$cache/notebooks/executed"
mkdir -p "$out"

for notebook in notebooks/0*.ipynb; do
    echo "==> $notebook" >&2
    started=$SECONDS
    # A cold first cell compiles candle (about 5 minutes on 2 cores): the per-cell timeout allows it.
    "$jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=rust \
        --ExecutePreprocessor.timeout=1800 --output-dir "$out" "$notebook"
    echo "    $((SECONDS - started)) s" >&2
done
python3 notebooks/check_outputs.py "$out"/0*.ipynb
