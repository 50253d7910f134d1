#!/usr/bin/env python3
"""Soak test: a long mixed churn against a small release RustKV, checking that memory
stays flat and that the store's counters add up.

    python3 benches/soak.py                    # 10 minutes (the default)
    python3 benches/soak.py --duration 60s     # a quick run
    python3 benches/soak.py --binary PATH      # another build (default target/release/rustkv,
                                               # built with cargo if missing)

The server runs with 2 HTTP workers, capacity 10,000 and max_memory 8MiB over a key space
of 100,000 keys with values of 16 B to 4 KiB; 15-second phases of small values only and
of 30% large ones make it evict for capacity and for memory in turn, and PUTs with TTLs
of 0.2-5 s expire all the time. Several client threads, each on
one keep-alive `http.client` connection, first fill the store to capacity, then run the
churn (by default 50% GET, 35% PUT of which 40% with a TTL, 15% DELETE; keys skewed so
some are hot). A sampler reads the server's RSS (`VmRSS` in /proc/PID/status) and
`/v1/stats` every few seconds.

It fails (exit 1) if:
- RSS drifts: (final RSS - RSS at the end of warm-up) / RSS at the end of warm-up > 10%,
  warm-up being the first 20% of the churn, each RSS the mean of the samples over the
  30 s (one cycle of value-size phases) up to that point;
- the counters do not add up, once the clients have stopped and every TTL has run out:
  keys == inserts - deletes - evictions_capacity - evictions_memory - expirations
  (src/store/state.rs: only `insert` adds an entry; `delete` and `evict` remove one,
  each counted once), hits + misses == the GETs sent, and the clients' own counts of
  statuses agree with the server's (GET 200 = hits, GET 404 = misses, PUT 201 =
  inserts, PUT 200 = updates, DELETE 204 = deletes);
- any request got another status or a transport error.

What it does not measure: throughput or latency (the clients are Python, a few
thousand requests a second), fragmentation under other value-size mixes, or
pipelined clients. The machine is shared, so RSS may move with other load on it only
through timing, not allocation.
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, wait_port  # noqa: E402  (benches/load.py)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CAPACITY = 10_000
MAX_MEMORY = "8MiB"
KEY_SPACE = 100_000
MAX_TTL = 5.0
PHASE = 15.0
STATUSES = {"GET": (200, 404), "PUT": (200, 201), "DELETE": (204, 404)}


def parse_duration(text):
    """`600`, `600s`, `10m` or `1h` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def binary_path(given):
    if given:
        return given
    path = os.path.join(ROOT, "target", "release", "rustkv")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--release", "--bin", "rustkv"], cwd=ROOT, check=True)
    return path


def start_server(binary):
    port = free_port()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'[server]\nport = {port}\nworkers = 2\n'
                 f'[store]\ncapacity = {CAPACITY}\nmax_memory = "{MAX_MEMORY}"\n'
                 f'max_value_bytes = "8KiB"\n[log]\nlevel = "warn"\n')
    config.close()
    process = subprocess.Popen([binary, "--config", config.name])
    wait_port(port, process=process)
    return process, port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_stats(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v1/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def value_of(rng, share):
    """A JSON string value: small, or with `share` odds 500 B to 4 KiB."""
    size = rng.randint(500, 4096) if rng.random() < share else rng.choice((16, 64, 200))
    return json.dumps("v" * size)


def large_share(now):
    """Phases of `PHASE` seconds: small values only (the store fills to capacity and
    evicts for it), then 30% large ones (it fills max_memory first and evicts for
    that), so both eviction causes keep happening."""
    return 0.3 if int(now / PHASE) % 2 else 0.0


class Client(threading.Thread):
    """One keep-alive connection sending requests until `stop` is set, counting
    (method, status) pairs; `fill` keys are PUT first, without TTL."""

    def __init__(self, port, seed, fill, mix, stop):
        super().__init__(daemon=True)
        self.port, self.rng, self.fill, self.mix, self.stop = port, random.Random(seed), fill, mix, stop
        self.counts = {}
        self.errors = []
        self.conn = None

    def send(self, method, path, body=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                headers = {"Content-Type": "application/json"} if body else {}
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException) as error:
                self.conn = None
                if attempt:
                    self.errors.append(f"{method} {path}: {error!r}")
                    return
        key = (method, response.status)
        self.counts[key] = self.counts.get(key, 0) + 1
        if response.status not in STATUSES[method]:
            self.errors.append(f"{method} {path}: {response.status}")
        if response.getheader("Connection", "").lower() == "close":
            self.conn = None

    def key(self):
        # Skewed: the low keys are hot, every key is reachable.
        return f"soak-{int(KEY_SPACE * self.rng.random() ** 2)}"

    def run(self):
        for index in self.fill:
            self.send("PUT", f"/v1/kv/soak-{index}", value_of(self.rng, 0.2))
        get, put, _ = self.mix
        while not self.stop.is_set():
            roll = self.rng.random()
            if roll < get:
                self.send("GET", f"/v1/kv/{self.key()}")
            elif roll < get + put:
                query = ""
                if self.rng.random() < 0.4:
                    query = f"?ttl={self.rng.uniform(0.2, MAX_TTL):.3f}"
                self.send("PUT", f"/v1/kv/{self.key()}{query}", value_of(self.rng, large_share(time.time())))
            else:
                self.send("DELETE", f"/v1/kv/{self.key()}")


def sample(process, port, started, samples):
    stats = server_stats(port)
    entry = (time.time() - started, rss_kib(process.pid), stats["keys"], stats["memory"])
    samples.append(entry)
    print(f"  t={entry[0]:6.0f}s  RSS {entry[1] / 1024:7.1f} MiB  keys {entry[2]:6}  "
          f"memory gauge {entry[3] / 2**20:6.2f} MiB", flush=True)


def window_mean(samples, end):
    """Mean RSS of the samples in the phase cycle (2 * PHASE) that ends at `end`: RSS
    follows the value-size phases, so single samples would compare a trough with a
    crest."""
    chosen = [rss for t, rss, _, _ in samples if end - 2 * PHASE < t <= end]
    return sum(chosen) / len(chosen)


def settled_stats(port):
    """Stats once two reads in a row agree (a tick may run between the fields)."""
    previous = server_stats(port)
    while True:
        time.sleep(0.3)
        current = server_stats(port)
        if current == previous:
            return current
        previous = current


def check_counters(stats, counts):
    """Prints each identity with both sides; answers the list of those that fail."""
    def client(method, status):
        return sum(n for c in counts for (m, s), n in c.items() if (m, s) == (method, status))

    removed = (stats["deletes"] + stats["evictions_capacity"] + stats["evictions_memory"]
               + stats["expirations"])
    gets = sum(n for c in counts for (m, _), n in c.items() if m == "GET")
    checks = [
        ("keys == inserts - deletes - evictions - expirations", stats["keys"],
         stats["inserts"] - removed),
        ("hits + misses == GETs sent", stats["hits"] + stats["misses"], gets),
        ("hits == client GET 200", stats["hits"], client("GET", 200)),
        ("misses == client GET 404", stats["misses"], client("GET", 404)),
        ("inserts == client PUT 201", stats["inserts"], client("PUT", 201)),
        ("updates == client PUT 200", stats["updates"], client("PUT", 200)),
        ("deletes == client DELETE 204", stats["deletes"], client("DELETE", 204)),
    ]
    failed = []
    for name, server, expected in checks:
        ok = server == expected
        print(f"  {name:52} server {server:>10}  expected {expected:>10}  {'ok' if ok else 'MISMATCH'}")
        if not ok:
            failed.append(name)
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="10m", help="churn time: 600, 600s, 10m (default 10m)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--mix", default="50,35,15", help="GET,PUT,DELETE percentages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary")
    args = parser.parse_args()
    duration = parse_duration(args.duration)
    mix = tuple(int(part) / 100 for part in args.mix.split(","))
    process, port = start_server(binary_path(args.binary))
    failures = []
    try:
        stop = threading.Event()
        clients = [Client(port, args.seed * 1000 + n, range(n, CAPACITY, args.clients), mix, stop)
                   for n in range(args.clients)]
        fill_started = time.time()
        for client in clients:
            client.start()
        # Fill runs first in each client; the churn clock starts when the store is full.
        while server_stats(port)["inserts"] < CAPACITY and time.time() - fill_started < 120:
            time.sleep(0.2)
        started = time.time()
        warm_up = 0.2 * duration
        print(f"soak: pid {process.pid}, port {port}, {args.clients} clients, mix {args.mix}, "
              f"{duration:.0f} s (warm-up {warm_up:.0f} s), store filled in "
              f"{started - fill_started:.1f} s", flush=True)
        samples = []
        while time.time() - started < duration:
            time.sleep(min(args.interval, max(0.0, duration - (time.time() - started))))
            sample(process, port, started, samples)
            if any(not client.is_alive() for client in clients):
                failures.append("a client thread died")
                break
        stop.set()
        for client in clients:
            client.join()
        warm_end = next((t for t, *_ in samples if t >= warm_up), samples[-1][0])
        warm_rss = window_mean(samples, warm_end)
        final_rss = window_mean(samples, samples[-1][0])
        peak = max(rss for t, rss, _, _ in samples if t >= warm_end)
        drift = (final_rss - warm_rss) / warm_rss
        requests = sum(sum(c.counts.values()) for c in clients)
        print(f"requests: {requests} ({requests / (time.time() - fill_started):.0f}/s)")
        print(f"RSS (mean over {2 * PHASE:.0f} s) at end of warm-up {warm_rss / 1024:.1f} MiB, "
              f"final {final_rss / 1024:.1f} MiB, peak after warm-up {peak / 1024:.1f} MiB: "
              f"drift {drift:+.1%} (limit +10%)")
        if drift > 0.10:
            failures.append(f"RSS drift {drift:+.1%}")
        # Let every TTL run out and the wheel reclaim it, so the gauges are final.
        time.sleep(MAX_TTL + 1)
        stats = settled_stats(port)
        print("counters: " + ", ".join(f"{name} {stats[name]}" for name in (
            "keys", "inserts", "updates", "deletes", "evictions_capacity", "evictions_memory",
            "expirations", "expired_reads", "hits", "misses", "read_drops")))
        failures += check_counters(stats, [client.counts for client in clients])
        errors = [error for client in clients for error in client.errors]
        if errors:
            failures.append(f"{len(errors)} request errors, first: {errors[:5]}")
    finally:
        process.terminate()
        process.wait()
    if failures:
        print("FAIL: " + "; ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
