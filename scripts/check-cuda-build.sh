#!/usr/bin/env bash
# Builds the library with `--features cuda` (candle's CUDA backend: its PTX kernels and the
# statically compiled quantized/MoE kernels, cudarc, and this crate against them) on a machine
# without a CUDA toolkit or a GPU: nvcc 13.0 and the CUDA headers come from NVIDIA's PyPI wheels
# into data-cache/cuda-toolkit. It builds the library, not the binaries: linking those needs the
# CUDA driver and cuBLAS libraries of a real CUDA installation.
#
#   scripts/check-cuda-build.sh            # CUDA_COMPUTE_CAP=80 unless set (e.g. 90 for H100/H200)
#
# The first run takes about 15 minutes on 2 cores (nvcc compiles candle's kernels); it needs no GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

toolkit="$PWD/data-cache/cuda-toolkit"
root="$toolkit/unpacked/nvidia/cu13"
if [[ ! -x "$root/bin/nvcc" ]]; then
    echo "downloading nvcc 13.0 and the CUDA headers from PyPI into $toolkit" >&2
    python3 -m pip download --no-deps -q -d "$toolkit/wheels" \
        nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
    for wheel in "$toolkit"/wheels/*.whl; do
        python3 -m zipfile -e "$wheel" "$toolkit/unpacked"
    done
    chmod +x "$root"/bin/* "$root"/nvvm/bin/*   # zipfile does not keep the executable bit
fi

export CUDA_HOME="$root" PATH="$root/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
nvcc --version | tail -n 1
cargo build --release --features cuda --lib --target-dir data-cache/cuda-target
echo "food101 builds with --features cuda (compute capability $CUDA_COMPUTE_CAP)"
