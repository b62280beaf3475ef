#!/usr/bin/env bash
# Runs a local MLflow tracking server (mlflow 3.17.2 from scripts/mlflow-setup.sh, which it runs
# first) with its runs in a SQLite file and its artifacts in a folder:
#   STORE/mlflow.db, STORE/artifacts/   STORE defaults to ${FOOD101_CACHE:-<repo>/data-cache}/mlflow
#
#   scripts/mlflow-server.sh                      # foreground on http://127.0.0.1:5000, Ctrl-C stops
#   scripts/mlflow-server.sh --background         # returns once the server answers its REST API
#   scripts/mlflow-server.sh --stop               # stops the background server of that store
#
# Options:
#   --host H        address to listen on (default 127.0.0.1)
#   --port P        port (default 5000); 0 picks a free one
#   --store DIR     where mlflow.db and artifacts/ live (e.g. a temporary folder for tests)
#   --allowed-hosts LIST  Host headers the server answers (mlflow's option; default localhost and
#                   private addresses). Behind a proxy that keeps its own host name, such as
#                   Colab's port proxy, '*' lets the UI through; the server still listens only on --host.
#   --background    start detached, in its own process group; writes STORE/server.pid,
#                   STORE/server.url (the tracking URI) and STORE/server.log, then waits until
#                   /health and an API call answer (FOOD101_MLFLOW_TIMEOUT seconds, default 90);
#                   if that store's server is already running, just prints its URI
#   --stop          stop the background server of STORE (the whole process group, workers too)
#
# Prints "MLflow UI: URL" and the "export MLFLOW_TRACKING_URI=URL" line for the Rust side on stdout.
# The server takes about 15-20 s to start and about 400 MB of memory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

host=127.0.0.1
port=5000
store="${FOOD101_CACHE:-$repo/data-cache}/mlflow"
mode=foreground
allowed_hosts=""
timeout="${FOOD101_MLFLOW_TIMEOUT:-90}"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "mlflow-server: $*" >&2; exit 1; }

while (($#)); do
    case "$1" in
        --host) host="${2:?--host needs a value}"; shift 2 ;;
        --host=*) host="${1#*=}"; shift ;;
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --port=*) port="${1#*=}"; shift ;;
        --store) store="${2:?--store needs a value}"; shift 2 ;;
        --store=*) store="${1#*=}"; shift ;;
        --allowed-hosts) allowed_hosts="${2:?--allowed-hosts needs a value}"; shift 2 ;;
        --allowed-hosts=*) allowed_hosts="${1#*=}"; shift ;;
        --background) mode=background; shift ;;
        --stop) mode=stop; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$port" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$port'"

mkdir -p "$store"
store="$(cd "$store" && pwd)"
pidfile="$store/server.pid"
urlfile="$store/server.url"
log="$store/server.log"

# The process group of the background server, if one of ours is alive (pid file and a process of
# that group whose command line mentions mlflow, so that a reused pid is never taken for it).
running_group() {
    [[ -f "$pidfile" ]] || return 1
    local pgid
    pgid="$(tr -dc '0-9' < "$pidfile")"
    [[ -n "$pgid" ]] && pgrep -g "$pgid" -f mlflow >/dev/null 2>&1 || return 1
    echo "$pgid"
}

stop_group() { # TERM the whole group, then KILL whatever is left after 20 s
    local pgid="$1" i
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "mlflow-server: process group $pgid still alive after 20 s, sending KILL" >&2
    kill -KILL -- "-$pgid" 2>/dev/null || true
    sleep 0.5
}

if [[ "$mode" == stop ]]; then
    if pgid="$(running_group)"; then
        stop_group "$pgid"
        echo "stopped MLflow server (process group $pgid, store $store)" >&2
    else
        echo "no background MLflow server for store $store" >&2
    fi
    rm -f "$pidfile" "$urlfile"
    exit 0
fi

if [[ "$mode" == background ]] && pgid="$(running_group)"; then
    url="$(cat "$urlfile" 2>/dev/null || true)"
    echo "MLflow server already running (process group $pgid, store $store)" >&2
    echo "MLflow UI: $url"
    echo "export MLFLOW_TRACKING_URI=$url"
    exit 0
fi

venv="$(bash "$here/mlflow-setup.sh")"
py="$venv/bin/python"

# Port 0: let the kernel pick a free one. Otherwise make sure the port is free, so that the
# readiness check below can never be answered by some other server already listening there.
port="$("$py" - "$host" "$port" <<'EOF'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        sys.exit(f"mlflow-server: cannot listen on {host}:{port}: {e.strerror} "
                 "(another server there? choose --port, or --port 0 for a free one)")
    print(s.getsockname()[1])
EOF
)"

case "$host" in
    0.0.0.0) url_host=127.0.0.1 ;;
    ::|'[::]') url_host='[::1]' ;;
    *:*) url_host="[$host]" ;;
    *) url_host="$host" ;;
esac
url="http://$url_host:$port"

mkdir -p "$store/artifacts"
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
server=("$venv/bin/mlflow" server
    --backend-store-uri "sqlite:///$store/mlflow.db"
    --artifacts-destination "$store/artifacts"
    --host "$host" --port "$port" --workers 1)
[[ -n "$allowed_hosts" ]] && server+=(--allowed-hosts "$allowed_hosts")

if [[ "$mode" == foreground ]]; then
    echo "MLflow UI: $url"
    echo "export MLFLOW_TRACKING_URI=$url"
    cd "$store"
    exec "${server[@]}"
fi

# --background: a new session (so its own process group, pgid == pid) with the server's workers
# in it; the Python exec makes sure the pid recorded is the group leader's.
rm -f "$pidfile" "$urlfile"
(cd "$store" && exec "$py" -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
    "${server[@]}" </dev/null >"$log" 2>&1) &
pgid=$!
echo "$pgid" > "$pidfile"
echo "$url" > "$urlfile"
echo "starting MLflow server on $url (process group $pgid, log $log)" >&2

fail() {
    echo "mlflow-server: $*" >&2
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" >&2 || true
    echo "----" >&2
    stop_group "$pgid"
    rm -f "$pidfile" "$urlfile"
    exit 1
}

# Ready when /health says OK and the tracking API answers (the Default experiment exists once the
# database is migrated).
probe() {
    "$py" - "$url" <<'EOF'
import sys, urllib.request
url = sys.argv[1]
try:
    with urllib.request.urlopen(url + "/health", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default", timeout=10) as r:
        assert r.status == 200
except Exception:
    sys.exit(1)
EOF
}

start=$SECONDS
until probe; do
    kill -0 "$pgid" 2>/dev/null || { wait "$pgid" && rc=0 || rc=$?; fail "the server exited (status $rc) before it answered"; }
    ((SECONDS - start < timeout)) || fail "no answer from $url within $timeout s"
    sleep 1
done
echo "MLflow server ready after $((SECONDS - start)) s" >&2
echo "MLflow UI: $url"
echo "export MLFLOW_TRACKING_URI=$url"
