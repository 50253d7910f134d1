#!/usr/bin/env python3
"""Persistence's cost per write, RustKV and Redis, in short slices taken in turn.

Run from the project root after `cargo build --release` (as root for --cpu-budget):

    python3 benches/persist_paired.py                        # 30 rounds x 2 s slices
    python3 benches/persist_paired.py --rounds 60 --cpu-budget 60
    python3 benches/persist_paired.py --only off,everysec,always

`persist_vs_redis.py` starts a fresh server for each run and runs each for seconds:
on this shared VM the host's load moves a server's speed by a third from one run to
the next, and the per-round ratios scatter from 0.65 to 1.30. Here every server (RustKV
and Redis, persistence off, everysec and, with --only, always) is started once, all
pinned to CPU 0 and idle but for the one under load, and the load (on CPU 1, 64
connections, the same clients and requests as `persist_vs_redis.py`) moves from one
to the next in slices of --slice seconds, the order reversed every other round. A
round's slices are seconds apart, so a round's ratios compare like with like; the
summary gives their medians, and the quartiles, which say how far to trust them.

Per slice it takes the server's CPU time (all its threads, /proc) and requests. The
ratios: throughput on/off and CPU time per request on/off, per system. With
--cpu-budget PERCENT each server (all its threads) sits in a CPU cgroup allowed that
share of a core, so that the server, not the load generator, is the bottleneck: on 2
cores redis-benchmark cannot saturate Redis from the other core (see
`persist_vs_redis.py`), and an unsaturated server's throughput hides what its log costs.

Not measured: latency at a fixed rate, crash safety, reads.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_binaries import cpu_seconds  # noqa: E402
from load import ensure_wrk  # noqa: E402
from persist_vs_redis import (KEYS, ROOT, SETTINGS, add_cpu_budget, cpu_budget,  # noqa: E402
                              ensure_redis, fresh_dir, redis_benchmark, redis_version,
                              start_server, stop, wrk_put)


def start_all(args, settings):
    """Every setting's server, started once: {setting: (process, port)}."""
    return {setting: start_server(setting, args.binary,
                                  fresh_dir(args.data, f"{setting[0]}-{setting[1]}"),
                                  args.budget)
            for setting in settings}


def load(setting, port, seconds, redis_rate):
    """One slice of load; Redis's by request count, from its last rate."""
    if setting[0] == "rustkv":
        return wrk_put(port, seconds)
    return redis_benchmark(port, max(KEYS, int(redis_rate * seconds)))


def one_slice(setting, server, seconds, rates):
    process, port = server
    cpu_before = cpu_seconds(process.pid)
    result = load(setting, port, seconds, rates.get(setting, 50_000))
    result["cpu_us"] = (cpu_seconds(process.pid) - cpu_before) / result["requests"] * 1e6
    rates[setting] = result["rate"]
    return result


def quartiles(values):
    if len(values) < 2:
        return f"{statistics.median(values):.3f}"
    q = statistics.quantiles(values, n=4)
    return f"{q[1]:.3f} ({q[0]:.3f}-{q[2]:.3f})"


def summary(results, settings, version):
    names = {"rustkv": "RustKV", "redis": f"Redis {version}"}
    systems = [s for s in ("rustkv", "redis") if (s, "off", None) in settings]
    rounds = len(results[settings[0]])
    print(f"\n{rounds} rounds; medians, then per-round ratios on/off as median "
          f"(quartiles):")
    for setting in settings:
        runs = results[setting]
        print(f"  {names[setting[0]]:14} {setting[1]:9} "
              f"{statistics.median(r['rate'] for r in runs):9,.0f} req/s  "
              f"cpu {statistics.median(r['cpu_us'] for r in runs):5.2f} us/req")
    for system in systems:
        off = results[(system, "off", None)]
        for setting in settings:
            if setting[0] != system or setting[1] == "off":
                continue
            on = results[setting]
            rate = [a["rate"] / b["rate"] for a, b in zip(on, off)]
            cpu = [a["cpu_us"] / b["cpu_us"] for a, b in zip(on, off)]
            print(f"  {names[system]:14} {setting[1] + '/off':14} throughput "
                  f"{quartiles(rate)}   cpu per request {quartiles(cpu)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--slice", type=int, default=2, help="seconds of load per slice")
    parser.add_argument("--only", metavar="LABELS", default="off,everysec",
                        help="the persistence settings, of off,everysec,always")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rustkv"))
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data", "paired"))
    add_cpu_budget(parser)
    args = parser.parse_args()
    args.budget = cpu_budget(args)
    ensure_wrk()
    ensure_redis()
    labels = set(args.only.split(",")) | {"off"}
    settings = [s for s in SETTINGS if s[1] in labels]
    os.makedirs(args.data, exist_ok=True)
    budget = f" ({args.cpu_budget:g}% of it each)" if args.cpu_budget else ""
    print(f"servers on CPU 0{budget}, load on CPU 1; {args.rounds} rounds of "
          f"{args.slice} s slices", flush=True)
    servers = start_all(args, settings)
    results, rates = {setting: [] for setting in settings}, {}
    try:
        for setting in settings:  # warm-up, and Redis's first rate
            one_slice(setting, servers[setting], 1, rates)
        for round_no in range(args.rounds):
            order = settings if round_no % 2 == 0 else settings[::-1]
            for setting in order:
                result = one_slice(setting, servers[setting], args.slice, rates)
                results[setting].append(result)
                print(f"  round {round_no + 1:2} {setting[0]:6} {setting[1]:8} "
                      f"{result['rate']:9.0f} req/s  cpu {result['cpu_us']:5.2f} us/req  "
                      f"errors {result['bad']}", flush=True)
    finally:
        for process, _ in servers.values():
            stop(process)
    summary(results, settings, redis_version())


if __name__ == "__main__":
    main()
