#!/usr/bin/env python3
"""Soak: ordered scans racing PUT/DELETE churn, while the server's RSS is sampled; fails on drift.

Run from the project root after `cargo build --release`:

    python3 benches/scan_soak.py                    # 3 minutes
    python3 benches/scan_soak.py --duration 60      # a quick run

Why: crossbeam-skiplist 0.1.3's `range()` leaks one node reference per step, so a node
a scan stepped over is never freed once it is replaced or deleted; the store walks with
`lower_bound` instead. This shows memory stays flat when scans step over nodes that churn
then unlinks.

The release server (2 workers, not pinned, 4 partitions, capacity 1,000,000) is preloaded
with 100,000 keys `key0..key99999` (churned) and 1,000 keys `stable0000..stable0999`
(never written again). For `--duration` seconds:

- churn: wrk, 8 connections, 70% PUT (a 42-byte or 182-byte value) / 30% DELETE over the
  100,000 churned keys (benches/wrk/churn.lua);
- scans: wrk, 2 threads of 1 connection each, following `next_cursor` through the
  whole keyspace and starting over (benches/wrk/scan.lua, limit 100), and one more
  with limit 1000 and `values=false`;
- a checker (this script) paging through everything with limit 1000, pass after pass:
  keys strictly ascending within a pass, and every stable key exactly once per pass
  (the scan guarantee for keys present throughout).

RSS (`VmRSS`) and `/v1/stats` are sampled every 5 s. It fails if RSS drifts more than
10% between the end of the warm-up (the first 20% of the run, while the key count settles
at its churn equilibrium of about 70% of the churned keys) and the end, each the mean of
the samples over a 30 s window (20% of the run when shorter), or if a checker pass breaks the
order or exactly-once rule. It also prints what a per-step leak would have cost: every
node unlinked during the run (updates + deletes) at the store's bytes per entry.

wrk is installed from apt if missing. Loopback only; bounded by `--duration` plus the
preload (a few seconds).
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import ensure_wrk, free_port, preload, stats, wait_port  # noqa: E402  (benches/load.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benches")
CHURNED = 100_000
STABLE = 1_000
SAMPLE_EVERY = 5.0
DRIFT_LIMIT = 0.10


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start(binary):
    port = free_port()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'[server]\nport = {port}\nworkers = 2\n[store]\npartitions = 4\n'
                 f'capacity = 1000000\nmax_memory = "1GiB"\n[log]\nlevel = "warn"\n')
    config.close()
    server = subprocess.Popen([binary, "--config", config.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, process=server)
    os.unlink(config.name)
    return server, port


def put_stable(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for first in range(0, STABLE, 500):
        ops = [{"op": "put", "key": f"stable{n:04}", "value": n}
               for n in range(first, min(first + 500, STABLE))]
        connection.request("POST", "/v1/batch", json.dumps({"ops": ops}),
                           {"Content-Type": "application/json"})
        reply = connection.getresponse()
        body = reply.read()
        if reply.status != 200 or b'"status":4' in body:
            raise SystemExit(f"loading stable keys: {body[:300]!r}")
    connection.close()


def wrk(url, script, env, seconds, threads, connections):
    environment = dict(os.environ, **env)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
               "-s", os.path.join(HERE, "wrk", f"{script}.lua"), url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environment)


def wrk_result(process):
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"wrk failed: {err[:300]}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total, int(bad.group(1)) if bad else 0


class Checker(threading.Thread):
    """Full scans, one after another, checking order and the stable keys."""

    def __init__(self, port, deadline):
        super().__init__(daemon=True)
        self.port, self.deadline = port, deadline
        self.passes = self.pages = self.items = 0
        self.failures = []

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while time.time() < self.deadline and not self.failures:
            cursor, last, stable = None, None, {}
            while time.time() < self.deadline:
                path = "/v1/kv?limit=1000&values=false"
                if cursor:
                    path += "&cursor=" + urllib.parse.quote(cursor)
                connection.request("GET", path)
                reply = connection.getresponse()
                page = json.loads(reply.read())
                self.pages += 1
                if reply.status != 200:
                    self.failures.append(f"status {reply.status}: {page}")
                    return
                for item in page["items"]:
                    key = item["key"]
                    if last is not None and key <= last:
                        self.failures.append(f"order: {key!r} after {last!r}")
                    last = key
                    if key.startswith("stable"):
                        stable[key] = stable.get(key, 0) + 1
                self.items += len(page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            else:
                return  # the deadline cut this pass short: judge complete passes only
            wrong = [k for k, n in stable.items() if n != 1]
            if len(stable) != STABLE or wrong:
                self.failures.append(f"pass {self.passes + 1}: {len(stable)} stable keys "
                                     f"seen, {len(wrong)} more than once")
            self.passes += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=180, help="seconds of load")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rustkv"))
    args = parser.parse_args()
    ensure_wrk()
    server, port = start(args.binary)
    url = f"http://127.0.0.1:{port}"
    samples = []  # (seconds since start, RSS MiB, keys, memory gauge)
    try:
        preload(port, CHURNED)
        put_stable(port)
        first = stats(url)
        print(f"server pid {server.pid}: 2 workers, {len(first['partitions'])} partitions, "
              f"{first['keys']:,} keys, RSS {rss_mib(server.pid):.1f} MiB; "
              f"load for {args.duration} s", flush=True)
        began = time.time()
        loads = {
            "churn": wrk(url, "churn", {"KEYS": str(CHURNED)}, args.duration, 1, 8),
            "scan limit 100": wrk(url, "scan", {"LIMIT": "100"}, args.duration, 2, 2),
            "scan limit 1000 keys only": wrk(url, "scan", {"LIMIT": "1000",
                                                           "QUERY": "&values=false"},
                                             args.duration, 1, 1),
        }
        checker = Checker(port, began + args.duration)
        checker.start()
        while time.time() - began < args.duration:
            time.sleep(SAMPLE_EVERY - (time.time() - began) % SAMPLE_EVERY)
            snapshot = stats(url)
            sample = (time.time() - began, rss_mib(server.pid), snapshot["keys"],
                      snapshot["memory"])
            samples.append(sample)
            print(f"  {sample[0]:6.0f} s  RSS {sample[1]:7.1f} MiB  keys {sample[2]:7,}  "
                  f"memory gauge {sample[3] / 2**20:6.1f} MiB  checker passes "
                  f"{checker.passes}", flush=True)
        results = {name: wrk_result(process) for name, process in loads.items()}
        checker.join(timeout=60)
        last = stats(url)
    finally:
        server.terminate()
        server.wait()
    window = min(30.0, args.duration * 0.2)
    warm = args.duration * 0.2
    early = [s for s in samples if warm < s[0] <= warm + window + 0.5]
    late = [s for s in samples if s[0] > args.duration - window - 0.5]
    rss_early = statistics.mean(s[1] for s in early)
    rss_late = statistics.mean(s[1] for s in late)
    drift = rss_late / rss_early - 1
    after_warm = [s[1] for s in samples if s[0] > warm]
    unlinked = (last["updates"] - first["updates"]) + (last["deletes"] - first["deletes"])
    per_entry = last["memory"] / max(last["keys"], 1)
    seconds = args.duration
    print("\nrequests (non-2xx):")
    for name, (total, bad) in results.items():
        print(f"  {name:26} {total:11,} ({total / seconds:8,.0f}/s)  non-2xx {bad}")
    scan_pages = results["scan limit 100"][0] + results["scan limit 1000 keys only"][0]
    print(f"  checker                    {checker.pages:11,} pages, {checker.items:,} keys, "
          f"{checker.passes} full passes")
    print(f"scan pages {scan_pages:,}; nodes unlinked by churn (updates + deletes) "
          f"{unlinked:,}; a per-step leak would keep up to "
          f"{unlinked * per_entry / 2**20:,.0f} MiB ({per_entry:.0f} B per entry)")
    print(f"RSS mean {rss_early:.1f} MiB at the end of warm-up ({len(early)} samples), "
          f"{rss_late:.1f} MiB at the end ({len(late)} samples): drift {drift:+.1%} "
          f"(limit +{DRIFT_LIMIT:.0%}); range after warm-up "
          f"{min(after_warm):.1f}-{max(after_warm):.1f} MiB")
    print(f"keys at the end {last['keys']:,}, memory gauge {last['memory'] / 2**20:.1f} MiB")
    failures = list(checker.failures)
    if drift > DRIFT_LIMIT:
        failures.append(f"RSS drift {drift:+.1%}")
    if checker.passes == 0:
        failures.append("the checker completed no pass")
    print("FAIL: " + "; ".join(failures) if failures else "PASS")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
