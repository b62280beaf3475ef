#!/usr/bin/env bash
# Creates (or refreshes) the Python venv with the peer frameworks: TensorFlow/Keras, PyTorch,
# torchvision, timm, safetensors, numpy, at the versions pinned in bench/requirements-peers.txt.
#
#   bench/setup-peers.sh            # venv at $FOOD101_PEERS_VENV, default <repo>/data-cache/venv-peers
#   FOOD101_PEERS_PYTHON=python3.11 bench/setup-peers.sh
#
# Idempotent: a stamp file in the venv holds the hash of the requirements and of the stub maker;
# when it matches, nothing is done. CPU only: torch's nvidia-*/triton dependencies are not installed
# (see bench/make_cuda_stubs.py). Needs python3 >= 3.11 with venv, cc, readelf and ldd.
# Takes a few minutes and about 1 GB of downloads the first time; the venv is about 3 GB.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${FOOD101_PEERS_VENV:-$repo/data-cache/venv-peers}"
python="${FOOD101_PEERS_PYTHON:-python3}"
req="$here/requirements-peers.txt"
stubs="$here/make_cuda_stubs.py"
stamp="$venv/.food101-peers-stamp"

want="$(cat "$req" "$stubs" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "peers venv up to date: $venv"
    exit 0
fi

for tool in cc readelf ldd; do
    command -v "$tool" >/dev/null || { echo "setup-peers: '$tool' is needed (apt-get install gcc binutils)" >&2; exit 1; }
done
"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "setup-peers: $python must be Python >= 3.11" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
rm -f "$stamp"

# --no-deps: the requirements file is the whole closure, minus torch's CUDA wheels.
"$venv/bin/python" -m pip install --disable-pip-version-check --no-deps -r "$req"

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$venv/bin/python" "$stubs" "$site"

echo "checking the peer frameworks"
TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" - <<'EOF'
import numpy as np
import torch
import torch.nn.functional as F

a, b = torch.randn(2, 2, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
assert torch.allclose(a @ b, torch.from_numpy(a.numpy() @ b.numpy()))
x, w = torch.randn(1, 3, 9, 11), torch.randn(4, 3, 3, 3)
y = F.conv2d(x, w, padding=1)
ref = (F.unfold(x, 3, padding=1).transpose(1, 2) @ w.view(4, -1).t()).transpose(1, 2).reshape(1, 4, 9, 11)
assert (y - ref).abs().max().item() < 1e-4
assert not torch.cuda.is_available()

import safetensors, timm, torchvision  # noqa: E401,F401
import tensorflow as tf
import keras

z = keras.layers.Conv2D(4, 3, padding="same")(np.zeros((1, 9, 11, 3), np.float32))
assert tuple(z.shape) == (1, 9, 11, 4)
print(f"ok: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
      f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {np.__version__}, "
      f"safetensors {safetensors.__version__}")
EOF

echo "$want" > "$stamp"
echo "peers venv ready: $venv (python: $venv/bin/python)"
