#!/usr/bin/env python3
"""The hit-ratio bench's mixed trace over HTTP: does the eviction policy work end to end?

Run from the project root after `cargo build --release`:

    python3 benches/hit_ratio_http.py                    # 300,000 requests per run
    python3 benches/hit_ratio_http.py --requests 100000 --connections 1 4

Replays one trace as a read-through cache against the real server (native
`GET /v1/kv/{key}`; on a 404, `PUT` the key), once per `store.eviction` ("lru",
"tinylfu") and per connection count, each run on a fresh server with capacity 2,000
(one partition). The hit ratio is the server's own: hits / (hits + misses) from
`/v1/stats`, so the misses include the ones whose report to the partition's actor
was dropped (read_drops, printed) if the read buffer overflowed.

The trace is `benches/hit_ratio.rs`'s "mixed" (its numbers drawn here by Python's
seeded `random`, so not the same sequence): 70% zipf 0.9 over 10,000 keys, 30% the
next key of a loop over 2,500 keys, and a burst of 2,000 one-off keys every 50,000
requests. With several connections, each on its own thread takes the trace's next
request when it is free, so the trace keeps its order (up to the requests in flight)
while hits and miss reports from several readers compete for the read buffer and puts
arrive in between, as from a fleet of app servers. (Giving each connection its own
stride of the trace instead lets the threads drift thousands of requests apart, which
shortens the loop's reuse distance and flatters LRU.)

Everything runs on 127.0.0.1; each server is started from target/release/rustkv.
"""
import argparse
import bisect
import http.client
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, wait_port  # noqa: E402  (benches/load.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPACITY = 2_000
VALUE = b'{"name":"Alice","age":30,"tags":["a","b"]}'


def mixed_trace(requests, seed=7):
    """Key ids of the mixed trace: zipf ids 0..10,000, loop ids from 1,000,000,
    one-off ids from 2**40."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1 / (rank ** 0.9) for rank in range(1, 10_001)))
    total = weights[-1]
    trace, loop_at, one_off = [], 0, 1 << 40
    for i in range(requests):
        if i > 0 and i % 50_000 == 0:
            trace.extend(range(one_off, one_off + 2_000))
            one_off += 2_000
        if rng.random() < 0.7:
            trace.append(bisect.bisect_left(weights, rng.random() * total))
        else:
            trace.append(1_000_000 + loop_at)
            loop_at = (loop_at + 1) % 2_500
    return trace


def start(binary, eviction, directory):
    port = free_port()
    config = os.path.join(directory, f"{eviction}.toml")
    with open(config, "w") as file:
        file.write(f'[server]\nbind = "127.0.0.1"\nport = {port}\nworkers = 2\n'
                   f'[store]\ncapacity = {CAPACITY}\neviction = "{eviction}"\n'
                   f'[log]\nlevel = "warn"\n')
    process = subprocess.Popen([binary, "--config", config],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, process=process)
    return process, port


def replay(port, ids, lock):
    """One connection, read-through: GET, and PUT on a 404, taking the shared
    iterator's next key id each time."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while True:
        with lock:
            key_id = next(ids, None)
        if key_id is None:
            break
        path = f"/v1/kv/key{key_id}"
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status == 404:
            connection.request("PUT", path, body=VALUE,
                               headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status in (200, 201), answer.status
        else:
            assert response.status == 200, response.status
    connection.close()


def run(binary, eviction, connections, trace):
    with tempfile.TemporaryDirectory() as directory:
        process, port = start(binary, eviction, directory)
        try:
            ids, lock = iter(trace), threading.Lock()
            threads = [threading.Thread(target=replay, args=(port, ids, lock))
                       for _ in range(connections)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/v1/stats")
            stats = json.loads(connection.getresponse().read())
        finally:
            process.terminate()
            process.wait()
    hits, misses = stats["hits"], stats["misses"]
    return hits / (hits + misses), stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rustkv"))
    args = parser.parse_args()
    trace = mixed_trace(args.requests)
    print(f"mixed trace over HTTP: {len(trace)} requests, capacity {CAPACITY}")
    print(f"{'connections':>11} {'lru':>8} {'tinylfu':>8} {'gain':>9} {'read_drops':>11}")
    for connections in args.connections:
        lru, lru_stats = run(args.binary, "lru", connections, trace)
        tinylfu, stats = run(args.binary, "tinylfu", connections, trace)
        drops = f"{lru_stats['read_drops']}/{stats['read_drops']}"
        print(f"{connections:>11} {lru:>7.2%} {tinylfu:>7.2%} {(tinylfu - lru) * 100:>+6.2f} pp"
              f" {drops:>11}")


if __name__ == "__main__":
    main()
