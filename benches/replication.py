#!/usr/bin/env python3
"""Replication's cost and speed, with the release binary and wrk on loopback.

    python3 benches/replication.py [--rounds 6] [--seconds 5] [--copy-keys 1000000]

1. CPU per PUT on a primary with one replica attached, against one with none: two
   primaries pinned to CPU 0 (one HTTP worker each), one of them followed by a replica
   pinned to CPU 1 with wrk. Rounds alternate between them (A B, B A, ...); each runs
   wrk's native PUTs (64 connections, random keys of 10,000) and reads the primary's
   utime+stime from /proc before and after: server CPU per request. Prints the medians
   and their ratio (the issue's bound: <= 1.10).
2. Replica lag under that sustained load: the replica's /v1/replication sampled every
   100 ms during the "with" rounds (records behind, seconds since caught up), and the
   time it takes to catch up once the load stops.
3. Full copy of N keys: a primary filled with N keys (wrk, sequential keys), then a new
   replica started and timed until it streams at the primary's position.
4. With --instructions, instead: the primary's own work per PUT under the same wrk load
   (64 connections), counted by callgrind on its HTTP worker thread, with no replica and
   with one attached. Each runs twice (8 and 16 s); the difference of the two runs'
   instructions over the difference of their requests cancels start-up and shutdown.
   Unlike CPU time it does not move with what the other vCPU does (the replica and wrk
   share CPU 1 and, on this VM, a busy CPU 1 alone raises a primary's CPU per PUT), and
   it leaves out the kernel's part (one send to the replica per batch of records).
5. With --control, instead: a primary with no replica, CPU per PUT with CPU 1 running
   only wrk against CPU 1 running wrk and a niced busy loop: how much of 1.'s ratio the
   replica's mere presence on the load generator's core can account for.

What it does not measure: throughput on this 2-core VM (the load generator and the
replica share one core), HTTPS, persistence, more than one replica.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instructions import thread_instructions  # noqa: E402  (benches/instructions.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BINARY = os.environ.get("RUSTKV", os.path.join(TARGET, "release", "rustkv"))
WRK_DIR = os.path.join(os.path.dirname(ROOT), "shared", "bench", "wrk")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start(port, cpu, extra=""):
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f"[server]\nport = {port}\nworkers = 1\n[store]\ncapacity = 2000000\n"
                 f"max_memory = \"4GiB\"\n[log]\nlevel = \"warn\"\n{extra}")
    config.close()
    process = subprocess.Popen(["taskset", "-c", str(cpu), BINARY, "--config", config.name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if get(port, "/health")[0] == 200:
                return process
        except OSError:
            time.sleep(0.05)
    sys.exit(f"rustkv on {port} did not start")


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def status(port):
    return json.loads(get(port, "/v1/replication")[1])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wrk(port, seconds, script, env, connections=64):
    environment = dict(os.environ, **env)
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "-s", os.path.join(WRK_DIR, script), f"http://127.0.0.1:{port}"],
        env=environment, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk got {errors.group(1)} non-2xx answers:\n{out}")
    return requests


def wait_caught_up(primary, replica, limit=600):
    started = time.monotonic()
    while time.monotonic() - started < limit:
        p, r = status(primary), status(replica)
        if r.get("link") == "streaming" and r["position"] == p["position"]:
            return time.monotonic() - started
        time.sleep(0.05)
    sys.exit("the replica did not catch up")


def cpu_per_put(args):
    alone, followed, replica_port = 18301, 18302, 18303
    processes = [start(alone, 0), start(followed, 0)]
    processes.append(start(replica_port, 1,
                           f"[replication]\nprimary = \"http://127.0.0.1:{followed}\"\n"))
    put = ("put.lua", {"MODE": "native", "KEYS": "10000"})
    try:
        for port in (alone, followed):  # warm up, and fill the keyspace
            wrk(port, 2, *put)
        wait_caught_up(followed, replica_port)
        per_request = {alone: [], followed: []}
        lags, lag_seconds, catch_up = [], [], []
        for round_no in range(args.rounds):
            order = (alone, followed) if round_no % 2 == 0 else (followed, alone)
            for port in order:
                pid = processes[0 if port == alone else 1].pid
                before = cpu_seconds(pid)
                if port == followed:
                    sampler = subprocess.Popen([sys.executable, __file__, "--sample-lag",
                                                str(replica_port), str(args.seconds)],
                                               stdout=subprocess.PIPE, text=True)
                requests = wrk(port, args.seconds, *put)
                per_request[port].append((cpu_seconds(pid) - before) / requests * 1e6)
                if port == followed:
                    samples = json.loads(sampler.communicate()[0])
                    lags += [s[0] for s in samples]
                    lag_seconds += [s[1] for s in samples]
                    catch_up.append(wait_caught_up(followed, replica_port))
        a, b = statistics.median(per_request[alone]), statistics.median(per_request[followed])
        print(f"primary CPU per PUT, median of {args.rounds} rounds of {args.seconds}s: "
              f"no replica {a:.2f} us, one replica attached {b:.2f} us, ratio {b / a:.3f}")
        print(f"  rounds (us): no replica {[round(x, 2) for x in per_request[alone]]}, "
              f"with replica {[round(x, 2) for x in per_request[followed]]}")
        lags.sort()
        print(f"replica lag under load (every 100 ms): records median {statistics.median(lags)}, "
              f"p99 {lags[int(len(lags) * 0.99) - 1]}, max {lags[-1]}; "
              f"seconds behind max {max(lag_seconds):.3f}; caught up "
              f"{statistics.median(catch_up) * 1000:.0f} ms (median) after the load stopped")
    finally:
        for process in processes:
            process.kill()


def sample_lag(port, seconds):
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        lag = status(port)["lag"]
        samples.append((lag["records"], lag["seconds"]))
        time.sleep(0.1)
    print(json.dumps(samples))


FILL = """
local n = 0
local headers = { ["Content-Type"] = "application/json" }
local value = '{"name":"Alice","age":30,"tags":["a","b"]}'
local thread_no = 0
function setup(thread) thread_no = thread_no + 1; thread:set("id", thread_no) end
function request()
  n = n + 1
  if n > tonumber(os.getenv("PER_THREAD")) then wrk.thread:stop() end
  return wrk.format("PUT", "/v1/kv/key" .. id .. "-" .. n, headers, value)
end
"""


def full_copy(args):
    primary, replica_port = 18311, 18312
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(FILL)
    script.close()
    processes = [start(primary, 0)]
    try:
        started = time.monotonic()
        # wrk.thread:stop() ends the requests but not wrk's run, so the run is capped.
        fill_seconds = max(20, args.copy_keys // 10_000)
        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{fill_seconds}s",
                        "-s", script.name,
                        f"http://127.0.0.1:{primary}"], check=True, capture_output=True,
                       env=dict(os.environ, PER_THREAD=str(args.copy_keys)))
        keys = json.loads(get(primary, "/v1/stats")[1])["keys"]
        print(f"filled {keys} keys")
        started = time.monotonic()
        processes.append(start(replica_port, 1,
                               f"[replication]\nprimary = \"http://127.0.0.1:{primary}\"\n"))
        wait_caught_up(primary, replica_port)
        took = time.monotonic() - started
        copied = json.loads(get(replica_port, "/v1/stats")[1])["keys"]
        print(f"full copy of {copied} keys: {took:.2f}s from the replica's start to streaming "
              f"at the primary's position ({copied / took:,.0f} keys/s)")
    finally:
        for process in processes:
            process.kill()


def instructions_per_put(seconds):
    """Instructions the primary's worker runs per PUT under wrk, (I(2T) - I(T)) / (R(2T) - R(T))."""
    results = {}
    for attached in (False, True):
        runs = []
        for duration in (seconds, 2 * seconds):
            runs.append(callgrind_run(attached, duration))
        (r1, i1), (r2, i2) = runs
        results[attached] = (i2 - i1) / (r2 - r1)
        print(f"{'one replica attached' if attached else 'no replica':20}: "
              f"{results[attached]:,.0f} instructions per PUT on the primary's worker "
              f"(runs: {runs})", flush=True)
    print(f"ratio: {results[True] / results[False]:.3f}")


def callgrind_run(attached, seconds):
    """(requests, worker instructions) of a primary under callgrind serving `seconds` of
    wrk PUTs, followed by a replica or not."""
    primary, replica_port = 18321, 18322
    out = tempfile.mkdtemp()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'[server]\nport = {primary}\nworkers = 1\n[store]\ntick = "10s"\n'
                 '[log]\nlevel = "warn"\n')
    config.close()
    server = subprocess.Popen(
        ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--separate-threads=yes",
         f"--callgrind-out-file={out}/cg", BINARY, "--config", config.name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    replica = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(primary, "/health")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("the primary under callgrind did not start")
                time.sleep(0.2)
        if attached:
            replica = start(replica_port, 1,
                            f"[replication]\nprimary = \"http://127.0.0.1:{primary}\"\n")
            while status(replica_port).get("link") != "streaming":
                time.sleep(0.1)
        requests = wrk(primary, seconds, "put.lua", {"MODE": "native", "KEYS": "10000"})
    finally:
        if replica:
            replica.kill()
        server.terminate()
        server.wait(timeout=120)
    counts = thread_instructions([os.path.join(out, name) for name in os.listdir(out)])
    shutil.rmtree(out)
    os.unlink(config.name)
    # The HTTP worker (which runs the partition actors and the replica's stream too).
    return requests, max(counts)


def control(args):
    """CPU per PUT of a primary with no replica, with CPU 1 idle but for wrk, and with a
    busy loop beside wrk there (niced, as a replica applying records is one more task
    on that core): what the other vCPU's load alone does to the figure of 1."""
    port = 18331
    process = start(port, 0)
    put = ("put.lua", {"MODE": "native", "KEYS": "10000"})
    per_request = {False: [], True: []}
    try:
        wrk(port, 2, *put)
        for round_no in range(args.rounds):
            for busy in ((False, True) if round_no % 2 == 0 else (True, False)):
                loop = subprocess.Popen(["taskset", "-c", "1", "nice", "-n", "10", "sh", "-c",
                                         "while :; do :; done"]) if busy else None
                before = cpu_seconds(process.pid)
                requests = wrk(port, args.seconds, *put)
                per_request[busy].append((cpu_seconds(process.pid) - before) / requests * 1e6)
                if loop:
                    loop.kill()
                    loop.wait()
    finally:
        process.kill()
    idle, busy = statistics.median(per_request[False]), statistics.median(per_request[True])
    print(f"primary (no replica) CPU per PUT, median of {args.rounds} rounds: CPU 1 with wrk "
          f"only {idle:.2f} us, with a busy loop too {busy:.2f} us, ratio {busy / idle:.3f}")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--sample-lag":
        sample_lag(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--copy-keys", type=int, default=1_000_000)
    parser.add_argument("--skip-copy", action="store_true")
    parser.add_argument("--only-copy", action="store_true")
    parser.add_argument("--instructions", type=int, metavar="SECONDS",
                        help="only the callgrind count (4 above), runs of SECONDS and twice that")
    parser.add_argument("--control", action="store_true",
                        help="only the control: a busy CPU 1's effect on a lone primary")
    args = parser.parse_args()
    if args.control:
        control(args)
        return
    if args.instructions:
        instructions_per_put(args.instructions)
        return
    if not args.only_copy:
        cpu_per_put(args)
    if not args.skip_copy:
        full_copy(args)


if __name__ == "__main__":
    main()
