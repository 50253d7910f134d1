#!/usr/bin/env bash
# Disk full with `[persistence] mode = "aof"`, on a real full filesystem: mounts a
# 4 MiB tmpfs, builds the debug binary and runs tests/disk_full.py against it (the
# server refuses writes with 503 while the disk is full, keeps serving reads, heals
# by itself once there is room, and loses nothing it acknowledged across a kill -9).
# Needs root (mount) and Python 3; `.ci/run` runs it. Takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "disk_full.sh: needs root to mount a tmpfs" >&2
    exit 1
fi
cargo build --quiet

WORK=$(mktemp -d)
MOUNT="$WORK/mnt"
mkdir "$MOUNT"
cleanup() {
    # The driver kills its server; this covers the driver dying first.
    if [ -s "$WORK/server.pid" ]; then
        kill -9 "$(cat "$WORK/server.pid")" 2>/dev/null || true
    fi
    if mountpoint -q "$MOUNT"; then
        umount "$MOUNT" || umount -l "$MOUNT"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mount -t tmpfs -o size=4m tmpfs "$MOUNT"

timeout 120 python3 tests/disk_full.py target/debug/rustkv "$MOUNT" "$WORK"
