#!/usr/bin/env python3
"""Native PUT throughput of RustKV builds and persistence settings, side by side.

Run from the project root after `cargo build --release`:

    B=target/release/rustkv
    python3 benches/persist_ab.py off=$B:off es=$B:everysec
    python3 benches/persist_ab.py --rounds 10 --duration 4 \\
        off=$B:off new=$B:everysec old=../old/target/release/rustkv:everysec

Each argument is NAME=BINARY:FSYNC, FSYNC one of off, everysec, always, no. Each round
runs every setting once on a fresh server and data directory (the order reversed every
other round), set up as `benches/persist_vs_redis.py` does: server on CPU 0 with one
HTTP worker and its log writer, wrk on CPU 1 with 64 connections, `benches/wrk/put.lua`.

Per run it prints throughput, the server's CPU time per request (all threads) and its
context switches per request (voluntary and not, all threads: with persistence on,
about two per `write(2)` of the log writer, so their number shows how many writes
share one). At the end, per setting, the medians and the median of the per-round
ratios to the first setting.

Not measured: Redis (`persist_vs_redis.py`), reads, latency under a fixed rate.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_binaries import cpu_seconds  # noqa: E402
from persist_vs_redis import (ROOT, add_cpu_budget, cpu_budget, fresh_dir,  # noqa: E402
                              start_rustkv, stop, wrk_put)


def context_switches(pid):
    """Context switches so far of all of `pid`'s threads."""
    total = 0
    tasks = f"/proc/{pid}/task"
    for task in os.listdir(tasks):
        with open(f"{tasks}/{task}/status") as status:
            total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
    return total


def one_run(args, name, binary, fsync):
    data = fresh_dir(args.data, name)
    process, port = start_rustkv(binary, data, None if fsync == "off" else fsync, args.budget)
    try:
        cpu, switches = cpu_seconds(process.pid), context_switches(process.pid)
        result = wrk_put(port, args.duration)
        requests = result["requests"]
        result["cpu_us"] = (cpu_seconds(process.pid) - cpu) / requests * 1e6
        result["switches"] = (context_switches(process.pid) - switches) / requests
    finally:
        stop(process)
    return result


def parse_setting(text):
    name, _, rest = text.partition("=")
    binary, _, fsync = rest.rpartition(":")
    if not name or not binary or fsync not in ("off", "everysec", "always", "no"):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=BINARY:FSYNC")
    return name, binary, fsync


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="+", type=parse_setting)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data", "ab"))
    add_cpu_budget(parser)
    args = parser.parse_args()
    args.budget = cpu_budget(args)
    results = {name: [] for name, _, _ in args.settings}
    for round_no in range(args.rounds):
        order = args.settings if round_no % 2 == 0 else args.settings[::-1]
        for name, binary, fsync in order:
            result = one_run(args, name, binary, fsync)
            results[name].append(result)
            print(f"  round {round_no + 1} {name:12} {result['rate']:9.0f} req/s  "
                  f"cpu {result['cpu_us']:5.2f} us/req  switches {result['switches']:.3f}/req  "
                  f"p99 {result['p99_ms']:.2f} ms  errors {result['bad']}", flush=True)
    base = results[args.settings[0][0]]
    print(f"\nmedians of {args.rounds} rounds; ratios are medians of per-round ratios "
          f"to {args.settings[0][0]}:")
    for name, _, _ in args.settings:
        runs = results[name]
        rate = statistics.median(run["rate"] for run in runs)
        cpu = statistics.median(run["cpu_us"] for run in runs)
        switches = statistics.median(run["switches"] for run in runs)
        rate_ratio = statistics.median(run["rate"] / b["rate"] for run, b in zip(runs, base))
        cpu_ratio = statistics.median(run["cpu_us"] / b["cpu_us"] for run, b in zip(runs, base))
        print(f"  {name:12} {rate:9,.0f} req/s  cpu {cpu:5.2f} us/req  switches "
              f"{switches:.3f}/req  throughput ratio {rate_ratio:.3f}  cpu ratio {cpu_ratio:.3f}")


if __name__ == "__main__":
    main()
