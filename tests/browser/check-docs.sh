#!/usr/bin/env bash
# The /docs check in headless Chromium (tests/browser/docs.mjs): installs what it
# needs (Debian's chromium from apt, playwright-core from npm at the locked
# version, which drives the system Chromium and downloads no browser), builds
# RustKV and runs the check against it on 127.0.0.1. `.ci/run` runs it.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null; then
    echo "installing chromium from apt ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
npm ci --no-audit --no-fund --silent
(cd ../.. && cargo build --quiet)
node docs.mjs ../../target/debug/rustkv
