#!/usr/bin/env bash
# One command to get the food101 notebooks running, on a fresh Linux machine or a Colab runtime:
#   ./kernel-setup.sh
# Installs Rust (only if missing), nasm, the evcxr Jupyter kernel (pinned), JupyterLab and nbconvert
# (into data-cache/venv-jupyter; on Colab, whose own Jupyter must stay as it is, nothing), mlflow,
# registers the "Rust (food101)" kernel (notebooks/kernel/) and builds the notebooks' dependencies
# once into its build folder, so that the first cell of a new kernel takes seconds.
# FOOD101_CACHE (default data-cache/) is where all of it lives; on Colab it can be on Drive.
# Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

EVCXR_VERSION=0.22.0
cache="${FOOD101_CACHE:-$PWD/data-cache}"
mkdir -p "$cache"
say() { printf '\n==> %s\n' "$*" >&2; }
colab=false
python3 -c 'import google.colab' >/dev/null 2>&1 && colab=true

# 1. Rust: rustup's stable toolchain, plus the standard library's source (evcxr wants it).
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        say "Installing Rust with rustup (stable, minimal profile)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi
if command -v rustup >/dev/null 2>&1 && ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    say "Adding the rust-src component"
    rustup component add rust-src
fi

# 2. nasm: libjpeg-turbo's SIMD code (the mozjpeg crate) is assembled with it.
if ! command -v nasm >/dev/null 2>&1; then
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    say "Installing nasm (Debian/Ubuntu package)"
    $sudo apt-get install -y -q nasm >/dev/null || { $sudo apt-get update -q && $sudo apt-get install -y -q nasm >/dev/null; }
fi

# 3. The evcxr kernel, pinned and built with its lock file.
# (evcxr_jupyter has no --version; cargo's list of installed binaries knows.)
if cargo install --list 2>/dev/null | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
    say "evcxr_jupyter $EVCXR_VERSION is installed"
else
    say "Building evcxr_jupyter $EVCXR_VERSION: this takes 10-20 minutes on 2 cores, once"
    cargo install evcxr_jupyter --version "$EVCXR_VERSION" --locked
fi
evcxr="$(command -v evcxr_jupyter || echo "$HOME/.cargo/bin/evcxr_jupyter")"

# 4. Jupyter: Colab's own (left untouched), a venv elsewhere.
if $colab; then
    say "Colab: using the runtime's own Jupyter (nothing installed into it)"
    python="$(command -v python3)"
    jupyter_bin="$(dirname "$python")"
else
    venv="$cache/venv-jupyter"
    stamp="$venv/.requirements.md5"
    want="$(md5sum notebooks/requirements-jupyter.txt | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        say "Jupyter is installed in $venv"
    else
        say "Installing JupyterLab and nbconvert into $venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -r notebooks/requirements-jupyter.txt
        echo "$want" > "$stamp"
    fi
    python="$venv/bin/python"
    jupyter_bin="$venv/bin"
fi

# 5. The kernel: evcxr behind notebooks/kernel/launch.py (IPC as on Colab, a build folder that
# survives restarts, the crate found from any folder), registered as "food101".
build="$cache/evcxr"
"$python" notebooks/kernel/install.py register --evcxr "$evcxr" --crate "$PWD" --build "$build" --cache "$cache"

# 6. MLflow, for the tracking server the notebooks can report to.
bash scripts/mlflow-setup.sh >/dev/null

# 7. The notebooks' dependencies (candle, this crate), built once into the kernel's build folder.
say "Building the notebooks' dependencies into $build: about 8-10 minutes on 2 cores the first time, seconds afterwards"
"$python" notebooks/kernel/install.py warm

if $colab; then
cat >&2 <<NEXT

Ready. Next, on Colab:
  1. Open a notebook of this repository (File > Open notebook > GitHub, or upload it from notebooks/);
     its metadata names the "food101" kernel.
  2. Reload the browser tab (Colab lists the new kernel only after a reload) and run the cells:
     the first one takes seconds now. Keep the runtime: a new one starts from nothing.
  The MLflow UI and the web demo open through Colab's port proxy: see the README ("On Colab").
NEXT
else
cat >&2 <<NEXT

Ready. Next:
  $jupyter_bin/jupyter lab notebooks/              # open 01_etl.ipynb, kernel "Rust (food101)"
  notebooks/run-all.sh                             # or run every notebook headless, in minutes
  scripts/mlflow-server.sh                         # MLflow UI on http://127.0.0.1:5000 (another terminal),
                                                   # then export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
NEXT
fi
