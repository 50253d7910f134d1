#!/usr/bin/env python3
"""RustKV over HTTP against Redis 7 over RESP, per core: native GET vs `GET`, native
PUT vs `SET`, and the PyRustKV-compatible routes next to the native ones.

Run from the project root after `cargo build --release`:

    python3 benches/versus_redis.py                 # 5 rounds x 5 s
    python3 benches/versus_redis.py --rounds 3 --duration 4

Both servers run pinned to CPU 0 (RustKV with one HTTP worker, which also runs its
partition actors; Redis is single-threaded), the load generator on CPU 1: wrk with
benches/wrk/get.lua and put.lua for RustKV, redis-benchmark for Redis; 64 connections,
one request in flight each (no pipelining), random keys over a 10,000-key space
preloaded in both, values of 42 bytes (`{"name":"Alice","age":30,"tags":["a","b"]}`
for RustKV, `-d 42` for Redis). RustKV's PUT has no TTL here, as `SET` has none;
metrics on, header limits on, auth off (the defaults). Each round runs every case,
the order reversed every other round, since this machine is shared and noisy;
prints each run and the medians, with RustKV/Redis ratios.

Each run also reads the server's CPU time (utime + stime of all its threads, from
/proc) before and after: server CPU per request. Its inverse is what one core serves
when the server is the bottleneck, and it does not depend on whether the load
generator (sharing the machine with other work) kept the server saturated, so the
CPU-per-request ratios are printed beside the throughput ratios.

With --instructions it counts instructions instead (callgrind, one connection, the
differential method of benches/instructions.py: N and 2N requests, the difference
over N): RustKV's worker thread per native GET and per native PUT (no TTL, the
42-byte value, 10,000 keys preloaded) and Redis's main thread per GET and SET
(`redis-benchmark -c 1 -d 42 -r 10000`, the key space preloaded), and what a write
costs beyond a read on each. Needs valgrind (installed from apt if missing).

Installs wrk and redis-server (redis-tools) from apt if missing. Loopback only.
"""
import argparse
import os
import re
import shutil
import statistics
import glob
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instructions as callgrind  # noqa: E402  (benches/instructions.py)
from load import (  # noqa: E402
    cpu_seconds, ensure_wrk, free_port, preload, start_server, wait_port)

KEYS = 10_000


def ensure_redis():
    if not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"],
                       check=True)


def start_redis():
    port = free_port()
    process = subprocess.Popen(
        ["taskset", "-c", "0", "redis-server", "--port", str(port), "--save", "",
         "--appendonly", "no", "--bind", "127.0.0.1", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL)
    wait_port(port, process=process)
    # Preload the key space redis-benchmark draws from (-r 10000: key:000000000000..).
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(KEYS * 5),
                    "-r", str(KEYS), "-d", "42", "-q"], check=True, capture_output=True)
    return process, port


def redis_run(port, pid, test, seconds):
    """(requests/s, server CPU us per request) of a run of about `seconds`."""
    # redis-benchmark runs a request count, not a duration: a short probe sizes the
    # run so that it lasts about `seconds`.
    rate = redis_count(port, test, 20_000)
    requests = max(20_000, int(rate * seconds))
    before = cpu_seconds(pid)
    rate = redis_count(port, test, requests)
    return rate, (cpu_seconds(pid) - before) / requests * 1e6


def redis_count(port, test, requests):
    command = ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", test,
               "-c", "64", "-n", str(requests), "-r", str(KEYS), "-d", "42", "-P", "1",
               "--threads", "1", "--csv"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    for line in output.splitlines():
        fields = [field.strip('"') for field in line.split(",")]
        if fields[0].upper() == test.upper():
            return float(fields[1])
    raise RuntimeError(f"no {test} figure in redis-benchmark output: {output!r}")


def wrk_run(url, pid, script, seconds, path_fmt, mode):
    """(requests/s, server CPU us per request) of a wrk run of `seconds`."""
    environment = dict(os.environ, KEYS=str(KEYS), PATH_FMT=path_fmt, MODE=mode, TTL="")
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s",
               "-s", os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk",
                                  f"{script}.lua"), url]
    before = cpu_seconds(pid)
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env=environment).stdout
    cpu = cpu_seconds(pid) - before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        raise RuntimeError(f"{script} {mode}: {bad.group(1)} non-2xx answers")
    return rate, cpu / requests * 1e6


def redis_instructions(test, requests):
    """Instructions Redis's main thread runs per `test` request on one connection."""
    def run(count):
        tmp = tempfile.mkdtemp()
        out = os.path.join(tmp, "callgrind.out")
        port = free_port()
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}", "redis-server", "--port", str(port), "--save", "",
             "--appendonly", "no", "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, timeout=60, process=process)
        bench = ["redis-benchmark", "-p", str(port), "-r", str(KEYS), "-d", "42", "-c", "1",
                 "-q"]
        subprocess.run(bench + ["-t", "set", "-n", str(KEYS * 5)], check=True,
                       capture_output=True)
        subprocess.run(bench + ["-t", test, "-n", str(count)], check=True, capture_output=True)
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"],
                       capture_output=True)
        process.wait(timeout=120)
        totals = callgrind.thread_instructions(glob.glob(out + "-*"))
        shutil.rmtree(tmp)
        return max(totals)
    return (run(2 * requests) - run(requests)) / requests


def instructions(requests):
    """Instructions per request, RustKV's worker and Redis's main thread, side by side."""
    if not shutil.which("valgrind"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    callgrind.BINARY = os.path.abspath("target/release/rustkv")
    counts = {}
    for kind in ["native-get", "native-put-42"]:
        tmp = tempfile.mkdtemp()
        once = callgrind.count(kind, True, requests, tmp, keys=KEYS)[0]
        twice = callgrind.count(kind, True, 2 * requests, tmp, keys=KEYS)[0]
        shutil.rmtree(tmp)
        counts[kind] = (twice - once) / requests
    for test in ["get", "set"]:
        counts[f"redis {test}"] = redis_instructions(test, requests)
    print(f"instructions per request, one connection, {requests} and {2 * requests} requests:")
    for name, value in counts.items():
        print(f"  {name:14} {value:9,.0f}")
    print(f"  a write beyond a read: RustKV {counts['native-put-42'] - counts['native-get']:,.0f},"
          f" Redis {counts['redis set'] - counts['redis get']:,.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--instructions", type=int, metavar="N",
                        help="count instructions per request with callgrind instead "
                        "(N and 2N requests)")
    args = parser.parse_args()
    ensure_redis()
    if args.instructions:
        instructions(args.instructions)
        return
    ensure_wrk()
    rustkv, url, port = start_server(KEYS * 10)
    redis, redis_port = start_redis()
    try:
        preload(port, KEYS)
        ours, theirs = rustkv.pid, redis.pid
        cases = {
            "redis GET": lambda: redis_run(redis_port, theirs, "get", args.duration),
            "redis SET": lambda: redis_run(redis_port, theirs, "set", args.duration),
            "native GET": lambda: wrk_run(url, ours, "get", args.duration, "/v1/kv/%s",
                                          "native"),
            "native PUT": lambda: wrk_run(url, ours, "put", args.duration, "/v1/kv/%s",
                                          "native"),
            "compat GET": lambda: wrk_run(url, ours, "get", args.duration, "/kv/%s", "compat"),
            "compat PUT": lambda: wrk_run(url, ours, "put", args.duration, "/kv/%s", "compat"),
        }
        rates = {name: [] for name in cases}
        cpus = {name: [] for name in cases}
        for round_no in range(args.rounds):
            order = list(cases) if round_no % 2 == 0 else list(reversed(cases))
            for name in order:
                rate, cpu = cases[name]()
                rates[name].append(rate)
                cpus[name].append(cpu)
                print(f"round {round_no + 1}: {name:11} {rate:10.0f} req/s"
                      f"  {cpu:6.2f} us server CPU per request", flush=True)
                time.sleep(0.5)
        rate = {name: statistics.median(values) for name, values in rates.items()}
        cpu = {name: statistics.median(values) for name, values in cpus.items()}
        print("\nmedians:")
        for name in cases:
            print(f"  {name:11} {rate[name]:10.0f} req/s  {cpu[name]:6.2f} us CPU per request")
        print("\nratios: throughput, and per-core capacity (the inverse ratio of CPU per"
              " request)")
        for ours_name, base, goal in [("native GET", "redis GET", 1.00),
                                      ("native PUT", "redis SET", 0.90),
                                      ("compat GET", "native GET", 0.95),
                                      ("compat PUT", "native PUT", 0.95)]:
            print(f"  {ours_name} / {base:10}  {rate[ours_name] / rate[base]:.2f}"
                  f"  capacity {cpu[base] / cpu[ours_name]:.2f}   (goal >= {goal:.2f})")
    finally:
        rustkv.terminate()
        redis.terminate()
        rustkv.wait(timeout=10)
        redis.wait(timeout=10)


if __name__ == "__main__":
    main()
