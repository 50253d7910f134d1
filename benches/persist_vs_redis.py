#!/usr/bin/env python3
"""Write throughput with persistence on, RustKV side by side with Redis.

Run from the project root after `cargo build --release`:

    python3 benches/persist_vs_redis.py                      # 5 rounds x 8 s per setting
    python3 benches/persist_vs_redis.py --rounds 3 --duration 4
    python3 benches/persist_vs_redis.py --binary ../old/target/release/rustkv --skip-redis
    python3 benches/persist_vs_redis.py --rounds 24 --duration 3 --only everysec --cpu-budget 60

Six settings, each on a fresh server with a fresh, empty data directory on the real disk
(`--data`, default target/bench-data/persist; tmpfs is refused):

    RustKV  [persistence] mode = "off" | "aof" + fsync = "everysec" | "aof" + "always"
    Redis   appendonly no | yes + appendfsync everysec | yes + appendfsync always
            (save "" so no RDB snapshot runs; auto AOF rewrite at its defaults, as
            RustKV's compaction)

Each server is pinned to CPU 0 (RustKV with one HTTP worker; its log writer thread, like
Redis's fsync thread, shares that core) and the load generator to CPU 1, 64 connections,
no pipelining: wrk with benches/wrk/put.lua (native PUT /v1/kv/key<0..9999>, the 42-byte
JSON value, no TTL) for RustKV, `redis-benchmark -t set -c 64 -r 10000 -d 42` for Redis
(its -n sized from a calibration run so that it lasts about --duration). The six settings
run in turn, the order reversed every other round, so each round's ratios compare runs
made minutes apart at most. Prints each run, then the medians and, per system, the
median of the per-round ratios everysec/off (RustKV's goal: >= 0.90) and always/off
(goal: >= 0.50), of throughput and of CPU time per request (the steadier of the two when
other work shares the machine).

Per run it also prints the server's CPU time per request (/proc/PID/stat, all threads)
and, when `perf` can count syscall tracepoints (it needs root), the fdatasync + fsync
calls the server made: their number, per second and requests per sync (the group-commit
size). RustKV's /metrics has no log counters on this branch, hence perf.

Why --cpu-budget: on a 2-core machine redis-benchmark cannot saturate Redis from the
other core (Redis runs at about 85% of its core with AOF off), so Redis absorbs the cost
of its AOF in idle time and its on/off ratio stays near 1, while wrk saturates RustKV,
whose ratio shows the whole cost. `--cpu-budget 60` puts each server, all its threads,
in a CPU cgroup allowed 60% of a core (10 ms periods), so that both are the bottleneck
and both ratios show what persistence costs per write. It needs root.

Not measured: HTTP against RESP as such (the absolute RustKV/Redis figures are printed but
the protocols differ; the on/off ratios are the point), pipelining, reads, large values,
crash safety, or the disk alone (loopback clients, one shared noisy VM). Installs wrk and
redis-server from apt if missing.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_binaries import cpu_seconds  # noqa: E402  (benches/ab_binaries.py)
from load import ensure_wrk, free_port, wait_port  # noqa: E402  (benches/load.py)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEYS = 10_000
CONNECTIONS = 64
VALUE_BYTES = 42
# (system, persistence label, RustKV fsync or Redis appendfsync; None = off)
SETTINGS = [
    ("rustkv", "off", None),
    ("rustkv", "everysec", "everysec"),
    ("rustkv", "always", "always"),
    ("redis", "off", None),
    ("redis", "everysec", "everysec"),
    ("redis", "always", "always"),
]
SYNC_EVENTS = ("syscalls:sys_enter_fdatasync", "syscalls:sys_enter_fsync")


def ensure_redis():
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        print("installing redis-server from apt ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True)


def redis_version():
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return re.search(r"v=(\S+)", out).group(1)


def filesystem_of(path):
    """The type of the filesystem holding `path` (the longest mount point above it)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, fstype = line.split()[:3]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fstype
    return kind


def fresh_dir(root, name):
    """An empty directory `root/name` on a real disk."""
    path = os.path.join(root, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    if filesystem_of(path) in ("tmpfs", "ramfs"):
        raise SystemExit(f"{path} is on {filesystem_of(path)}: pass --data on a real disk")
    return path


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(top, name))
               for top, _, names in os.walk(path) for name in names)


def rustkv_config(path, port, data, fsync, capacity=1_000_000, level="warn", extra=""):
    """Writes a RustKV config to `path`: one worker, room for `capacity` keys, and
    `[persistence]` off (fsync None) or aof with `fsync`."""
    persistence = 'mode = "off"' if fsync is None else (
        f'mode = "aof"\ndir = "{data}/data"\nfsync = "{fsync}"\n{extra}')
    with open(path, "w") as file:
        file.write(f'[server]\nbind = "127.0.0.1"\nport = {port}\nworkers = 1\n'
                   f'[store]\ncapacity = {capacity}\nmax_memory = "8GiB"\n'
                   f'[log]\nlevel = "{level}"\n[persistence]\n{persistence}\n')


class CpuBudget:
    """A CPU cgroup that holds a server and all its threads to `percent` of one core
    (CFS bandwidth: cgroup v1 `cpu.cfs_quota_us`, or v2 `cpu.max`), so that the server,
    not the load generator on the other core, is the bottleneck. Needs root."""

    PERIOD_US = 10_000  # short, so that a throttled server pauses 10 ms at most

    def __init__(self, percent):
        quota = int(self.PERIOD_US * percent / 100)
        v1 = "/sys/fs/cgroup/cpu"
        if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
            self.path = os.path.join(v1, "rustkv-bench")
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.cfs_period_us", self.PERIOD_US)
            self._write("cpu.cfs_quota_us", quota)
        else:
            root = "/sys/fs/cgroup"
            self._write_at(root, "cgroup.subtree_control", "+cpu")
            self.path = os.path.join(root, "rustkv-bench")
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.max", f"{quota} {self.PERIOD_US}")

    def _write_at(self, path, name, value):
        with open(os.path.join(path, name), "w") as file:
            file.write(str(value))

    def _write(self, name, value):
        self._write_at(self.path, name, value)

    def wrap(self, command):
        """`command`, started inside the cgroup (threads it spawns later stay in it)."""
        procs = os.path.join(self.path, "cgroup.procs")
        return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *command]


NO_BUDGET = None


def add_cpu_budget(parser):
    """The `--cpu-budget` option; `cpu_budget(args)` turns it into a budget."""
    parser.add_argument("--cpu-budget", type=float, metavar="PERCENT",
                        help="hold each server to PERCENT of CPU 0 (a CPU cgroup; root)")


def cpu_budget(args):
    return CpuBudget(args.cpu_budget) if args.cpu_budget else NO_BUDGET


def pinned(command, budget):
    """`command` on CPU 0, inside `budget` when there is one."""
    command = ["taskset", "-c", "0", *command]
    return command if budget is None else budget.wrap(command)


def start_rustkv(binary, data, fsync, budget=NO_BUDGET):
    port = free_port()
    config = os.path.join(data, "rustkv.toml")
    rustkv_config(config, port, data, fsync)
    log = open(os.path.join(data, "server.log"), "w")
    process = subprocess.Popen(pinned([binary, "--config", config], budget),
                               stdout=log, stderr=log, env=dict(os.environ, RUST_LOG="warn"))
    wait_port(port, process=process)
    return process, port


def redis_args(port, data, fsync, extra=()):
    """redis-server arguments: no RDB saves, AOF off (fsync None) or on with `fsync`."""
    aof = ["--appendonly", "no"] if fsync is None else [
        "--appendonly", "yes", "--appendfsync", fsync]
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--dir", data, "--daemonize", "no", "--logfile", "", *aof, *extra]


def start_redis(data, fsync, budget=NO_BUDGET):
    port = free_port()
    log = open(os.path.join(data, "server.log"), "w")
    process = subprocess.Popen(pinned(redis_args(port, data, fsync), budget),
                               stdout=log, stderr=log)
    wait_port(port, process=process)
    return process, port


def start_server(setting, binary, data, budget):
    """The server of `setting` (RustKV's from `binary`), on a fresh port."""
    system, _, fsync = setting
    if system == "rustkv":
        return start_rustkv(binary, data, fsync, budget)
    return start_redis(data, fsync, budget)


def stop(process, timeout=60):
    """SIGTERM (a graceful stop for both), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SyncCounter:
    """Counts a process's fdatasync/fsync calls with `perf stat` on their tracepoints
    (in-kernel counting: no per-call cost to speak of). Inert when perf cannot."""

    def __init__(self, pid, enabled):
        self.process = None
        if not enabled:
            return
        self.process = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", ",".join(SYNC_EVENTS), "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)  # attached before the load starts

    def stop(self):
        """The number of calls, or None."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=10)
        counts = [line.split(",")[0] for line in err.splitlines() if "sys_enter_" in line]
        if len(counts) != len(SYNC_EVENTS) or not all(c.isdigit() for c in counts):
            return None
        return sum(int(c) for c in counts)


def perf_works():
    if not shutil.which("perf"):
        return False
    probe = subprocess.run(["perf", "stat", "-x", ",", "-e", ",".join(SYNC_EVENTS), "true"],
                           capture_output=True, text=True)
    return probe.returncode == 0 and "not supported" not in probe.stderr


def wrk_put(port, seconds):
    environment = dict(os.environ, KEYS=str(KEYS), MODE="native", TTL="")
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s",
               "--latency", "-s", os.path.join(HERE, "wrk", "put.lua"),
               f"http://127.0.0.1:{port}"]
    out = subprocess.run(command, capture_output=True, text=True, env=environment,
                         check=True).stdout
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p99_ms": float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)],
        "bad": (int(bad.group(1)) if bad else 0) + (1 if errors else 0),
    }


def redis_benchmark(port, requests):
    command = ["taskset", "-c", "1", "redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
               "-t", "set", "-c", str(CONNECTIONS), "-n", str(requests), "-r", str(KEYS),
               "-d", str(VALUE_BYTES), "--csv"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith('"SET"'))
    fields = [field.strip('"') for field in row.split(",")]
    return {"rate": float(fields[1]), "requests": requests, "p99_ms": float(fields[6]),
            "bad": 0}


def one_run(args, setting, redis_requests):
    """Starts a fresh server for `setting`, loads it, stops it; answers the figures."""
    system, label, _ = setting
    data = fresh_dir(args.data, f"{system}-{label}")
    process, port = start_server(setting, args.binary, data, args.budget)
    try:
        counter = SyncCounter(process.pid, args.perf)
        cpu_before, started = cpu_seconds(process.pid), time.time()
        if system == "rustkv":
            result = wrk_put(port, args.duration)
        else:
            result = redis_benchmark(port, redis_requests)
        result["seconds"] = time.time() - started
        result["cpu_us"] = (cpu_seconds(process.pid) - cpu_before) / result["requests"] * 1e6
        result["syncs"] = counter.stop()
    finally:
        stop(process)
    result["disk_mb"] = dir_bytes(os.path.join(data, "data" if system == "rustkv" else
                                               "appendonlydir")) / 1e6
    return result


def calibrate(args):
    """Redis's request count per setting, so that a run lasts about --duration."""
    counts = {}
    for setting in args.settings:
        if setting[0] == "redis":
            probe = one_run(args, setting, 20_000)
            counts[setting] = max(20_000, int(probe["rate"] * args.duration))
    return counts


def describe(setting, round_no, result):
    system, label, _ = setting
    syncs = result["syncs"]
    sync_text = ""
    if syncs is not None:
        per_sync = f"{result['requests'] / syncs:7.1f}" if syncs else "      -"
        sync_text = (f"  syncs {syncs:6d} ({syncs / result['seconds']:6.1f}/s, "
                     f"{per_sync} req/sync)")
    print(f"  round {round_no + 1} {system:6} {label:8} {result['rate']:9.0f} req/s  "
          f"p99 {result['p99_ms']:7.2f} ms  cpu {result['cpu_us']:5.1f} us/req  "
          f"disk {result['disk_mb']:6.1f} MB{sync_text}  errors {result['bad']}", flush=True)


def summary(results, rounds, version):
    """Medians per setting and, per system, medians of the per-round on/off ratios."""
    systems = [system for system in ("rustkv", "redis") if (system, "off") in results]
    names = {"rustkv": "RustKV", "redis": f"Redis {version}"}
    print(f"\nmedians of {rounds} rounds (req/s; in brackets server CPU us/req, "
          f"requests per fdatasync):")
    print(f"  {'':14}" + "".join(f"{names[s]:>30}" for s in systems))
    labels = [label for label in ("off", "everysec", "always") if (systems[0], label) in results]
    for label in labels:
        cells = []
        for system in systems:
            runs = results[(system, label)]
            syncs = [r["requests"] / r["syncs"] for r in runs if r["syncs"]]
            per_sync = f", {statistics.median(syncs):.0f}" if syncs else ""
            cells.append(f"{statistics.median(r['rate'] for r in runs):,.0f} "
                         f"({statistics.median(r['cpu_us'] for r in runs):.1f}{per_sync})")
        print(f"  {label:14}" + "".join(f"{cell:>30}" for cell in cells))
    goals = {label: goal for label, goal in (("everysec", 0.90), ("always", 0.50))
             if label in labels}
    for label, goal in goals.items():
        cells = []
        for system in systems:
            ratios = [on["rate"] / off["rate"] for on, off in
                      zip(results[(system, label)], results[(system, "off")])]
            mark = ""
            if system == "rustkv":
                mark = "  met" if statistics.median(ratios) >= goal else "  MISSED"
            cells.append(f"{statistics.median(ratios):.3f} ({min(ratios):.2f}-"
                         f"{max(ratios):.2f}){mark}")
        print(f"  {label + '/off':14}" + "".join(f"{cell:>30}" for cell in cells)
              + f"   RustKV goal >= {goal:.2f}")
    print("server CPU per request, on/off (median of per-round ratios):")
    for label in goals:
        cells = []
        for system in systems:
            ratios = [on["cpu_us"] / off["cpu_us"] for on, off in
                      zip(results[(system, label)], results[(system, "off")])]
            cells.append(f"{statistics.median(ratios):.2f}")
        print(f"  {label + '/off':14}" + "".join(f"{cell:>30}" for cell in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rustkv"))
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data", "persist"))
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--no-perf", dest="perf", action="store_false",
                        help="do not count fdatasync calls with perf")
    parser.add_argument("--only", metavar="LABELS", default="off,everysec,always",
                        help="the persistence settings to run, of off,everysec,always")
    add_cpu_budget(parser)
    args = parser.parse_args()
    args.budget = cpu_budget(args)
    ensure_wrk()
    labels = set(args.only.split(",")) | {"off"}
    settings = [s for s in SETTINGS
                if s[1] in labels and not (args.skip_redis and s[0] == "redis")]
    version = "-"
    if not args.skip_redis:
        ensure_redis()
        version = redis_version()
    args.perf = args.perf and perf_works()
    args.settings = settings
    os.makedirs(args.data, exist_ok=True)
    budget = f" ({args.cpu_budget:g}% of it)" if args.cpu_budget else ""
    print(f"data on {filesystem_of(args.data)} ({args.data}); servers on CPU 0{budget}, "
          f"load on CPU 1; {args.rounds} rounds x {args.duration} s; "
          f"sync counts {'from perf' if args.perf else 'off'}", flush=True)
    redis_requests = {} if args.skip_redis else calibrate(args)
    results = {}
    for round_no in range(args.rounds):
        order = settings if round_no % 2 == 0 else settings[::-1]
        for setting in order:
            result = one_run(args, setting, redis_requests.get(setting))
            describe(setting, round_no, result)
            results.setdefault(setting[:2], []).append(result)
            if setting[0] == "redis":  # keep later runs near --duration
                redis_requests[setting] = max(20_000, int(result["rate"] * args.duration))
    summary(results, args.rounds, version)


if __name__ == "__main__":
    main()
