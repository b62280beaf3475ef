#!/usr/bin/env bash
# One command to get the food101 notebooks running, on a fresh Linux machine or a Colab runtime:
#   ./kernel-setup.sh
# Installs Rust (only if missing), the evcxr Jupyter kernel (pinned), JupyterLab and nbconvert
# (into data-cache/venv-jupyter, or the current Python on Colab), mlflow, and registers the `rust`
# kernel. Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

EVCXR_VERSION=0.22.0
cache="${FOOD101_CACHE:-$PWD/data-cache}"
say() { printf '\n==> %s\n' "$*" >&2; }

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

# 2. The evcxr kernel, pinned and built with its lock file.
# (evcxr_jupyter has no --version; cargo's list of installed binaries knows.)
if cargo install --list 2>/dev/null | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
    say "evcxr_jupyter $EVCXR_VERSION is installed"
else
    say "Building evcxr_jupyter $EVCXR_VERSION: this takes 10-20 minutes on 2 cores, once"
    cargo install evcxr_jupyter --version "$EVCXR_VERSION" --locked
fi

# 3. Jupyter: the current Python on Colab, a venv elsewhere.
if python3 -c 'import google.colab' >/dev/null 2>&1; then
    say "Colab: installing Jupyter's tools into the runtime's Python"
    python3 -m pip install -q -r notebooks/requirements-jupyter.txt
    jupyter_bin="$(dirname "$(command -v python3)")"
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
    jupyter_bin="$venv/bin"
fi

# 4. Register the kernel (writes the `rust` kernelspec into Jupyter's data directory).
PATH="$jupyter_bin:$PATH" evcxr_jupyter --install >/dev/null
say "Kernel: $(PATH="$jupyter_bin:$PATH" jupyter kernelspec list 2>/dev/null | grep -E '^\s+rust' || echo 'rust (registered)')"

# 5. MLflow, for the tracking server the notebooks can report to.
bash scripts/mlflow-setup.sh >/dev/null

cat >&2 <<NEXT

Ready. Next:
  $jupyter_bin/jupyter lab notebooks/              # open 01_etl.ipynb, kernel "Rust"
  FOOD101_QUICK=1 notebooks/run-all.sh             # or run every notebook headless, in minutes
  scripts/mlflow-server.sh                         # MLflow UI on http://127.0.0.1:5000 (another terminal),
                                                   # then export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
The first cell of each notebook builds the crate for the kernel: about 5 minutes the first time.
NEXT
