#!/usr/bin/env bash
# Screenshot of an MLflow UI page (e.g. a run's metric charts) in headless Chromium.
#   scripts/mlflow-screenshot.sh URL OUT.png [WIDTHxHEIGHT]
# URL is what `food101 train` prints as "MLflow run: ..."; append `/model-metrics` for the charts tab.
# Needs Debian's chromium (apt-get install chromium).
set -euo pipefail
url="${1:?usage: $0 URL OUT.png [WIDTHxHEIGHT]}"
out="${2:?usage: $0 URL OUT.png [WIDTHxHEIGHT]}"
size="${3:-1600x1100}"
chromium="$(command -v chromium || command -v chromium-browser || true)"
[[ -n "$chromium" ]] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# The UI is a single-page app: give its scripts virtual time to fetch the run and draw the charts.
"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --window-size="${size/x/,}" --virtual-time-budget=20000 \
    --screenshot="$(realpath -m "$out")" "$url" 2>/dev/null
echo "$out"
