#!/usr/bin/env python3
"""Two RustKV binaries side by side: throughput and server CPU per request, A/B.

Run from the project root:
    python3 benches/ab_binaries.py --old OLD_BINARY [--new target/release/rustkv] [--rounds 6]

Builds nothing: pass two release binaries (e.g. one built in a `git worktree` of an older
commit). Each is started with one HTTP worker pinned to CPU 0, prefilled with the same
10,000 keys, and wrk (CPU 1, 64 connections, 4 s) runs native PUT, compat PUT and native
GET against each in turn, the order alternating by round. Prints per scenario the medians
of each binary and the median of the per-round ratios new/old (throughput, and CPU time per
request read from /proc). Loopback only; installs wrk from apt if missing. Use it where the HTTP kit's ceiling ratios are
too noisy to tell two builds apart.
"""
import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import cpu_seconds, ensure_wrk, free_port, wait_port  # noqa: E402  (benches/load.py)

WRK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk")
SCENARIOS = {
    "native-put": ("put.lua", {"MODE": "native"}),
    "compat-put": ("put.lua", {"MODE": "compat"}),
    "native-get": ("get.lua", {"PATH_FMT": "/v1/kv/%s"}),
}
VALUE = '{"name":"Alice","age":30,"tags":["a","b"]}'


def start(binary, tmp_name):
    port = free_port()
    config = f"/tmp/ab-{tmp_name}-{os.getpid()}.toml"
    with open(config, "w") as file:
        file.write(f'[server]\nbind = "127.0.0.1"\nport = {port}\nworkers = 1\n'
                   f'[store]\ncapacity = 1000000\n')
    process = subprocess.Popen(["taskset", "-c", "0", binary, "--config", config],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, RUST_LOG="warn"))
    wait_port(port, process=process)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in range(10000):
        conn.request("PUT", f"/v1/kv/key{n}", VALUE, {"Content-Type": "application/json"})
        conn.getresponse().read()
    conn.close()
    return process, port


def run(process, port, script, env):
    before = cpu_seconds(process.pid)
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", "-d4s", "-s", os.path.join(WRK, script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, KEYS="10000", **env)).stdout
    used = cpu_seconds(process.pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), used / requests * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", default="target/release/rustkv")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    ensure_wrk()
    servers = {"old": start(args.old, "old"), "new": start(args.new, "new")}
    results = {}
    try:
        for round_no in range(args.rounds):
            for scenario, (script, env) in SCENARIOS.items():
                order = ["old", "new"] if round_no % 2 == 0 else ["new", "old"]
                for name in order:
                    results.setdefault((scenario, name), []).append(run(*servers[name], script, env))
    finally:
        for process, _ in servers.values():
            process.terminate()
    for scenario in SCENARIOS:
        old, new = results[(scenario, "old")], results[(scenario, "new")]
        rate = statistics.median(n[0] / o[0] for o, n in zip(old, new))
        cpu = statistics.median(n[1] / o[1] for o, n in zip(old, new))
        print(f"{scenario}: old {statistics.median(o[0] for o in old):,.0f} req/s "
              f"{statistics.median(o[1] for o in old):.1f} us/req; new "
              f"{statistics.median(n[0] for n in new):,.0f} req/s "
              f"{statistics.median(n[1] for n in new):.1f} us/req; new/old throughput "
              f"{rate:.2f}, CPU per request {cpu:.2f}")


if __name__ == "__main__":
    main()
