#!/usr/bin/env python3
"""100-key batches (POST /v1/batch) against single-key GETs and PUTs, in keys per second, with wrk.

Run from the project root after `cargo build --release`:

    python3 benches/batch_vs_single.py                      # 3 rounds x 5 s (about 2 minutes)
    python3 benches/batch_vs_single.py --rounds 5 --duration 8 --size 100 --partitions 2

One release server (one worker, pinned to CPU 0; `--partitions`, default 2, what
`partitions = 0` gives on this 2-vCPU machine) preloaded with 10,000 keys; wrk on CPU 1,
one thread, 64 connections (`--connections`), one request in flight per connection. Four
loads over the same keys and connections:

- single GET: `GET /v1/kv/{key}`, a random key per request (benches/wrk/get.lua);
- batch GET: `POST /v1/batch` with `--size` get ops on distinct random keys
  (benches/wrk/batch.lua, OP=get);
- single PUT: `PUT /v1/kv/{key}?ttl=3600` with the 42-byte JSON value (benches/wrk/put.lua);
- batch PUT: `--size` put ops with the same value and `"ttl":3600` (batch.lua, OP=put).

Each round runs the four, the order reversed every other round. Printed per run:
requests/s, keys/s (requests/s x ops per request), p99, non-2xx, and the keys the server
counted (hits + misses for gets, inserts + updates for puts, from /v1/stats) per request
sent, which must be the batch size (1 for single requests): wrk's own count is checked
against the server's. Then the medians and the batch/single ratio of keys/s, next to the
issue's goals (GET >= 10x, PUT >= 5x), and the ratio within each round (its two runs are
next to each other in time, so it is the steadier figure on a noisy machine). The server's
count runs slightly above the batch size: it also counts the requests wrk cut off at the
end of a run.

Also printed: the server's CPU use during each run (user + system time from
/proc/PID/stat) and its CPU time per key. When wrk shares CPU 1 with other work, or the
server idles between requests, requests/s says more about the client than the server;
CPU per key does not depend on the client, and single/batch CPU per key is the ratio of
keys/s the server would reach at 100% CPU.

wrk is installed from apt if missing. Loopback only, bounded by rounds x 4 x duration.
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import cpu_seconds, ensure_wrk, preload, start_pinned, stats, wrk_counts  # noqa: E402  (benches/load.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benches")
KEYS = 10_000
GOALS = {"get": 10.0, "put": 5.0}


def start(binary, partitions):
    return start_pinned(binary, f"[store]\npartitions = {partitions}\n")



def counted(snapshot, kind):
    if kind == "get":
        return snapshot["hits"] + snapshot["misses"]
    return snapshot["inserts"] + snapshot["updates"]


def wrk(url, script, env, seconds, connections):
    environment = dict(os.environ, KEYS=str(KEYS), PATH_FMT="/v1/kv/%s", MODE="native", **env)
    return wrk_counts(url, seconds, connections, script, environment)


def sanity(url, size):
    """One batch of each kind by hand: every op answered, gets found, puts 200."""
    for op in ("get", "put"):
        ops = [{"op": op, "key": f"key{n}"} for n in range(size)]
        if op == "put":
            for entry in ops:
                entry.update(value={"name": "Alice", "age": 30, "tags": ["a", "b"]}, ttl=3600)
        request = urllib.request.Request(f"{url}/v1/batch", data=json.dumps({"ops": ops}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            results = json.load(reply)["results"]
        statuses = {result["status"] for result in results}
        if len(results) != size or statuses != {200}:
            raise SystemExit(f"batch {op}: {len(results)} results, statuses {statuses}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--size", type=int, default=100, help="ops per batch")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rustkv"))
    args = parser.parse_args()
    ensure_wrk()
    server, port = start(args.binary, args.partitions)
    url = f"http://127.0.0.1:{port}"
    loads = {
        ("get", "single"): ("get", {}),
        ("get", "batch"): ("batch", {"OP": "get", "SIZE": str(args.size)}),
        ("put", "single"): ("put", {"TTL": "3600"}),
        ("put", "batch"): ("batch", {"OP": "put", "SIZE": str(args.size), "TTL": "3600"}),
    }
    runs, cpu_per_key = {}, {}
    try:
        preload(port, KEYS)
        sanity(url, args.size)
        print(f"server: 1 worker on CPU 0, {len(stats(url)['partitions'])} partitions, "
              f"{stats(url)['keys']} keys; wrk on CPU 1, {args.connections} connections, "
              f"batches of {args.size}", flush=True)
        order = list(loads)
        for round_index in range(args.rounds):
            for name in order if round_index % 2 == 0 else order[::-1]:
                kind, shape = name
                script, env = loads[name]
                before = counted(stats(url), kind)
                cpu_before, started = cpu_seconds(server.pid), time.time()
                rate, total, p99, bad = wrk(url, script, env, args.duration, args.connections)
                cpu = cpu_seconds(server.pid) - cpu_before
                busy = cpu / (time.time() - started)
                keys = counted(stats(url), kind) - before
                ops = args.size if shape == "batch" else 1
                runs.setdefault(name, []).append(rate * ops)
                cpu_per_key.setdefault(name, []).append(cpu / max(keys, 1) * 1e6)
                print(f"round {round_index + 1} {kind} {shape:6} {rate:9,.0f} req/s "
                      f"{rate * ops:11,.0f} keys/s  p99 {p99:7.2f} ms  non-2xx {bad}  "
                      f"keys counted by the server per request {keys / max(total, 1):.2f}  "
                      f"server CPU {busy:4.0%}, {cpu / max(keys, 1) * 1e6:.2f} us per key",
                      flush=True)
    finally:
        server.terminate()
        server.wait()
    print("\nmedians (keys/s)")
    for kind in ("get", "put"):
        single = statistics.median(runs[(kind, "single")])
        batch = statistics.median(runs[(kind, "batch")])
        ratio = batch / single
        per_round = [b / s for b, s in zip(runs[(kind, "batch")], runs[(kind, "single")])]
        verdict = "met" if ratio >= GOALS[kind] else "NOT met"
        print(f"{kind}  single {single:11,.0f}  batch of {args.size} {batch:11,.0f}  "
              f"batch/single {ratio:.2f}  (goal >= {GOALS[kind]:.0f}: {verdict}); per round "
              f"{', '.join(f'{r:.2f}' for r in per_round)}, median "
              f"{statistics.median(per_round):.2f}")
        cpu_single = statistics.median(cpu_per_key[(kind, "single")])
        cpu_batch = statistics.median(cpu_per_key[(kind, "batch")])
        print(f"{kind}  server CPU per key: single {cpu_single:.2f} us, batch {cpu_batch:.2f} us, "
              f"single/batch {cpu_single / cpu_batch:.2f} (keys per CPU-second, batch/single)")


if __name__ == "__main__":
    main()
