#!/usr/bin/env python3
"""RustKV against webdis + Redis (an HTTP front for Redis), GET and PUT, with wrk.

Both sides get the same machine share: each server (RustKV with one HTTP worker;
webdis with one thread plus its redis-server) is pinned to CPU 0 and wrk to CPU 1,
with 10,000 prefilled keys holding {"name":"Alice","age":30,"tags":["a","b"]} and
random keys per request (benches/wrk/get.lua and put.lua for RustKV's native routes,
benches/wrk/webdis.lua for webdis's /GET and /SET). Rounds alternate A/B; the
median of the per-round ratios is printed.

    python3 benches/versus_webdis.py [--rounds 3] [--seconds 8]

Needs target/release/rustkv; installs wrk, redis-server and webdis from apt if
missing. Everything runs on 127.0.0.1.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (benches/load.py: server start, preload, wrk runner)

VALUE = load.VALUE


def ensure(binary, package):
    if not shutil.which(binary):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True)


def start_webdis(tmp):
    redis_port, http_port = load.free_port(), load.free_port()
    redis = subprocess.Popen(["taskset", "-c", "0", "redis-server", "--port", str(redis_port),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    load.wait_port(redis_port)
    config = os.path.join(tmp, "webdis.json")
    with open(config, "w") as f:
        json.dump({"redis_host": "127.0.0.1", "redis_port": redis_port, "http_host": "127.0.0.1",
                   "http_port": http_port, "threads": 1, "daemonize": False, "database": 0,
                   "verbosity": 0, "logfile": os.path.join(tmp, "webdis.log")}, f)
    webdis = subprocess.Popen(["taskset", "-c", "0", "webdis", config], stdout=subprocess.DEVNULL)
    load.wait_port(http_port)
    with socket.create_connection(("127.0.0.1", redis_port)) as sock:
        for start in range(0, 10_000, 500):
            batch = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                             % (len(f"key{i}"), f"key{i}".encode(), len(VALUE), VALUE)
                             for i in range(start, start + 500))
            sock.sendall(batch)
            got = b""
            while got.count(b"+OK\r\n") < 500:
                got += sock.recv(1 << 16)
    return [webdis, redis], f"http://127.0.0.1:{http_port}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    load.ensure_wrk()
    ensure("redis-server", "redis-server")
    ensure("webdis", "webdis")
    tmp = tempfile.mkdtemp()
    ours, ours_url, ours_port = load.start_server(capacity=1_000_000)
    theirs, theirs_url = start_webdis(tmp)
    try:
        load.preload(ours_port, 10_000)
        ratios = {"get": [], "put": []}
        for round_no in range(args.rounds):
            for mode in ("get", "put"):
                rate_ours, p99_ours, bad_ours = load.wrk(ours_url, mode, 10_000, args.seconds)
                rate_theirs, p99_theirs, bad_theirs = load.wrk(
                    theirs_url, "webdis", 10_000, args.seconds, env={"MODE": mode})
                load.report(f"rustkv {mode} (round {round_no + 1})", rate_ours, p99_ours, bad_ours)
                load.report(f"webdis {mode} (round {round_no + 1})", rate_theirs, p99_theirs, bad_theirs)
                ratios[mode].append(rate_ours / rate_theirs)
        for mode, values in ratios.items():
            print(f"{mode}: rustkv / webdis median ratio {statistics.median(values):.2f}")
    finally:
        for process in [ours, *theirs]:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
