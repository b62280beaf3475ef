#!/usr/bin/env bash
# Cross-builds food101 for 64-bit ARM Linux (aarch64: Graviton, a Raspberry Pi 5, Linux on an ARM
# Mac) and runs the engine's tests there under QEMU's user-mode emulation: on ARM the engine runs
# its generic code (the x86 kernels chosen at run time by `multiversion` are not built), and these
# tests check every kernel's output and gradients against candle's reference operations.
#
#   scripts/check-aarch64.sh
#
# Needs Rust's aarch64-unknown-linux-gnu standard library (`rustup target add
# aarch64-unknown-linux-gnu`) and Debian's cross compiler and QEMU (installed here when missing:
# libjpeg-turbo is C). The first run compiles everything once more, for ARM, into
# data-cache/aarch64-target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=aarch64-unknown-linux-gnu
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
if (( ${#missing[@]} )); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null || { $sudo apt-get update -q && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
cargo test --release --target "$target" --target-dir data-cache/aarch64-target --lib engine::
cargo test --release --target "$target" --target-dir data-cache/aarch64-target --test engine
echo "food101 builds for $target and its engine tests pass under QEMU"
