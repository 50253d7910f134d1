#!/usr/bin/env bash
# Throughput through the example cluster's HAProxy against one node directly, in the
# same run: starts config/cluster/ (release binary) on ports 19xxx, then alternates
# wrk runs (native PUT, then GET, of 10,000 keys, 64 connections, 5 s) against
# HAProxy and against shard 1's primary, ROUNDS times, and prints each figure and the
# median ratio. On this 2-core VM all seven processes and wrk share the cores, so the
# ratio says what the extra hop and HAProxy cost here, not what a cluster can carry.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
wrk_dir="$(cd .. && pwd)/shared/bench/wrk"
export RUSTKV="${RUSTKV:-${CARGO_TARGET_DIR:-target}/release/rustkv}"
export RUSTKV_CLUSTER_RUN="$(mktemp -d /tmp/rustkv-cluster-bench.XXXXXX)"
export RUSTKV_CLUSTER_PORT=19080
for shard in 1 2 3; do
    export "RUSTKV_SHARD${shard}_PRIMARY_PORT=1910$shard" "RUSTKV_SHARD${shard}_REPLICA_PORT=1920$shard"
done
setsid bash config/cluster/run.sh >"$RUSTKV_CLUSTER_RUN/run.out" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null || true; wait $cluster 2>/dev/null || true' EXIT
sleep 4
rate() { # port script env...
    local port="$1" script="$2"; shift 2
    env "$@" KEYS=10000 wrk -t1 -c64 -d5s -s "$wrk_dir/$script" "http://127.0.0.1:$port" |
        awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "ERRORS", $0 > "/dev/stderr"}'
}
for scenario in "put.lua MODE=native" "get.lua PATH_FMT=/v1/kv/%s"; do
    read -r script setting <<<"$scenario"
    proxy=() direct=()
    for round in $(seq "$rounds"); do
        proxy+=("$(rate 19080 "$script" "$setting")")
        direct+=("$(rate 19101 "$script" "$setting")")
    done
    python3 - "$script" "${proxy[*]}" "${direct[*]}" <<'PY'
import statistics, sys
name, proxy, direct = sys.argv[1], list(map(float, sys.argv[2].split())), list(map(float, sys.argv[3].split()))
ratios = [p / d for p, d in zip(proxy, direct)]
print(f"{name}: through HAProxy {proxy} req/s, one node directly {direct} req/s, "
      f"median ratio {statistics.median(ratios):.2f}")
PY
done
