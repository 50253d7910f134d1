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

Installs wrk and redis-server (redis-tools) from apt if missing. Loopback only.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import ensure_wrk, free_port, preload, start_server, wait_port  # noqa: E402

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


def redis_run(port, test, seconds):
    # redis-benchmark runs a request count, not a duration: a short probe sizes the
    # run so that it lasts about `seconds`.
    rate = redis_count(port, test, 20_000)
    return redis_count(port, test, max(20_000, int(rate * seconds)))


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


def wrk_run(url, script, seconds, path_fmt, mode):
    environment = dict(os.environ, KEYS=str(KEYS), PATH_FMT=path_fmt, MODE=mode, TTL="")
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s",
               "-s", os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk",
                                  f"{script}.lua"), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env=environment).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        raise RuntimeError(f"{script} {mode}: {bad.group(1)} non-2xx answers")
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    args = parser.parse_args()
    ensure_wrk()
    ensure_redis()
    rustkv, url, port = start_server(KEYS * 10)
    redis, redis_port = start_redis()
    try:
        preload(port, KEYS)
        cases = {
            "redis GET": lambda: redis_run(redis_port, "get", args.duration),
            "redis SET": lambda: redis_run(redis_port, "set", args.duration),
            "native GET": lambda: wrk_run(url, "get", args.duration, "/v1/kv/%s", "native"),
            "native PUT": lambda: wrk_run(url, "put", args.duration, "/v1/kv/%s", "native"),
            "compat GET": lambda: wrk_run(url, "get", args.duration, "/kv/%s", "compat"),
            "compat PUT": lambda: wrk_run(url, "put", args.duration, "/kv/%s", "compat"),
        }
        results = {name: [] for name in cases}
        for round_no in range(args.rounds):
            order = list(cases) if round_no % 2 == 0 else list(reversed(cases))
            for name in order:
                rate = cases[name]()
                results[name].append(rate)
                print(f"round {round_no + 1}: {name:11} {rate:10.0f} req/s", flush=True)
                time.sleep(0.5)
        median = {name: statistics.median(rates) for name, rates in results.items()}
        print("\nmedians (req/s):")
        for name, rate in median.items():
            print(f"  {name:11} {rate:10.0f}")
        print("\nratios:")
        print(f"  native GET / redis GET   {median['native GET'] / median['redis GET']:.2f}"
              "   (goal >= 1.00)")
        print(f"  native PUT / redis SET   {median['native PUT'] / median['redis SET']:.2f}"
              "   (goal >= 0.90)")
        print(f"  compat GET / native GET  {median['compat GET'] / median['native GET']:.2f}"
              "   (goal >= 0.95)")
        print(f"  compat PUT / native PUT  {median['compat PUT'] / median['native PUT']:.2f}"
              "   (goal >= 0.95)")
    finally:
        rustkv.terminate()
        redis.terminate()
        rustkv.wait(timeout=10)
        redis.wait(timeout=10)


if __name__ == "__main__":
    main()
