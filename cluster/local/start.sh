#!/usr/bin/env bash
# A Ray cluster of one head and N worker nodes on this machine, for testing multi-node behaviour.
# Launch:  cluster/local/start.sh [-n WORKERS] [-c CPUS_PER_NODE] [-d DIR]
#          source DIR/env.sh && sportpose submit experiments/demo.yaml --shared-storage DIR ...
# Stop:    cluster/local/stop.sh DIR
#
# The dashboard and job API bind to 127.0.0.1; every port is picked free at start, so the cluster lives next
# to any other Ray on the machine (a local `ray.init()`, other engineers' clusters) without touching it. Ray's
# own GCS, raylet and object-manager ports listen on every interface under the machine's address (Ray
# resolves 127.0.0.1 to it and has no loopback-only mode); the token below guards them. DIR holds
# the cluster's own temp dirs (one per node), logs, its auth token, the PIDs of the `ray start --block`
# processes that own each node, and env.sh with the variables a client needs. stop.sh stops exactly the
# processes recorded there (and their children); it never runs `ray stop`, which kills every Ray on the
# machine.
#
# Token authentication (Ray 2.60): the cluster gets its own token, generated into DIR/auth_token (never
# ~/.ray/auth_token, which other Ray instances on the machine use). Every node starts with
# RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=DIR/auth_token; env.sh exports the same two variables so that
# `sportpose submit`, `sportpose jobs` and the `ray` CLI can talk to the cluster.
#
# Options:
#   -n WORKERS        worker nodes besides the head (default 1)
#   -c CPUS_PER_NODE  logical CPUs each node advertises (default 2)
#   -d DIR            the cluster's folder (default: a new /tmp/sportpose-ray-XXXXXX; kept short because
#                     Ray's Unix sockets live under it and socket paths are limited to 107 bytes)
#   -t SECONDS        how long to wait for every node to join (default 120)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKERS=1
CPUS=2
DIR=""
TIMEOUT=120
while getopts "n:c:d:t:h" opt; do
  case "$opt" in
    n) WORKERS="$OPTARG" ;;
    c) CPUS="$OPTARG" ;;
    d) DIR="$OPTARG" ;;
    t) TIMEOUT="$OPTARG" ;;
    *) sed -n '2,/^set /{/^#/p}' "$0"; exit 2 ;;
  esac
done

# The project's virtualenv when there is one, else whatever `ray` and `python3` the PATH gives. The nodes
# get it first on their PATH, as a cluster image has the project installed: a job's `python` is this one.
if [[ -x "$ROOT/.venv/bin/ray" ]]; then
  RAY="$ROOT/.venv/bin/ray"; PY="$ROOT/.venv/bin/python"
  export PATH="$ROOT/.venv/bin:$PATH"
else
  RAY="$(command -v ray)"; PY="$(command -v python3)"
fi

if [[ -z "$DIR" ]]; then
  DIR="$(mktemp -d /tmp/sportpose-ray-XXXXXX)"
fi
DIR="$(realpath -m "$DIR")"
# DIR/nodeK/session_<date>_<time>_<pid>/sockets/plasma_store must fit in a Unix socket path (107 bytes).
if (( ${#DIR} > 36 )); then
  echo "error: $DIR is too long for Ray's socket paths under it; use a folder of at most 36 characters" >&2
  exit 2
fi
if [[ -e "$DIR/pids" ]]; then
  echo "error: $DIR already holds a cluster (pids); stop it first: cluster/local/stop.sh $DIR" >&2
  exit 2
fi
mkdir -p "$DIR"

umask 077
"$PY" -c 'import secrets; print(secrets.token_hex(32))' > "$DIR/auth_token"
umask 022
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$DIR/auth_token"
unset RAY_AUTH_TOKEN RAY_ADDRESS
export RAY_USAGE_STATS_ENABLED=0
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0  # a test cluster has nothing to drain; stop at once

# Free ports on the loopback interface, for the ports whose Ray defaults are fixed numbers
# (6379, 8265, 10001, 52365) and would collide with another Ray on this machine.
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Common arguments of every node: loopback only, random worker ports, its own temp dir.
node_args() {  # $1: node index
  local agent_port
  agent_port="$(free_ports 1)"
  echo --num-cpus "$CPUS" --temp-dir "$DIR/node$1" \
       --dashboard-agent-listen-port "$agent_port" --min-worker-port 0 --max-worker-port 0 \
       --disable-usage-stats --block
}

read -r GCS_PORT DASH_PORT CLIENT_PORT <<< "$(free_ports 3)"
# Every process of the cluster inherits its own GCS address: Ray code that looks for "the" local cluster
# (Ray Train's placement-group cleaner asks the State API) would otherwise find several on a shared machine.
export RAY_ADDRESS="127.0.0.1:$GCS_PORT"
: > "$DIR/pids"
# shellcheck disable=SC2046
nohup "$RAY" start --head --port "$GCS_PORT" --dashboard-host 127.0.0.1 --dashboard-port "$DASH_PORT" \
  --ray-client-server-port "$CLIENT_PORT" $(node_args 0) > "$DIR/node0.log" 2>&1 &
echo "$!" >> "$DIR/pids"

DASHBOARD="http://127.0.0.1:$DASH_PORT"
TOKEN="$(cat "$DIR/auth_token")"

# How many nodes are alive, as the head's State API reports them (0 while it is not up yet).
alive_nodes() {
  curl -sf -H "Authorization: Bearer $TOKEN" "$DASHBOARD/api/v0/nodes?limit=1000" 2>/dev/null \
    | "$PY" -c 'import json, sys; print(sum(n["state"] == "ALIVE" for n in json.load(sys.stdin)["data"]["result"]["result"]))' \
    2>/dev/null || echo 0
}

wait_for_nodes() {  # $1: expected alive nodes
  local deadline=$((SECONDS + TIMEOUT))
  until [[ "$(alive_nodes)" -ge "$1" ]]; do
    if (( SECONDS > deadline )); then
      echo "error: only $(alive_nodes) of $1 nodes came up in ${TIMEOUT}s; logs in $DIR/node*.log" >&2
      "$ROOT/cluster/local/stop.sh" "$DIR" >&2 || true
      exit 1
    fi
    sleep 1
  done
}

wait_for_nodes 1
for i in $(seq 1 "$WORKERS"); do
  # shellcheck disable=SC2046
  nohup "$RAY" start --address "127.0.0.1:$GCS_PORT" $(node_args "$i") > "$DIR/node$i.log" 2>&1 &
  echo "$!" >> "$DIR/pids"
done
wait_for_nodes $((WORKERS + 1))

cat > "$DIR/env.sh" <<EOF
# Source this file to talk to the local cluster in $DIR.
export RAY_API_SERVER_ADDRESS=$DASHBOARD  # the job API, read by sportpose submit/jobs and ray job
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$DIR/auth_token
EOF

echo "cluster: 1 head + $WORKERS worker node(s), $CPUS CPUs each, in $DIR"
echo "dashboard and job API: $DASHBOARD   (GCS 127.0.0.1:$GCS_PORT)"
echo "use it:  source $DIR/env.sh"
echo "stop it: $ROOT/cluster/local/stop.sh $DIR"
