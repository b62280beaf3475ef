#!/usr/bin/env bash
# Creates (or refreshes) the Python venv that runs the MLflow tracking server, with the versions
# pinned in scripts/requirements-mlflow.txt (mlflow 3.17.2 and its whole dependency closure).
#
#   scripts/mlflow-setup.sh         # venv at ${FOOD101_CACHE:-<repo>/data-cache}/venv-mlflow
#
# Idempotent: when the venv's stamp matches the requirements file and mlflow is installed at the
# pinned version, nothing is done (well under a second). The first time it downloads about 190 MB
# of wheels and takes about a minute; the venv is about 850 MB. Needs python3 >= 3.10 with venv.
# Prints progress on stderr and, on stdout, nothing but the venv's path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${FOOD101_CACHE:-$repo/data-cache}"
venv="$cache/venv-mlflow"
req="$here/requirements-mlflow.txt"
stamp="$venv/.food101-mlflow-stamp"

version="$(sed -n 's/^mlflow==\([^[:space:]]*\).*/\1/p' "$req")"
[[ -n "$version" ]] || { echo "mlflow-setup: no mlflow==VERSION line in $req" >&2; exit 1; }

installed() { # the venv's mlflow version, or nothing
    [[ -x "$venv/bin/python" && -x "$venv/bin/mlflow" ]] || return 0
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null || true
}

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && "$(installed)" == "$version" ]]; then
    echo "mlflow venv up to date (mlflow $version): $venv" >&2
    echo "$venv"
    exit 0
fi

python3 -c 'import sys; assert sys.version_info >= (3, 10), sys.version' \
    || { echo "mlflow-setup: python3 must be Python >= 3.10" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating venv $venv" >&2
    mkdir -p "$cache"
    python3 -m venv "$venv" >&2 \
        || { echo "mlflow-setup: 'python3 -m venv' failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
rm -f "$stamp"

echo "installing mlflow $version into $venv" >&2
# Without --no-deps: the file pins the whole closure on Linux/CPython 3.11; on another Python a
# dependency the freeze did not need is still resolved instead of missing.
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req" >&2
"$venv/bin/python" -m pip check >&2

got="$(installed)"
[[ "$got" == "$version" ]] || { echo "mlflow-setup: expected mlflow $version in $venv, found '${got:-none}'" >&2; exit 1; }
echo "$want" > "$stamp"
echo "mlflow venv ready (mlflow $version): $venv" >&2
echo "$venv"
