#!/usr/bin/env python3
"""Ordered scans over HTTP: the first page of a 1M-key store against pages deep inside it, with wrk.

Run from the project root after `cargo build --release`:

    python3 benches/scan_pages.py                    # 3 rounds x 5 s (about 2 minutes)
    python3 benches/scan_pages.py --rounds 5 --partitions 8 --limit 1000

One release server (one worker, pinned to CPU 0, `--partitions` partitions, default 2,
what `partitions = 0` gives on this 2-vCPU machine; capacity 2,000,000, `max_memory`
2GiB) preloaded with 1,000,000 keys `key0000000`..`key0999999` (byte order is numeric
order) holding the 42-byte JSON value, loaded with `POST /v1/batch` of 1,000 puts. wrk on
CPU 1, one thread, 64 connections, each repeating one fixed URL (`--limit`, default 100):

- first: `GET /v1/kv?limit=100`, the first page;
- at 500k: the page after `key0499999` (`cursor=k1.` + the key's bytes in hex, as a
  `next_cursor` names it);
- at 900k: the page after `key0899999`, 90% deep;
- prefix key09: `GET /v1/kv?prefix=key09&limit=100`, a first page that starts at 900k.

Before timing, each URL is fetched once and checked: `--limit` items, the expected first
and last keys, a `next_cursor`. Each round runs the four, the order reversed every other
round; printed per run: requests/s, keys/s, p99, non-2xx, and the server's CPU use and
CPU time per page (user + system, /proc/PID/stat; it does not depend on the client, which
shares CPU 1 with whatever else runs on the machine). Then medians and each page's ratio
to the first, in requests/s and in CPU per page (the issue's goal: a deep page as fast as
the first, ratio ~1.0).

wrk is installed from apt if missing. Loopback only; bounded by the preload (about a
minute) and rounds x 4 x duration.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import cpu_seconds, ensure_wrk, start_pinned, stats, wrk_counts  # noqa: E402  (benches/load.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALUE = {"name": "Alice", "age": 30, "tags": ["a", "b"]}
KEYS = 1_000_000



def key(index):
    return f"key{index:07}"


def cursor(index):
    return "k1." + key(index).encode().hex()


def start(binary, partitions):
    return start_pinned(binary, f'[store]\npartitions = {partitions}\ncapacity = 2000000\n'
                                'max_memory = "2GiB"\n')


def preload(port, keys, per_batch=1000, connections=4):
    """PUTs key(0)..key(keys - 1) in batches of `per_batch`, over `connections` threads."""
    errors = []

    def worker(first):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for start_index in range(first * per_batch, keys, per_batch * connections):
            ops = [{"op": "put", "key": key(n), "value": VALUE}
                   for n in range(start_index, min(start_index + per_batch, keys))]
            connection.request("POST", "/v1/batch", json.dumps({"ops": ops}),
                               {"Content-Type": "application/json"})
            reply = connection.getresponse()
            body = reply.read()
            if reply.status != 200 or b'"status":4' in body or b'"status":5' in body:
                errors.append(body[:300])
                return
        connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"preload failed: {errors[0]!r}")


def check(url, path, first, limit):
    with urllib.request.urlopen(url + path, timeout=30) as reply:
        page = json.load(reply)
    keys = [item["key"] for item in page["items"]]
    expected = [key(first), key(first + limit - 1)]
    if len(keys) != limit or [keys[0], keys[-1]] != expected or not page["next_cursor"]:
        raise SystemExit(f"{path}: {len(keys)} items, {keys[:1]}..{keys[-1:]}, "
                         f"expected {expected}, next_cursor {page['next_cursor']!r}")


def wrk(url, seconds, connections):
    return wrk_counts(url, seconds, connections)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--limit", type=int, default=100, help="keys per page")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rustkv"))
    args = parser.parse_args()
    ensure_wrk()
    limit = args.limit
    pages = {
        "first": (f"/v1/kv?limit={limit}", 0),
        "at 500k": (f"/v1/kv?limit={limit}&cursor={cursor(KEYS // 2 - 1)}", KEYS // 2),
        "at 900k": (f"/v1/kv?limit={limit}&cursor={cursor(KEYS * 9 // 10 - 1)}", KEYS * 9 // 10),
        "prefix key09": (f"/v1/kv?prefix=key09&limit={limit}", 900_000),
    }
    server, port = start(args.binary, args.partitions)
    url = f"http://127.0.0.1:{port}"
    runs, cpus = {}, {}
    try:
        preload(port, KEYS)
        snapshot = stats(url)
        if snapshot["keys"] != KEYS:
            raise SystemExit(f"preload: {snapshot['keys']} keys, expected {KEYS}")
        for path, first in pages.values():
            check(url, path, first, limit)
        print(f"server: 1 worker on CPU 0, {len(snapshot['partitions'])} partitions, "
              f"{snapshot['keys']:,} keys, memory gauge {snapshot['memory']:,} B; "
              f"wrk on CPU 1, {args.connections} connections, limit {limit}", flush=True)
        order = list(pages)
        for round_index in range(args.rounds):
            for name in order if round_index % 2 == 0 else order[::-1]:
                cpu_before, started = cpu_seconds(server.pid), time.time()
                rate, total, p99, bad = wrk(url + pages[name][0], args.duration,
                                            args.connections)
                cpu = cpu_seconds(server.pid) - cpu_before
                busy = cpu / (time.time() - started)
                runs.setdefault(name, []).append(rate)
                cpus.setdefault(name, []).append(cpu / max(total, 1))
                print(f"round {round_index + 1} {name:12} {rate:9,.0f} req/s "
                      f"{rate * limit:11,.0f} keys/s  p99 {p99:7.2f} ms  non-2xx {bad}  "
                      f"server CPU {busy:4.0%}, {cpu / max(total, 1) * 1e6:.1f} us per page",
                      flush=True)
    finally:
        server.terminate()
        server.wait()
    print("\nmedians")
    first = statistics.median(runs["first"])
    cpu_first = statistics.median(cpus["first"])
    for name in pages:
        rate = statistics.median(runs[name])
        cpu = statistics.median(cpus[name])
        print(f"{name:12} {rate:9,.0f} req/s {rate * limit:11,.0f} keys/s  "
              f"vs first {rate / first:.2f}  server CPU {cpu * 1e6:.1f} us per page, "
              f"first/this {cpu_first / cpu:.2f}")


if __name__ == "__main__":
    main()
