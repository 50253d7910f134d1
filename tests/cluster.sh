#!/usr/bin/env bash
# The cluster test (.ci/run runs it): config/cluster/ started by its run.sh on free
# loopback ports, then tests/cluster/check.py (10,000 keys through HAProxy, the
# key derivation, refusals, kill -9 of a primary, promotion, the old primary back
# as a replica). Installs haproxy from apt if missing. Bounded: 180 s.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v haproxy >/dev/null; then
    echo "installing haproxy (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
target="${CARGO_TARGET_DIR:-target}"
export RUSTKV="${RUSTKV:-$target/debug/rustkv}"
[ -x "$RUSTKV" ] || cargo build --quiet --bin rustkv

run="$(mktemp -d /tmp/rustkv-cluster-test.XXXXXX)"
export RUSTKV_CLUSTER_RUN="$run"
# Seven free loopback ports, all bound at once so none repeats.
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
export RUSTKV_CLUSTER_PORT="${ports[0]}"
for shard in 1 2 3; do
    export "RUSTKV_SHARD${shard}_PRIMARY_PORT=${ports[$shard]}"
    export "RUSTKV_SHARD${shard}_REPLICA_PORT=${ports[$((shard + 3))]}"
done

setsid bash config/cluster/run.sh >"$run/run.out" 2>&1 &
cluster=$!
passed=0
cleanup() {
    kill -TERM "$cluster" 2>/dev/null || true
    # The old primary the check restarted is not run.sh's child.
    if [ -f "$run/node-8101.restarted.pid" ]; then
        kill "$(cat "$run/node-8101.restarted.pid")" 2>/dev/null || true
    fi
    wait "$cluster" 2>/dev/null || true
    if [ "$passed" = 1 ]; then rm -rf "$run"; fi
}
trap cleanup EXIT

if ! timeout 180 python3 tests/cluster/check.py; then
    echo "== cluster test failed; logs in $run"
    tail -n 20 "$run"/*.log "$run/run.out" || true
    exit 1
fi
passed=1
