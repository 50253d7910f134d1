#!/usr/bin/env python3
"""Time to load 1,000,000 keys from disk at start-up, RustKV against Redis.

Run from the project root after `cargo build --release`:

    python3 benches/recovery_vs_redis.py                  # 1,000,000 keys, page cache warm
    python3 benches/recovery_vs_redis.py --cold           # the files dropped from the cache
    python3 benches/recovery_vs_redis.py --keys 100000 --skip-redis

Both servers get the same keys key0..key999999, each holding the 42-byte value
{"name":"Alice","age":30,"tags":["a","b"]}, loaded over loopback by pipelined clients
(benches/memory_vs_redis.py's loader: 16 connections, batches of 512 PUTs or SETs), into a
fresh data directory on the real disk (`--data`, default target/bench-data/recovery).

    RustKV  mode = "aof", fsync = "everysec". Stopped with SIGTERM and restarted from two
            states:
            "log": what the writes left (one log per partition) is replayed;
            "snapshot": after a restart with rewrite_percentage = 10 and rewrite_min_size
            = 1MiB has compacted each partition's log into a snapshot.
    Redis   appendonly yes, appendfsync everysec, save "" (so no RDB file exists), the
            default aof-use-rdb-preamble yes, auto-aof-rewrite-percentage 0 (at its default,
            100, the fill itself would rewrite the AOF at 64 MB; RustKV's compaction, at
            its defaults, does not start below the live data's size). Stopped with SIGTERM
            and restarted from two states:
            "log": the AOF's incr file of SET commands is replayed;
            "snapshot": after BGREWRITEAOF, the base file in RDB format is loaded.

Each restart is timed from the fork of the server until (a) the server's own log line
(RustKV: "recovered N records ... in X", Redis: "DB loaded from append only file: X
seconds"), whose X is printed too, and (b) it serves: RustKV's /health answers 200,
Redis answers PING with PONG (not -LOADING). Prints per restart: both times, the files'
size on disk, MB/s (size / in-process load time), and RSS (VmRSS) once serving, next to
the RSS after the clients' writes; then RustKV / Redis for each kind of restart (goal: at
most 1.0). Each kind of restart is made --restarts times (default 3); figures are medians.

Servers run on CPU 0 (`--server-cpus`; RustKV with one HTTP worker and one partition
per CPU given), the loader on CPU 1. By default the files are in the page cache, as right
after a stop; `--cold` drops them first (posix_fadvise DONTNEED on the files only, not the
whole cache), so the load reads the disk. Not measured: loading while serving traffic,
keys with TTLs, large values, a crash's torn tail, or the time to write the files (the
fill rate is printed but is the Python loader's). Installs redis-server from apt if
missing.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, wait_port  # noqa: E402  (benches/load.py)
from memory_vs_redis import (  # noqa: E402  (benches/memory_vs_redis.py)
    http_replies, load, redis_request, resp_replies, rss_bytes, rustkv_request)
from persist_vs_redis import (  # noqa: E402  (benches/persist_vs_redis.py)
    dir_bytes, ensure_redis, fresh_dir, redis_args, redis_version, rustkv_config, stop)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUSTKV_LOADED = re.compile(r"recovered (\d+) records .* in ([\d.]+)(ns|µs|us|ms|s):")
REDIS_LOADED = re.compile(r"DB loaded from append only file: ([\d.]+) seconds")
RUSTKV_SNAPSHOT = re.compile(r"snapshot \S+ written")
UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class Server:
    """A server process whose output lines are kept with their arrival times."""

    def __init__(self, command, cpus, log_path):
        self.lines = []
        self.seen = threading.Condition()
        self.log = open(log_path, "a")
        self.started = time.monotonic()
        self.process = subprocess.Popen(["taskset", "-c", cpus, *command],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, errors="replace")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.log.write(line)
            with self.seen:
                self.lines.append((time.monotonic(), line))
                self.seen.notify_all()
        with self.seen:
            self.seen.notify_all()

    def wait_line(self, pattern, count=1, timeout=300):
        """The `count`th line matching `pattern`, and the seconds since the start."""
        deadline = time.monotonic() + timeout
        with self.seen:
            while True:
                found = [(match, at) for at, match in
                         ((at, pattern.search(line)) for at, line in self.lines) if match]
                if len(found) >= count:
                    match, at = found[count - 1]
                    return match, at - self.started
                if self.process.poll() is not None:
                    raise SystemExit(f"server exited with {self.process.returncode}: "
                                     + "".join(line for _, line in self.lines[-5:]))
                if time.monotonic() > deadline:
                    raise SystemExit(f"no line matching {pattern.pattern!r}")
                self.seen.wait(0.5)

    def stop(self):
        stop(self.process, timeout=120)
        self.log.close()


def poll(ready, process, timeout=300, interval=0.005):
    """Seconds until `ready()` holds, polling; fails if the process exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit("server not ready in time")
        time.sleep(interval)


def health_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


def redis_call(port, *words):
    """One command with redis-cli (not on the hot path); its reply, or "" if refused."""
    out = subprocess.run(["redis-cli", "-p", str(port), *words], capture_output=True,
                         text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def redis_info(port, section):
    fields = {}
    for line in redis_call(port, "INFO", section).splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def drop_cache(path):
    """Drops `path`'s files (only them) from the page cache."""
    for top, _, names in os.walk(path):
        for name in names:
            fd = os.open(os.path.join(top, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def fill(name, port, keys, make_request, count_replies, pid):
    started = time.monotonic()
    load(port, keys, make_request, count_replies)
    took = time.monotonic() - started
    time.sleep(1.0)
    rss = rss_bytes(pid)
    print(f"  {name:8} filled {keys:,} keys in {took:5.1f} s ({keys / took:,.0f}/s); "
          f"RSS {rss / 2**20:7.1f} MiB", flush=True)
    return rss


def result(kind, in_process, logged, serving, files, rss):
    return {"kind": kind, "in_process": in_process, "logged": logged, "serving": serving,
            "mb": dir_bytes(files) / 1e6, "rss": rss}


def repeated(restart, kind, times):
    """`restart(kind)` `times` times: the median of each figure."""
    runs = [restart(kind) for _ in range(times)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]
              if key != "kind"}
    median["kind"] = kind
    median["spread"] = (min(run["serving"] for run in runs), max(run["serving"] for run in runs))
    return median


def print_restart(name, r):
    print(f"  {name:8} restart from {r['kind']:8}: own figure {r['in_process']:6.3f} s, "
          f"log line at {r['logged']:6.3f} s, serving at {r['serving']:6.3f} s; "
          f"{r['mb']:6.1f} MB on disk, {r['mb'] / r['in_process']:6.1f} MB/s; "
          f"RSS {r['rss'] / 2**20:7.1f} MiB (serving: {r['spread'][0]:.3f}-"
          f"{r['spread'][1]:.3f} s)", flush=True)


class RustKV:
    def __init__(self, args, data):
        self.args, self.data = args, data
        self.files = os.path.join(data, "data")
        self.cpus = args.server_cpus
        self.workers = len(args.server_cpus.split(","))
        self.port = free_port()

    def start(self, extra=""):
        config = os.path.join(self.data, "rustkv.toml")
        rustkv_config(config, self.port, self.data, "everysec", capacity=2 * self.args.keys,
                      level="info", extra=extra)
        with open(config) as file:
            text = file.read().replace("workers = 1", f"workers = {self.workers}")
        with open(config, "w") as file:
            file.write(text)
        return Server([self.args.binary, "--config", config], self.cpus,
                      os.path.join(self.data, "server.log"))

    def restart(self, kind):
        if self.args.cold:
            drop_cache(self.files)
        server = self.start()
        try:
            match, logged = server.wait_line(RUSTKV_LOADED)
            poll(lambda: health_ok(self.port), server.process)
            serving = time.monotonic() - server.started
            records = int(match.group(1))
            if records < self.args.keys:
                raise SystemExit(f"recovered {records} records, expected {self.args.keys}")
            time.sleep(1.0)
            own = float(match.group(2)) * UNITS[match.group(3)]
            return result(kind, own, logged, serving, self.files, rss_bytes(server.process.pid))
        finally:
            server.stop()

    def run(self):
        server = self.start()
        try:
            wait_port(self.port, process=server.process, timeout=60)
            written = fill("rustkv", self.port, self.args.keys, rustkv_request, http_replies,
                 server.process.pid)
        finally:
            server.stop()
        results = [repeated(self.restart, "log", self.args.restarts)]
        print_restart("rustkv", results[-1])
        # A start that compacts: the replayed log is far more than 10% of the live data.
        server = self.start('rewrite_percentage = 10\nrewrite_min_size = "1MiB"')
        try:
            server.wait_line(RUSTKV_SNAPSHOT, count=self.workers)  # a partition per CPU
        finally:
            server.stop()
        results.append(repeated(self.restart, "snapshot", self.args.restarts))
        print_restart("rustkv", results[-1])
        return results, written


class Redis:
    def __init__(self, args, data):
        self.args, self.data = args, data
        self.files = os.path.join(data, "appendonlydir")
        self.port = free_port()

    def start(self):
        # No automatic rewrite: the "log" restarts replay the writes' commands only.
        return Server(redis_args(self.port, self.data, "everysec",
                                 ["--auto-aof-rewrite-percentage", "0"]),
                      self.args.server_cpus.split(",")[0],
                      os.path.join(self.data, "server.log"))

    def serving(self):
        return redis_call(self.port, "PING") == "PONG"

    def restart(self, kind):
        if self.args.cold:
            drop_cache(self.files)
        server = self.start()
        try:
            match, logged = server.wait_line(REDIS_LOADED)
            poll(self.serving, server.process)
            served = time.monotonic() - server.started
            keys = int(redis_call(self.port, "DBSIZE") or 0)
            if keys < self.args.keys:
                raise SystemExit(f"redis loaded {keys} keys, expected {self.args.keys}")
            time.sleep(1.0)
            return result(kind, float(match.group(1)), logged, served, self.files,
                          rss_bytes(server.process.pid))
        finally:
            server.stop()

    def run(self):
        server = self.start()
        try:
            wait_port(self.port, process=server.process, timeout=60)
            written = fill("redis", self.port, self.args.keys, redis_request, resp_replies,
                 server.process.pid)
        finally:
            server.stop()
        results = [repeated(self.restart, "log", self.args.restarts)]
        print_restart("redis", results[-1])
        server = self.start()
        try:
            poll(self.serving, server.process)
            redis_call(self.port, "BGREWRITEAOF")
            poll(lambda: redis_info(self.port, "persistence").get("aof_rewrite_in_progress")
                 == "0" and redis_info(self.port, "persistence").get("aof_rewrite_scheduled")
                 == "0", server.process, interval=0.1)
        finally:
            server.stop()
        results.append(repeated(self.restart, "snapshot", self.args.restarts))
        print_restart("redis", results[-1])
        return results, written


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rustkv"))
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data", "recovery"))
    parser.add_argument("--server-cpus", default="0", help="taskset list for the servers")
    parser.add_argument("--cold", action="store_true",
                        help="drop the files from the page cache before each restart")
    parser.add_argument("--restarts", type=int, default=3,
                        help="restarts of each kind; medians are printed")
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the loader; the servers are started under taskset
    print(f"{args.keys:,} keys; servers on CPU {args.server_cpus}; page cache "
          f"{'dropped' if args.cold else 'warm'}; medians of {args.restarts} restarts",
          flush=True)
    ours, our_written = RustKV(args, fresh_dir(args.data, "rustkv")).run()
    if args.skip_redis:
        return
    ensure_redis()
    theirs, their_written = Redis(args, fresh_dir(args.data, "redis")).run()
    print(f"RustKV / Redis (Redis {redis_version()}), goal <= 1.00:")
    for mine, their in zip(ours, theirs):
        print(f"  {mine['kind']:8} own figures {mine['in_process']:.3f} / "
              f"{their['in_process']:.3f} s = {mine['in_process'] / their['in_process']:.2f}; "
              f"until serving {mine['serving']:.3f} / {their['serving']:.3f} s = "
              f"{mine['serving'] / their['serving']:.2f}; on disk {mine['mb']:.1f} / "
              f"{their['mb']:.1f} MB; RSS {mine['rss'] / 2**20:.1f} / "
              f"{their['rss'] / 2**20:.1f} MiB")
    print(f"  RSS after the writes {our_written / 2**20:.1f} / {their_written / 2**20:.1f} MiB")
    print(f"  RustKV snapshot against Redis's RDB-preamble AOF: "
          f"{ours[1]['serving'] / theirs[1]['serving']:.2f} until serving; "
          f"RustKV log against it: {ours[0]['serving'] / theirs[1]['serving']:.2f}")


if __name__ == "__main__":
    main()
