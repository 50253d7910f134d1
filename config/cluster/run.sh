#!/usr/bin/env bash
# Starts the example cluster in the foreground: six RustKV nodes (shard i's primary
# on 127.0.0.1:810i, its replica on 127.0.0.1:820i) and HAProxy on 127.0.0.1:8080.
# Ctrl-C stops them all. Installs HAProxy (Debian's haproxy package, 2.6) if missing
# and builds the release binary if there is none.
#
# Environment: RUSTKV (the binary; default target/release/rustkv), and the ports
# RUSTKV_CLUSTER_PORT, RUSTKV_SHARD{1,2,3}_{PRIMARY,REPLICA}_PORT (defaults as
# above; the cluster test picks free ones). RUSTKV_CLUSTER_RUN: where logs, the
# rewritten node configs and HAProxy's stats socket go (default: a temporary dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v haproxy >/dev/null; then
    echo "installing haproxy (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
binary="${RUSTKV:-$root/target/release/rustkv}"
if [ ! -x "$binary" ]; then
    echo "building $binary"
    (cd "$root" && cargo build --release --quiet)
fi

run="${RUSTKV_CLUSTER_RUN:-$(mktemp -d /tmp/rustkv-cluster.XXXXXX)}"
mkdir -p "$run"
export RUSTKV_CLUSTER_RUN="$run" RUSTKV_CLUSTER_CONFIG="$here"
proxy_port="${RUSTKV_CLUSTER_PORT:-8080}"
export RUSTKV_CLUSTER_BIND="127.0.0.1:$proxy_port"

pids=()
stop() {
    trap - INT TERM EXIT
    echo "stopping the cluster"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Starts one node from its example config, with its port (and its primary's, for a
# replica) rewritten to the ones chosen; its pid goes to $run/<name>.pid.
start_node() {
    local name="$1" port="$2" primary_port="${3:-}"
    local config="$run/$name.toml"
    sed -e "s/^port = .*/port = $port/" "$here/$name.toml" >"$config"
    if [ -n "$primary_port" ]; then
        sed -i -e "s|^primary = .*|primary = \"http://127.0.0.1:$primary_port\"|" "$config"
    fi
    "$binary" --config "$config" >>"$run/$name.log" 2>&1 &
    pids+=($!)
    echo $! >"$run/$name.pid"
    echo "  $name: http://127.0.0.1:$port ${primary_port:+(replica of 127.0.0.1:$primary_port)} log $run/$name.log"
}

echo "RustKV cluster (logs and configs in $run):"
for shard in 1 2 3; do
    primary_var="RUSTKV_SHARD${shard}_PRIMARY_PORT" replica_var="RUSTKV_SHARD${shard}_REPLICA_PORT"
    primary_port="${!primary_var:-810$shard}" replica_port="${!replica_var:-820$shard}"
    export "RUSTKV_SHARD${shard}_PRIMARY=127.0.0.1:$primary_port"
    export "RUSTKV_SHARD${shard}_REPLICA=127.0.0.1:$replica_port"
    start_node "node-810$shard" "$primary_port"
    start_node "node-820$shard" "$replica_port" "$primary_port"
done

haproxy -f "$here/haproxy.cfg" -db >>"$run/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
echo "$haproxy_pid" >"$run/haproxy.pid"
echo "  haproxy: http://$RUSTKV_CLUSTER_BIND (stats socket $run/haproxy.sock, log $run/haproxy.log)"
echo "Ctrl-C stops them all. A node that dies is not restarted (restart it by hand)."
# Runs as long as HAProxy does; a node's death leaves the rest serving.
wait "$haproxy_pid" || true
echo "haproxy exited; see $run/haproxy.log"
