#!/usr/bin/env python3
"""HTTPS against plain HTTP: the cost of [tls] on one machine, side by side.

Run from the project root after `cargo build --release`:

    python3 benches/tls_vs_plain.py                       # 5 rounds x 8 s per run
    python3 benches/tls_vs_plain.py --rounds 3 --duration 4

Two servers run throughout, the same binary and config but for [tls]: one plain, one
with a throwaway ECDSA P-256 certificate (openssl, into --data), each pinned to CPU 0
with one HTTP worker, both preloaded with key0..key9999. The load generator, wrk on
CPU 1 (it speaks TLS through OpenSSL, HTTP/1.1 only), runs per round:

    get        native GET /v1/kv/key<random>, 64 keep-alive connections
    put        native PUT of a 42-byte JSON value, no TTL, 64 keep-alive connections
    handshake  GET /health with "Connection: close", 16 connections: a new TCP
               connection per request, and over HTTPS a full TLS 1.3 handshake
               (wrk does not resume sessions)

against each server, the order reversed every other round. Prints every run (req/s,
p99, server CPU per request from /proc), then per workload the medians and the median
of the per-round HTTPS/plain ratios (throughput and CPU per request; the CPU ratio is
the steadier of the two when other work shares the machine).

Not measured: HTTP/2 (wrk speaks HTTP/1.1 only), mutual TLS, RSA certificates (a
2048-bit RSA signature costs several times an ECDSA P-256 one), large values, more
than one worker, or a network between client and server (loopback).
"""
import argparse
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_binaries import cpu_seconds  # noqa: E402  (benches/ab_binaries.py)
from load import VALUE, ensure_wrk, free_port, wait_port  # noqa: E402  (benches/load.py)
from persist_vs_redis import stop  # noqa: E402  (benches/persist_vs_redis.py)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEYS = 10_000
BATCH = 256
# workload -> (wrk script, connections, extra wrk arguments)
WORKLOADS = {
    "get": ("get.lua", 64, []),
    "put": ("put.lua", 64, []),
    "handshake": (None, 16, ["-H", "Connection: close"]),
}


def make_certificate(directory):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, as the README makes one."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "7", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def start(binary, directory, name, tls):
    port = free_port()
    config = os.path.join(directory, f"{name}.toml")
    section = f'[tls]\ncert = "{tls[0]}"\nkey = "{tls[1]}"\n' if tls else ""
    with open(config, "w") as file:
        file.write(f'[server]\nbind = "127.0.0.1"\nport = {port}\nworkers = 1\n'
                   f'[store]\ncapacity = 1000000\nmax_memory = "8GiB"\n'
                   f'[log]\nlevel = "warn"\n{section}')
    log = open(os.path.join(directory, f"{name}.log"), "w")
    process = subprocess.Popen(["taskset", "-c", "0", binary, "--config", config],
                               stdout=log, stderr=log, env=dict(os.environ, RUST_LOG="warn"))
    wait_port(port, process=process)
    return process, port


def preload(port, cafile):
    """PUTs key0..key9999, pipelined in batches on one connection (TLS with `cafile`)."""
    sock = socket.create_connection(("127.0.0.1", port))
    if cafile:
        sock = ssl.create_default_context(cafile=cafile).wrap_socket(
            sock, server_hostname="localhost")
    with sock:
        for start in range(0, KEYS, BATCH):
            batch = [(f"PUT /v1/kv/key{index} HTTP/1.1\r\nHost: b\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(VALUE)}\r\n\r\n"
                      ).encode() + VALUE for index in range(start, min(start + BATCH, KEYS))]
            sock.sendall(b"".join(batch))
            buffer = b""
            while buffer.count(b"HTTP/1.1 ") < len(batch):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise SystemExit("connection closed during preload")
                buffer += chunk
            if b"HTTP/1.1 4" in buffer or b"HTTP/1.1 5" in buffer:
                raise SystemExit(f"preload failed: {buffer[:300]!r}")


def run(process, port, tls, workload, seconds):
    script, connections, extra = WORKLOADS[workload]
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}" + ("/health" if script is None else "")
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
               "--latency", *extra]
    if script:
        command += ["-s", os.path.join(HERE, "wrk", script)]
    environment = dict(os.environ, KEYS=str(KEYS), PATH_FMT="/v1/kv/%s", MODE="native", TTL="")
    before = cpu_seconds(process.pid)
    out = subprocess.run(command + [url], capture_output=True, text=True, env=environment,
                         check=True).stdout
    used = cpu_seconds(process.pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99_ms": float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)],
        "cpu_us": used / max(requests, 1) * 1e6,
        "bad": int(bad.group(1)) if bad else 0,
        "errors": errors.group(1) if errors else "",
    }


def summary(results, rounds):
    print(f"\nmedians of {rounds} rounds: req/s (server CPU us/req); HTTPS/plain as the "
          f"median of per-round ratios (min-max)")
    print(f"  {'':10}{'plain':>20}{'HTTPS':>20}{'rate ratio':>22}{'CPU ratio':>12}")
    for workload in WORKLOADS:
        plain, tls = results[(workload, False)], results[(workload, True)]
        cells = [f"{statistics.median(r['rate'] for r in runs):,.0f} "
                 f"({statistics.median(r['cpu_us'] for r in runs):.1f})" for runs in (plain, tls)]
        rates = [t["rate"] / p["rate"] for t, p in zip(tls, plain)]
        cpus = [t["cpu_us"] / p["cpu_us"] for t, p in zip(tls, plain)]
        print(f"  {workload:10}{cells[0]:>20}{cells[1]:>20}"
              f"{statistics.median(rates):>10.3f} ({min(rates):.2f}-{max(rates):.2f})"
              f"{statistics.median(cpus):>12.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rustkv"))
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data", "tls"))
    args = parser.parse_args()
    ensure_wrk()
    os.makedirs(args.data, exist_ok=True)
    tls_files = make_certificate(args.data)
    servers = {False: start(args.binary, args.data, "plain", None),
               True: start(args.binary, args.data, "https", tls_files)}
    try:
        preload(servers[False][1], None)
        preload(servers[True][1], tls_files[0])
        print(f"servers on CPU 0 (1 worker each), wrk on CPU 1; {args.rounds} rounds x "
              f"{args.duration} s", flush=True)
        results = {}
        runs = [(workload, tls) for workload in WORKLOADS for tls in (False, True)]
        for round_no in range(args.rounds):
            for workload, tls in runs if round_no % 2 == 0 else runs[::-1]:
                process, port = servers[tls]
                result = run(process, port, tls, workload, args.duration)
                results.setdefault((workload, tls), []).append(result)
                print(f"  round {round_no + 1} {workload:9} {'HTTPS' if tls else 'plain':5} "
                      f"{result['rate']:9.0f} req/s  p99 {result['p99_ms']:7.2f} ms  "
                      f"cpu {result['cpu_us']:6.1f} us/req  non-2xx {result['bad']}"
                      f"{'  socket errors ' + result['errors'] if result['errors'] else ''}",
                      flush=True)
        summary(results, args.rounds)
    finally:
        for process, _ in servers.values():
            stop(process)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
