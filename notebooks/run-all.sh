#!/usr/bin/env bash
# Executes every notebook headless on the "Rust (food101)" kernel, in order, then checks that no
# cell failed and that each notebook drew the pictures it should (notebooks/check_outputs.py).
# Needs ./kernel-setup.sh.
#
#   notebooks/run-all.sh [--transport tcp|ipc] [--elsewhere] [--stand-in]
#
#   --transport ipc   connect to the kernel over Unix sockets, as Colab does (default tcp)
#   --elsewhere       run copies of the notebooks from a temporary folder outside the repository,
#                     as a notebook opened on Colab or downloaded on its own runs
#   --stand-in        no real photos or weights (an empty FOOD101_CACHE, no ../shared, the Hub
#                     offline): the synthetic fallback, which must run every cell too
#
# Quick mode (FOOD101_QUICK=1) unless FOOD101_QUICK=0 is set. With the real assets beside the
# checkout (CI has them), quick mode trains on real Food-101 photos (5 classes) with the real
# ImageNet weights, and the final validation accuracy must reach 70%.
# Executed copies go to data-cache/notebooks/executed/; the committed notebooks stay clean.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
transport=tcp elsewhere=false stand_in=false
while (($#)); do
    case "$1" in
        --transport) transport="${2:?--transport needs tcp or ipc}"; shift 2 ;;
        --elsewhere) elsewhere=true; shift ;;
        --stand-in) stand_in=true; shift ;;
        *) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
    esac
done
cache="${FOOD101_CACHE:-$repo/data-cache}"
jupyter="$cache/venv-jupyter/bin/jupyter"
[[ -x "$jupyter" ]] || jupyter="$(command -v jupyter || true)"
[[ -n "$jupyter" ]] || { echo "no jupyter: run ./kernel-setup.sh first" >&2; exit 1; }

export FOOD101_QUICK="${FOOD101_QUICK:-1}"
out="$cache/notebooks/executed"
checks=() scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT
if $stand_in; then
    FOOD101_CACHE="$(mktemp -d -t food101-stand-in.XXXXXX)"
    scratch+=("$FOOD101_CACHE")
    export FOOD101_CACHE HF_HUB_OFFLINE=1
    unset FOOD101_DATA FOOD101_WEIGHTS
    out="$cache/notebooks/executed-stand-in"
    checks+=(--stand-in)
elif [[ "$FOOD101_QUICK" != 0 && -d "$repo/../shared/weights" ]]; then
    shared="$(cd "$repo/../shared" && pwd)"
    export FOOD101_DATA="${FOOD101_DATA:-$shared/datasets/food101-5}"
    export FOOD101_WEIGHTS="${FOOD101_WEIGHTS:-$shared/weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors}"
    checks+=(--min-accuracy 0.70)
fi
mkdir -p "$out"

folder="$repo/notebooks"
if $elsewhere; then
    folder="$(mktemp -d -t food101-notebooks.XXXXXX)"
    scratch+=("$folder")
    cp notebooks/0*.ipynb "$folder/"
fi
echo "==> notebooks in $folder, kernel over $transport" >&2
for notebook in "$folder"/0*.ipynb; do
    echo "==> $(basename "$notebook")" >&2
    started=$SECONDS
    # A cold first cell compiles candle (minutes on 2 cores): the per-cell timeout allows it.
    # From the notebook's folder, as a Jupyter server runs it: the IPC socket files are named
    # relative to the working directory, which the client and the kernel then share.
    (cd "$folder" && "$jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=food101 \
        --KernelManager.transport="$transport" \
        --ExecutePreprocessor.timeout=1800 --output-dir "$out" "$(basename "$notebook")")
    echo "    $((SECONDS - started)) s" >&2
done
python3 notebooks/check_outputs.py "${checks[@]}" "$out"/0*.ipynb
