#!/usr/bin/env python3
"""Native GET and PUT over cleartext HTTP/2 (h2c, prior knowledge) next to HTTP/1.1, with oha.

Run from the project root after `cargo build --release`:

    python3 benches/h2c_vs_http1.py                  # 5 rounds x 5 s
    python3 benches/h2c_vs_http1.py --rounds 3 --duration 4

One release server (one worker, pinned to CPU 0) preloaded with 10,000 keys; oha on
CPU 1, 64 connections, one request in flight per connection (`oha --http2` opens 64
HTTP/2 connections of one stream each, so both protocols keep 64 requests in flight).
GET reads one key, PUT writes one key with the 42-byte JSON value (oha repeats one
request). Each round runs GET and PUT over both protocols, the order reversed every
other round; prints each run (requests/s, p99, success rate, errors other than the
requests cut off when a run ends) and the medians, with h2c/HTTP/1.1 ratios.

Installs oha with `cargo install oha --locked` if it is missing. Loopback only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, oha_binary, wait_port  # noqa: E402  (benches/load.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALUE = '{"name":"Alice","age":30,"tags":["a","b"]}'
KEYS = 10_000



def preload(port):
    for n in range(KEYS):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/kv/key{n}",
                                         data=VALUE.encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()


def run(oha, port, kind, http2, seconds):
    command = ["taskset", "-c", "1", oha, "-z", f"{seconds}s", "-c", "64", "--no-tui",
               "--output-format", "json"]
    if http2:
        command.append("--http2")
    if kind == "put":
        command += ["-m", "PUT", "-H", "Content-Type: application/json", "-d", VALUE]
    command.append(f"http://127.0.0.1:{port}/v1/kv/key{KEYS // 2}")
    report = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    summary = report["summary"]
    errors = {name: count for name, count in report.get("errorDistribution", {}).items()
              if "deadline" not in name}
    return summary["requestsPerSec"], report["latencyPercentiles"]["p99"], \
        summary["successRate"], errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rustkv"))
    args = parser.parse_args()
    oha = oha_binary()
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "rustkv.toml")
        with open(config, "w") as file:
            file.write(f'[server]\nport = {port}\nworkers = 1\n[log]\nlevel = "warn"\n')
        server = subprocess.Popen(["taskset", "-c", "0", args.binary, "--config", config],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, process=server)
            preload(port)
            runs = {}
            settings = [(kind, http2) for kind in ("get", "put") for http2 in (False, True)]
            for round_index in range(args.rounds):
                order = settings if round_index % 2 == 0 else settings[::-1]
                for kind, http2 in order:
                    rate, p99, success, errors = run(oha, port, kind, http2, args.duration)
                    runs.setdefault((kind, http2), []).append(rate)
                    name = "h2c" if http2 else "http/1.1"
                    print(f"round {round_index + 1} {kind:3} {name:8} {rate:9,.0f} req/s  "
                          f"p99 {p99 * 1000:6.2f} ms  success {success:.4f}  errors {errors}",
                          flush=True)
        finally:
            server.terminate()
            server.wait()
    print("\nmedians")
    for kind in ("get", "put"):
        http1, h2c = (statistics.median(runs[(kind, http2)]) for http2 in (False, True))
        print(f"{kind:3}  http/1.1 {http1:9,.0f}  h2c {h2c:9,.0f}  h2c/http1.1 {h2c / http1:.2f}")


if __name__ == "__main__":
    main()
