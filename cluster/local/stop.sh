#!/usr/bin/env bash
# Stop a cluster started by cluster/local/start.sh, and only that one.
# Launch:  cluster/local/stop.sh DIR [--rm]
#
# Sends SIGTERM to the `ray start --block` processes recorded in DIR/pids, worker nodes first and the head
# last (each tears down the raylet, GCS, dashboard and agents of its node), after noting every descendant of
# theirs: Ray workers, job drivers. After a grace period, whatever of those is left, and any process whose
# command line names DIR, gets SIGKILL. Never `ray stop`: it would stop every Ray on the machine (it matches
# processes by name). --rm deletes DIR afterwards.
set -euo pipefail

DIR="${1:?usage: cluster/local/stop.sh DIR [--rm]}"
DIR="$(cd "$DIR" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY="$(command -v python3)"

if [[ ! -f "$DIR/pids" ]]; then
  echo "no cluster recorded in $DIR (no pids file)" >&2
  exit 0
fi

"$PY" - "$DIR" <<'EOF'
import os, signal, sys, time

cluster_dir = sys.argv[1]
roots = [int(line) for line in open(os.path.join(cluster_dir, "pids")) if line.strip()]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children():
    """Parent -> child PIDs of every process on the machine."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.setdefault(ppid, []).append(int(name))
    return out


def ours():
    """The recorded roots still running `ray start`, their descendants, and anything naming our folder."""
    tree = children()
    found = set()
    stack = [p for p in roots if "ray start" in cmdline(p) or "ray/scripts" in cmdline(p)]
    while stack:
        p = stack.pop()
        if p not in found:
            found.add(p)
            stack.extend(tree.get(p, []))
    found |= {int(n) for n in os.listdir("/proc") if n.isdigit() and cluster_dir + "/" in cmdline(int(n))}
    found.discard(os.getpid())
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


targets = ours()
# Worker nodes first, the head last: a worker node's shutdown still talks to the head's GCS.
for group, grace in ((roots[1:], 15), (roots[:1], 15)):
    for pid in group:
        if pid in targets:
            os.kill(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(alive(p) for p in group):
        time.sleep(0.2)
deadline = time.time() + 5
while time.time() < deadline and any(alive(p) for p in targets):
    time.sleep(0.2)
left = {p for p in targets | ours() if alive(p)}
for p in sorted(left):
    print(f"  did not stop on SIGTERM, killed: {p} {cmdline(p)[:120]}", file=sys.stderr)
for pid in left:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
print(f"stopped {len(targets)} processes of the cluster in {cluster_dir}" + (f" ({len(left)} killed)" if left else ""))
EOF
mv "$DIR/pids" "$DIR/pids.stopped"
if [[ "${2:-}" == "--rm" ]]; then
  rm -rf "$DIR"
fi
