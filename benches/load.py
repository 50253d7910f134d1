#!/usr/bin/env python3
"""End-to-end load scenarios for a running or freshly started RustKV, with wrk.

Recipes (each prints requests/s, p99 and non-2xx; ratios are between scenarios of
the same run, since this machine is shared and noisy):

    python3 benches/load.py flat       # native GET and PUT with 10,000 vs 1,000,000 keys
                                       # resident, and PUT at capacity (every PUT evicts)
    python3 benches/load.py expiry     # 1,000,000 keys with TTLs spread over 10 s under a
                                       # GET load: time to reclaim all, GET p99 during vs after
    python3 benches/load.py metrics    # the cost of per-request metrics: the same build with
                                       # [metrics] requests on and off, A/B alternating
    python3 benches/load.py run --url http://127.0.0.1:8000 --script get --keys 10000
                                       # one wrk run against any RustKV

The server is started from target/release/rustkv (build it first; or the binary named
by the RUSTKV environment variable, e.g. another commit's for a before/after), pinned to CPU 0
with one HTTP worker, and wrk to CPU 1, like ../shared/bench/http-ratio. The Lua
scripts are in benches/wrk/ (get.lua, put.lua, mixed.lua; KEYS, PATH_FMT, MODE).
Everything runs on 127.0.0.1. wrk is installed from apt if missing.

Plain wrk recipes against any RustKV:

    KEYS=10000 PATH_FMT=/v1/kv/%s wrk -t1 -c64 -d10s -s benches/wrk/get.lua http://127.0.0.1:8000
    KEYS=10000 MODE=native        wrk -t1 -c64 -d10s -s benches/wrk/put.lua http://127.0.0.1:8000
    KEYS=10000                    wrk -t1 -c64 -d10s -s benches/wrk/mixed.lua http://127.0.0.1:8000
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VALUE = b'{"name":"Alice","age":30,"tags":["a","b"]}'
BATCH = 256


def ensure_wrk():
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def oha_binary():
    """oha's path, installed with `cargo install oha --locked` if missing."""
    found = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    if not os.path.exists(found):
        subprocess.run(["cargo", "install", "oha", "--locked"], check=True)
    return found


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_pinned(binary, toml):
    """`binary` on a free port with one HTTP worker, pinned to CPU 0, its output
    discarded, with `toml` added to its config; answers (process, port)."""
    port = free_port()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'[server]\nport = {port}\nworkers = 1\n{toml}\n[log]\nlevel = "warn"\n')
    config.close()
    server = subprocess.Popen(["taskset", "-c", "0", binary, "--config", config.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, process=server)
    os.unlink(config.name)
    return server, port


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(capacity, extra=""):
    port = free_port()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'[server]\nport = {port}\nworkers = 1\n[store]\ncapacity = {capacity}\n'
                 f'max_memory = "8GiB"\n{extra}\n[log]\nlevel = "warn"\n')
    config.close()
    binary = os.environ.get("RUSTKV") or os.path.join(HERE, "..", "target", "release", "rustkv")
    process = subprocess.Popen(["taskset", "-c", "0", binary, "--config", config.name])
    wait_port(port)
    return process, f"http://127.0.0.1:{port}", port


def wait_port(port, timeout=20, process=None):
    """Waits until something accepts connections on 127.0.0.1:`port`; with `process`,
    fails at once if that process exits first."""
    deadline = time.time() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"server exited early with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def stats(url):
    with urllib.request.urlopen(f"{url}/v1/stats", timeout=10) as reply:
        return json.load(reply)


def preload(port, keys, ttl_spread=None, connections=16):
    """PUTs key0..key{keys-1} over pipelined connections; with `ttl_spread`, key i
    gets a TTL of (i % 1000 + 1) / 1000 * ttl_spread seconds."""

    def request(index):
        query = ""
        if ttl_spread:
            query = f"?ttl={(index % 1000 + 1) / 1000 * ttl_spread:.3f}"
        return (f"PUT /v1/kv/key{index}{query} HTTP/1.1\r\nHost: b\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(VALUE)}\r\n\r\n"
                ).encode() + VALUE

    def worker(first):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for start in range(first * BATCH, keys, BATCH * connections):
                batch = [request(i) for i in range(start, min(start + BATCH, keys))]
                sock.sendall(b"".join(batch))
                buffer, seen = b"", 0
                while seen < len(batch):
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise RuntimeError("connection closed during preload")
                    buffer += chunk
                    seen = buffer.count(b"HTTP/1.1 ")
                if b"HTTP/1.1 4" in buffer or b"HTTP/1.1 5" in buffer:
                    raise RuntimeError(f"preload failed: {buffer[:300]!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wrk(url, script, keys, seconds=8, connections=64, env=None):
    environment = dict(os.environ, KEYS=str(keys), PATH_FMT="/v1/kv/%s", MODE="native")
    environment.update(env or {})
    rate, _, p99_ms, bad = wrk_counts(url, seconds, connections, script, environment)
    return rate, p99_ms, bad


def wrk_counts(url, seconds, connections=64, script=None, env=None):
    """One wrk run on CPU 1 (one thread, `script` from benches/wrk/ if given);
    answers (requests/s, requests, p99 in ms, non-2xx answers)."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
               "--latency"]
    if script:
        command += ["-s", os.path.join(HERE, "wrk", f"{script}.lua")]
    output = subprocess.run(command + [url], capture_output=True, text=True, env=env).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rate, total, p99_ms, int(bad.group(1)) if bad else 0


def report(name, rate, p99, bad):
    print(f"  {name:34} {rate:10.0f} req/s   p99 {p99:7.2f} ms   non-2xx {bad}", flush=True)


def flat(rounds):
    """Throughput with 10k vs 1M keys resident, and PUT when every PUT evicts.

    Both stores run at once (each pinned to CPU 0, only one loaded at a time), and
    each round measures them back to back, in alternating order, so the ratio
    compares runs seconds apart, not the two halves of the benchmark."""
    results = {}
    servers = {}
    try:
        for keys in (10_000, 1_000_000):
            process, url, port = start_server(capacity=2_000_000)
            servers[keys] = (process, url)
            preload(port, keys)
            assert stats(url)["keys"] == keys
        for round_no in range(rounds):
            for script in ("get", "put"):
                order = sorted(servers, reverse=round_no % 2 == 1)
                for keys in order:
                    rate, p99, bad = wrk(servers[keys][1], script, keys)
                    report(f"{script} {keys} keys (round {round_no + 1})", rate, p99, bad)
                    results.setdefault((script, keys), []).append(rate)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    process, url, port = start_server(capacity=10_000)
    try:
        preload(port, 10_000)
        for round_no in range(rounds):
            rate, p99, bad = wrk(url, "put", 1_000_000)
            report(f"put evicting (cap 10k, 1M keys) (round {round_no + 1})", rate, p99, bad)
            results.setdefault(("evict", 0), []).append(rate)
        evictions = stats(url)["evictions_capacity"]
        print(f"  evictions during the eviction runs: {evictions}")
    finally:
        process.terminate()
        process.wait()
    median = {key: statistics.median(rates) for key, rates in results.items()}
    print("medians:")
    for (script, keys), rate in sorted(median.items()):
        print(f"  {script:6} {keys:>9} keys  {rate:10.0f} req/s")
    print(f"GET 1M / 10k: {median[('get', 1_000_000)] / median[('get', 10_000)]:.2f}")
    print(f"PUT 1M / 10k: {median[('put', 1_000_000)] / median[('put', 10_000)]:.2f}")
    print(f"PUT evicting / PUT 10k without eviction: {median[('evict', 0)] / median[('put', 10_000)]:.2f}")


def expiry():
    """1M keys with TTLs spread over 10 s, under GET load: reclaim time and p99."""
    process, url, port = start_server(capacity=2_000_000)
    try:
        preload(port, 1_000_000)  # permanent keys first: the baseline with 1M resident
        base_rate, base_p99, bad = wrk(url, "get", 1_000_000, seconds=5)
        report("GET, 1M keys, no expiry", base_rate, base_p99, bad)
        memory_full = stats(url)["memory"]
        # Rewrite the same keys with TTLs of 0.01 .. 10 s.
        start = time.time()
        preload(port, 1_000_000, ttl_spread=10.0)
        loaded = time.time()
        last_deadline = start + 10.0 + (loaded - start)
        result = {}

        def load():
            result["get"] = wrk(url, "get", 1_000_000, seconds=12)

        thread = threading.Thread(target=load)
        thread.start()
        reclaimed_at = None
        while time.time() < last_deadline + 10:
            current = stats(url)
            if current["keys"] == 0:
                reclaimed_at = time.time()
                break
            time.sleep(0.05)
        thread.join()
        rate, p99, bad = result["get"]
        report("GET during the expiry storm", rate, p99, 0)
        final = stats(url)
        print(f"  keys after: {final['keys']}, memory after: {final['memory']} (was {memory_full})")
        if reclaimed_at:
            print(f"  all keys reclaimed {reclaimed_at - last_deadline:+.2f} s after the last "
                  f"deadline (upper bound: deadlines were set while loading)")
        else:
            print("  NOT all keys reclaimed within 10 s of the last deadline")
        print(f"  p99 during storm / p99 without: {p99 / base_p99:.2f}")
    finally:
        process.terminate()
        process.wait()


def metrics_overhead(rounds, scripts=("get", "put", "mixed")):
    """Throughput with per-request metrics on vs off, side by side (A/B per round)."""
    on, on_url, on_port = start_server(capacity=1_000_000)
    off, off_url, off_port = start_server(capacity=1_000_000, extra="[metrics]\nrequests = false")
    try:
        preload(on_port, 10_000)
        preload(off_port, 10_000)
        ratios = {}
        for round_no in range(rounds):
            for script in scripts:
                order = [(on_url, "on"), (off_url, "off")]
                if round_no % 2:
                    order.reverse()
                rates = {}
                for url, name in order:
                    rate, p99, bad = wrk(url, script, 10_000, seconds=5)
                    report(f"{script} metrics {name} (round {round_no + 1})", rate, p99, bad)
                    rates[name] = rate
                ratios.setdefault(script, []).append(rates["on"] / rates["off"])
        for script, values in ratios.items():
            print(f"{script}: metrics on / off, median of {len(values)}: {statistics.median(values):.3f}")
    finally:
        for process in (on, off):
            process.terminate()
            process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=["flat", "expiry", "metrics", "run"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url")
    parser.add_argument("--script", default="get")
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    ensure_wrk()
    if args.recipe == "flat":
        flat(args.rounds)
    elif args.recipe == "expiry":
        expiry()
    elif args.recipe == "metrics":
        metrics_overhead(args.rounds if args.rounds != 3 else 6)
    else:
        report(f"{args.script} {args.keys} keys", *wrk(args.url, args.script, args.keys))


if __name__ == "__main__":
    main()
