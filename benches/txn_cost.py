#!/usr/bin/env python3
"""Two-key cross-partition transactions (POST /v1/txn): throughput, and cost to plain GET/PUT.

Run from the project root after `cargo build --release`:

    python3 benches/txn_cost.py                          # 3 rounds x 5 s (about 3 minutes)
    python3 benches/txn_cost.py --rounds 5 --background-rate 2000

One release server (one worker, pinned to CPU 0, `[store] partitions = 8`) preloaded with
10,000 keys `key0..key9999`, plus 512 keys `acct<i>` whose partitions are found from the
per-partition `keys` counts of /v1/stats (each is PUT alone and the partition whose count
rose holds it); they are paired so that the two keys of a pair live on different
partitions. A transaction compares both keys of a pair (`"exists": true`) and puts both
(benches/wrk/txn.lua); its control is the same two puts as a `POST /v1/batch` (the same
writes, neither atomic nor locking). Load generators run on CPU 1.

Per round (the order of the runs reversed every other round):

1. Saturating throughput, wrk 64 connections: txn on one hot pair (every transaction
   waits for the one before it), txn on random pairs of the 256, and the 2-put batch on
   random pairs.
2. Plain native GET (random keys of the 10,000, benches/wrk/get.lua) and PUT (put.lua,
   `?ttl=3600`), wrk 64 connections, with nothing else, with a background of
   `--background-rate` transactions per second (oha `-q`, 8 connections, random pairs,
   bodies from a file line by line), and with the same rate of 2-put batches.

Printed per run: requests/s, p99, non-2xx, and for the write loads the updates the server
counted per request (must be 2: both puts applied). Then medians; for GET and PUT the
ratio with background / without, next to what the background's own CPU share predicts
(1 - rate / saturating throughput of the same request, an estimate that assumes the costs
simply add up): a measured ratio well below the prediction is cost beyond the
transactions' own work (waiting on held partitions, intents).

The server's CPU time (user + system, /proc/PID/stat) is sampled around every run: its
CPU use, CPU per transaction, and CPU per plain request with the background's share taken
out (the background's requests times their CPU cost from the saturating runs). When wrk
is starved of CPU 1 by other work on the machine the server idles and requests/s
measures the client; the ratio of CPU per plain request alone / with the background (1.0:
no cost beyond the background's own work) does not depend on the client.

wrk is installed from apt if missing; oha with `cargo install oha --locked`. Loopback only,
bounded by rounds x 9 x duration.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import (  # noqa: E402  (benches/load.py)
    cpu_seconds, ensure_wrk, oha_binary, preload, start_pinned, stats, wrk_counts)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benches")
KEYS = 10_000
ACCOUNTS = 512
VALUE = {"name": "Alice", "age": 30, "tags": ["a", "b"]}



def start(binary, partitions):
    return start_pinned(binary, f"[store]\npartitions = {partitions}\n")



def call(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def partition_keys(url, count):
    """Keys acct0..acct{count-1}, each PUT alone; returns {key: partition}."""
    where = {}
    before = [p["keys"] for p in stats(url)["partitions"]]
    for index in range(count):
        key = f"acct{index}"
        call(url, "PUT", f"/v1/kv/{key}", VALUE)
        after = [p["keys"] for p in stats(url)["partitions"]]
        rose = [n for n, (old, new) in enumerate(zip(before, after)) if new == old + 1]
        if len(rose) != 1 or sum(after) != sum(before) + 1:
            raise SystemExit(f"cannot tell where {key} landed: {before} -> {after}")
        where[key] = rose[0]
        before = after
    return where


def pair_up(where):
    """Pairs of keys on different partitions: each key once, partitions differing."""
    keys = sorted(where, key=lambda key: (where[key], key))
    half = len(keys) // 2
    # Sorted by partition, the two halves share one partition at most: rotate the
    # second half against the first until no pair has both keys on one partition.
    for shift in range(half):
        pairs = [(keys[n], keys[half + (n + shift) % half]) for n in range(half)]
        if all(where[a] != where[b] for a, b in pairs):
            return pairs
    raise SystemExit("cannot pair keys across partitions")


def wrk(url, script, env, seconds, connections=64):
    environment = dict(os.environ, KEYS=str(KEYS), PATH_FMT="/v1/kv/%s", MODE="native", **env)
    return wrk_counts(url, seconds, connections, script, environment)


def background(oha, url, route, bodies, rate, seconds):
    """Starts oha at `rate` requests/s for a little longer than a foreground run."""
    command = ["taskset", "-c", "1", oha, "-z", f"{seconds + 1}s", "-c", "8", "-q", str(rate),
               "--no-tui", "--output-format", "json", "-m", "POST",
               "-H", "Content-Type: application/json", "-Z", bodies, url + route]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process):
    out, err = process.communicate(timeout=120)
    if process.returncode != 0:
        raise SystemExit(f"oha failed: {err.decode()[:300]}")
    report = json.loads(out)
    codes = report.get("statusCodeDistribution", {})
    return report["summary"]["requestsPerSec"], codes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--background-rate", type=int, default=1000,
                        help="transactions (or batches) per second alongside plain GET/PUT")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rustkv"))
    args = parser.parse_args()
    ensure_wrk()
    oha = oha_binary()
    server, port = start(args.binary, args.partitions)
    url = f"http://127.0.0.1:{port}"
    runs, p99s, cpus, plain_cpu = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as directory:
        try:
            preload(port, KEYS)
            where = partition_keys(url, ACCOUNTS)
            pairs = pair_up(where)
            hot = pairs[0]
            spread = ",".join(f"{a}:{b}" for a, b in pairs)
            bodies = {}
            for mode in ("txn", "batch"):
                path = os.path.join(directory, f"{mode}.jsonl")
                with open(path, "w") as file:
                    for a, b in pairs:
                        writes = [{"op": "put", "key": k, "value": VALUE} for k in (a, b)]
                        if mode == "txn":
                            body = {"compare": [{"key": a, "exists": True},
                                                {"key": b, "exists": True}],
                                    "success": writes, "failure": []}
                        else:
                            body = {"ops": writes}
                        file.write(json.dumps(body, separators=(",", ":")) + "\n")
                bodies[mode] = path
            # One transaction by hand: both compares hold, both puts answered 200.
            answer = call(url, "POST", "/v1/txn", json.loads(open(bodies["txn"]).readline()))
            if not answer["succeeded"] or [r["status"] for r in answer["results"]] != [200, 200]:
                raise SystemExit(f"sanity transaction: {answer}")
            used = sorted({where[k] for pair in pairs for k in pair})
            print(f"server: 1 worker on CPU 0, {len(stats(url)['partitions'])} partitions; "
                  f"{len(pairs)} cross-partition pairs over partitions {used}, hot pair {hot} "
                  f"(partitions {where[hot[0]]} and {where[hot[1]]}); load on CPU 1", flush=True)
            saturating = [
                ("txn hot pair", "txn", {"MODE": "txn", "PAIRS": f"{hot[0]}:{hot[1]}"}),
                ("txn random pairs", "txn", {"MODE": "txn", "PAIRS": spread}),
                ("batch random pairs", "txn", {"MODE": "batch", "PAIRS": spread}),
            ]
            plain = [(kind, load) for kind in ("get", "put") for load in (None, "txn", "batch")]
            for round_index in range(args.rounds):
                reverse = round_index % 2 == 1
                for name, script, env in saturating[::-1] if reverse else saturating:
                    before = stats(url)["updates"]
                    cpu_before, started = cpu_seconds(server.pid), time.time()
                    rate, total, p99, bad = wrk(url, script, env, args.duration)
                    cpu = cpu_seconds(server.pid) - cpu_before
                    busy = cpu / (time.time() - started)
                    per_request = (stats(url)["updates"] - before) / max(total, 1)
                    runs.setdefault(name, []).append(rate)
                    cpus.setdefault(name, []).append(cpu / max(total, 1))
                    print(f"round {round_index + 1} {name:22} {rate:9,.0f} req/s  p99 "
                          f"{p99:7.2f} ms  non-2xx {bad}  updates per request "
                          f"{per_request:.2f}  server CPU {busy:4.0%}, "
                          f"{cpu / max(total, 1) * 1e6:.1f} us per request", flush=True)
                for kind, load in plain[::-1] if reverse else plain:
                    extra = None
                    if load:
                        route = "/v1/txn" if load == "txn" else "/v1/batch"
                        extra = background(oha, url, route, bodies[load],
                                           args.background_rate, args.duration)
                    script = "get" if kind == "get" else "put"
                    cpu_before, started = cpu_seconds(server.pid), time.time()
                    rate, total, p99, bad = wrk(url, script, {"TTL": "3600"}, args.duration)
                    elapsed = time.time() - started
                    cpu = cpu_seconds(server.pid) - cpu_before
                    note = f"  server CPU {cpu / elapsed:4.0%}"
                    if extra:
                        achieved, codes = finish(extra)
                        note = f"  background {load} {achieved:,.0f}/s codes {codes}"
                    name = f"{kind} with {load or 'nothing'}"
                    runs.setdefault(name, []).append(rate)
                    plain_cpu.setdefault(name, []).append(
                        (cpu, total, args.background_rate * elapsed if load else 0))
                    p99s.setdefault(name, []).append(p99)
                    print(f"round {round_index + 1} {name:22} {rate:9,.0f} req/s  p99 "
                          f"{p99:7.2f} ms  non-2xx {bad}{note}", flush=True)
        finally:
            server.terminate()
            server.wait()
    median = {name: statistics.median(rates) for name, rates in runs.items()}
    print("\nmedians")
    cpu_each = {name: statistics.median(values) for name, values in cpus.items()}
    for name, _, _ in saturating:
        print(f"{name:22} {median[name]:9,.0f} req/s ({2 * median[name]:,.0f} keys written/s)"
              f"  server CPU {cpu_each[name] * 1e6:.1f} us per request")

    def cpu_per_plain(name, load):
        """Server CPU per plain request, the background's share taken out at its own
        CPU cost per request (from the saturating runs)."""
        own = cpu_each[f"{load} random pairs"] if load else 0.0
        values = [(cpu - extra * own) / max(total, 1) for cpu, total, extra in plain_cpu[name]]
        return statistics.median(values)
    rate = args.background_rate
    for kind in ("get", "put"):
        alone = median[f"{kind} with nothing"]
        p99_alone = statistics.median(p99s[f"{kind} with nothing"])
        cpu_alone = cpu_per_plain(f"{kind} with nothing", None)
        print(f"{kind} alone {alone:9,.0f} req/s  p99 {p99_alone:.2f} ms  server CPU "
              f"{cpu_alone * 1e6:.1f} us per request")
        for load, saturated in (("txn", "txn random pairs"), ("batch", "batch random pairs")):
            name = f"{kind} with {load}"
            expected = max(0.0, 1 - rate / median[saturated])
            cpu_with = cpu_per_plain(name, load)
            print(f"{kind} with {rate}/s {load:5} {median[name]:9,.0f} req/s  p99 "
                  f"{statistics.median(p99s[name]):.2f} ms  with/without "
                  f"{median[name] / alone:.2f}  (CPU-share estimate {expected:.2f}); server CPU "
                  f"per {kind} {cpu_with * 1e6:.1f} us, alone/with {cpu_alone / cpu_with:.2f}")


if __name__ == "__main__":
    main()
