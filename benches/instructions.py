#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: the same release build with
`[metrics] requests` on and off (or persistence off and on, or eviction lru and
tinylfu, or no replica and one replica attached), so the cost of a feature is a repeatable count instead of a noisy
throughput figure.

Run from the project root:  python3 benches/instructions.py [--requests 3000]
                            python3 benches/instructions.py --eviction [--capacity 50]
                            python3 benches/instructions.py --replication --kinds native-put
                            python3 benches/instructions.py --kinds batch-get,batch-put \
                                --keys 10000 --requests 200 --only on

For each configuration and each request kind it runs the server (one HTTP worker,
which also runs the partition actors) under `valgrind --tool=callgrind` twice, serving
N and 2N requests on one keep-alive connection, counts the worker thread's
instructions, and reports (I(2N) - I(N)) / N: the instructions one more request
costs, start-up and shutdown cancelled out. The tick is set to its 10 s maximum so timers
add (almost) nothing that depends on how long a run takes under valgrind.

The batch kinds (`POST /v1/batch` with `--batch` get or put ops on distinct keys,
spread over the `--keys` preloaded keys as batch_vs_single.py's random keys are) also
report instructions per key: per request divided by the batch size.

With --replication a second rustkv (not under valgrind) follows the measured one and
streams from it before the requests start. One request at a time is replication's
worst case: every change is its own wake-up of the stream and its own chunk to the
replica, where under load one chunk carries many (`benches/replication.py`).

Instruction counts are not time: they miss cache misses and atomic contention, and the
kernel's work (the replica's socket). Read them beside the wrk A/B of
`python3 benches/load.py metrics`.
"""
import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, wait_port  # noqa: E402  (benches/load.py)

BINARY = os.path.abspath("target/release/rustkv")
KINDS = {
    "native-get": ("GET", "/v1/kv/key{n}", None),
    "native-put": ("PUT", "/v1/kv/key{n}?ttl=3600", '{"name":"Alice","age":30}'),
    "compat-get": ("GET", "/kv/key{n}", None),
    "compat-put": ("PUT", "/kv/insert", '{"key":"key{n}","value":{"name":"Alice","age":30}}'),
    # As benches/versus_redis.py's PUT: no TTL (as SET has none), the 42-byte value.
    "native-put-42": ("PUT", "/v1/kv/key{n}", '{"name":"Alice","age":30,"tags":["a","b"]}'),
}
# Batches: a body per request, built by `batch_body`.
BATCH_KINDS = {"batch-get": "get", "batch-put": "put"}
KEYS = 100
# A stride coprime to any --keys of the form 2^a 5^b (100, 10000): consecutive keys of a
# batch land far apart, as random ones would, and a batch never names a key twice.
STRIDE = 7919
VALUE = '{"name":"Alice","age":30,"tags":["a","b"]}'


def log(message):
    print(message, file=sys.stderr, flush=True)


def send(conn, method, path, body, missing_ok=False):
    headers = {"Content-Type": "application/json"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status >= 300 and not (missing_ok and response.status == 404):
        raise SystemExit(f"{method} {path} answered {response.status}")


def batch_body(op, n, size, keys):
    """The `n`-th batch: `size` ops of kind `op` on distinct keys of `keys`."""
    def one(i):
        key = f"key{(n * size + i) * STRIDE % keys}"
        if op == "put":
            return f'{{"op":"put","key":"{key}","value":{VALUE},"ttl":3600}}'
        return f'{{"op":"get","key":"{key}"}}'
    return '{"ops":[' + ",".join(one(i) for i in range(size)) + "]}"


def preload(conn, keys):
    """Puts key0..key{keys-1}: one by one for the default 100 keys (as before batches
    existed), in batches of 100 for more."""
    if keys <= KEYS:
        for n in range(keys):
            send(conn, "PUT", f"/v1/kv/key{n}", '{"name":"Alice","age":30}')
        return
    for start in range(0, keys, 100):
        ops = ",".join(f'{{"op":"put","key":"key{k}","value":{VALUE}}}'
                       for k in range(start, min(start + 100, keys)))
        send(conn, "POST", "/v1/batch", '{"ops":[' + ops + "]}")


def start_replica(primary_port, tmp):
    """A rustkv following the one on `primary_port`, once it streams from it."""
    port = free_port()
    config = os.path.join(tmp, "replica.toml")
    with open(config, "w") as file:
        file.write(f'[server]\nport = {port}\nworkers = 1\n\n[replication]\n'
                   f'primary = "http://127.0.0.1:{primary_port}"\n')
    process = subprocess.Popen([BINARY, "--config", config], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
    wait_port(port, timeout=60, process=process)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(600):
        conn.request("GET", "/v1/replication")
        if json.loads(conn.getresponse().read()).get("link") == "streaming":
            return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the replica did not start streaming")


def thread_instructions(paths):
    """The instruction total of each callgrind output file in `paths` (one per thread
    with --separate-threads; a file without a total, such as its empty base file, is
    skipped)."""
    counts = []
    for path in paths:
        with open(path) as file:
            found = re.search(r"^(?:summary|totals): (\d+)", file.read(), re.MULTILINE)
        if found:
            counts.append(int(found.group(1)))
    return counts


def count(kind, metrics_on, requests, tmp, persistence=False, eviction="lru", capacity=None,
          keys=KEYS, batch=100, replica=False):
    """Instructions the HTTP worker thread runs to serve `requests` requests of `kind`,
    and those of all threads (with persistence on, the log writer's too). With a
    `capacity` below KEYS, PUTs evict and GETs miss."""
    port = free_port()
    config = os.path.join(tmp, "rustkv.toml")
    data = os.path.join(tmp, "data")
    shutil.rmtree(data, ignore_errors=True)
    with open(config, "w") as file:
        file.write(f'[server]\nport = {port}\nworkers = 1\n\n[store]\ntick = "10s"\n'
                   f'eviction = "{eviction}"\n'
                   + (f"capacity = {capacity}\n" if capacity else "")
                   + f"\n[metrics]\nrequests = {str(metrics_on).lower()}\n")
        if persistence:
            file.write(f'[persistence]\nmode = "aof"\nfsync = "everysec"\ndir = "{data}"\n')
    out = os.path.join(tmp, "callgrind.out")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}", BINARY, "--config", config],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
    follower = None
    try:
        wait_port(port, timeout=60, process=process)
        if replica:
            follower = start_replica(port, tmp)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        preload(conn, keys)  # the keys the GETs read
        for n in range(requests):
            if kind in BATCH_KINDS:
                send(conn, "POST", "/v1/batch", batch_body(BATCH_KINDS[kind], n, batch, keys))
                continue
            method, path, body = KINDS[kind]
            key = n % keys
            send(conn, method, path.format(n=key), body and body.replace("{n}", str(key)),
                 missing_ok=capacity is not None)
        conn.close()
    finally:
        if follower:
            follower.kill()
            follower.wait()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    paths = glob.glob(out + "-*")
    per_thread = thread_instructions(paths)
    for path in paths:
        os.remove(path)
    # The HTTP worker (which also runs the partition actors) does nearly all the work;
    # the other threads (accept loop, signals) only add run-length noise, but the log
    # writer's work is counted in the total.
    return max(per_thread), sum(per_thread)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"of {', '.join([*KINDS, *BATCH_KINDS])}")
    parser.add_argument("--keys", type=int, default=KEYS,
                        help=f"keys preloaded and cycled through (default {KEYS})")
    parser.add_argument("--batch", type=int, default=100, help="ops per batch (default 100)")
    parser.add_argument("--only", choices=["off", "on"],
                        help="run only this side of the A/B (e.g. `on`, the default config)")
    parser.add_argument("--binary", help="measure this rustkv binary instead of building one "
                        "(e.g. an older commit's, for a before/after)")
    parser.add_argument("--persistence", action="store_true",
                        help="compare persistence off and aof/everysec (metrics on) instead")
    parser.add_argument("--eviction", action="store_true",
                        help="compare store.eviction lru and tinylfu (metrics on) instead")
    parser.add_argument("--replication", action="store_true",
                        help="compare no replica and one replica attached (metrics on) instead")
    parser.add_argument("--capacity", type=int,
                        help=f"store.capacity (below {KEYS}, every PUT evicts and GETs miss)")
    args = parser.parse_args()
    global BINARY
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    if args.binary:
        BINARY = os.path.abspath(args.binary)
    else:
        log("building rustkv (release) ...")
        subprocess.run(["cargo", "build", "--release", "--quiet"], check=True)
    n = args.requests
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            per_request = {}
            axis = ("persistence" if args.persistence else
                    "tinylfu" if args.eviction else
                    "a replica" if args.replication else "metrics")
            sides = (False, True) if args.only is None else (args.only == "on",)
            for on in sides:
                settings = dict(metrics_on=on, capacity=args.capacity, keys=args.keys,
                                batch=args.batch)
                if args.persistence:
                    settings.update(metrics_on=True, persistence=on)
                if args.eviction:
                    settings.update(metrics_on=True, eviction="tinylfu" if on else "lru")
                if args.replication:
                    settings.update(metrics_on=True, replica=on)
                low = count(kind, requests=n, tmp=tmp, **settings)
                high = count(kind, requests=2 * n, tmp=tmp, **settings)
                per_request[on] = [(h - l) / n for h, l in zip(high, low)]
                log(f"{kind} {axis} {'on' if on else 'off'}: {per_request[on][0]:,.0f} "
                    f"instructions per request on the worker, {per_request[on][1]:,.0f} on all threads")
                if kind in BATCH_KINDS:
                    print(f"{kind} {axis} {'on' if on else 'off'}: {per_request[on][0] / args.batch:,.0f} "
                          f"instructions per key on the worker, {per_request[on][1] / args.batch:,.0f} "
                          f"on all threads", flush=True)
            if args.only is not None:
                results[kind] = {args.only: round(per_request[args.only == "on"][0])}
                continue
            (off, off_all), (on, on_all) = per_request[False], per_request[True]
            results[kind] = {"off": round(off), "on": round(on), "ratio": round(on / off, 4),
                             "all_off": round(off_all), "all_on": round(on_all)}
            print(f"{kind}: {off:,.0f} -> {on:,.0f} instructions per request on the worker with "
                  f"{axis} (on / off = {on / off:.4f}, +{on - off:,.0f}); all threads "
                  f"{off_all:,.0f} -> {on_all:,.0f} ({on_all / off_all:.4f})", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
