#!/usr/bin/env python3
"""Memory per key: RustKV against Redis, for the same 1,000,000 keys and values.

Loads key0..key{N-1}, each holding {"name":"Alice","age":30,"tags":["a","b"]}, into a
fresh RustKV (release build, PUT /v1/kv/{key}, pipelined HTTP/1.1 on loopback) and a
fresh redis-server (SET, pipelined RESP, maxmemory unset, values as strings), and
prints for each the resident memory after loading minus the resident memory when
empty (VmRSS from /proc), per key, and the ratio.

    python3 benches/memory_vs_redis.py            # 1,000,000 keys
    python3 benches/memory_vs_redis.py --keys 100000 --skip-redis
    python3 benches/memory_vs_redis.py --persistence --skip-redis
    python3 benches/memory_vs_redis.py --eviction tinylfu --skip-redis

RustKV runs with `store.eviction = "lru"` unless --eviction says otherwise; its capacity
is twice the keys, so nothing is evicted (W-TinyLFU's frequency sketch is sized to that
capacity, 8 bytes per entry of it: its share of the figure is printed).

With --persistence, RustKV is measured with [persistence] mode "off" and "aof" (fsync
everysec, data under target/bench-data/memory on the real disk), the latter also after a
graceful stop and a restart that replays the log: persistence should add no memory per
key (the log writer holds no copy of the data; the page cache holding the files is not
in the process's RSS and is not counted).

Needs `cargo build --release` first and redis-server (apt-get install redis-server;
the script installs it if missing). Everything runs on 127.0.0.1.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, wait_port  # noqa: E402  (benches/load.py)

VALUE = b'{"name":"Alice","age":30,"tags":["a","b"]}'
BATCH = 512
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def pipeline(sock, requests, count_replies):
    """Sends the requests in one write, then reads until all replies arrived."""
    sock.sendall(b"".join(requests))
    buffer = b""
    remaining = len(requests)
    while remaining:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        buffer += chunk
        done, buffer = count_replies(buffer)
        remaining -= done


def http_replies(buffer):
    """Counts complete HTTP responses (all carry Content-Length) at the front."""
    done = 0
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return done, buffer
        head = buffer[:end].decode("latin-1")
        if not head.startswith("HTTP/1.1 20"):
            raise RuntimeError(f"unexpected reply: {head!r}")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if len(buffer) < end + 4 + length:
            return done, buffer
        buffer = buffer[end + 4 + length:]
        done += 1


def resp_replies(buffer):
    count = buffer.count(b"+OK\r\n")
    if b"-" in buffer.replace(b"+OK\r\n", b""):
        raise RuntimeError(f"redis error: {buffer[:200]!r}")
    return count, buffer[count * 5:]


def load(port, keys, make_request, count_replies, connections=16):
    """Loads keys over `connections` sockets at once, each pipelining batches."""
    import threading

    def worker(first):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for start in range(first * BATCH, keys, BATCH * connections):
                batch = [make_request(i) for i in range(start, min(start + BATCH, keys))]
                pipeline(sock, batch, count_replies)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def rustkv_request(index):
    return (
        f"PUT /v1/kv/key{index} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(VALUE)}\r\n\r\n"
    ).encode() + VALUE


def redis_request(index):
    key = f"key{index}".encode()
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(VALUE), VALUE)


def measure(name, command, port, keys, make_request, count_replies, restart=False):
    """Bytes per key after loading; with `restart`, also after a graceful stop and a
    start that reloads them from disk (against the same empty baseline)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.5)
        empty = rss_bytes(process.pid)
        started = time.time()
        load(port, keys, make_request, count_replies)
        took = time.time() - started
        time.sleep(1.0)  # let background work (ticks, epoch reclamation) settle
        loaded = rss_bytes(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    per_key = (loaded - empty) / keys
    print(f"{name:12} empty {empty / 2**20:7.1f} MiB  loaded {loaded / 2**20:7.1f} MiB  "
          f"{per_key:6.1f} bytes/key  (load took {took:.1f} s)", flush=True)
    if not restart:
        return per_key, None
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=300, process=process)  # RustKV listens once recovered
        time.sleep(1.0)
        reloaded = rss_bytes(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    after = (reloaded - empty) / keys
    print(f"{name:12} restarted: loaded {reloaded / 2**20:7.1f} MiB  {after:6.1f} bytes/key "
          f"(against the empty RSS above)", flush=True)
    return per_key, after


def rustkv_config(port, keys, eviction, persistence=""):
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(f'[server]\nport = {port}\nworkers = 1\n[store]\ncapacity = {keys * 2}\n'
                     f'max_memory = "8GiB"\neviction = "{eviction}"\n[log]\nlevel = "warn"\n'
                     f'{persistence}')
    return config.name


def sketch_bytes(keys):
    """W-TinyLFU's frequency sketches for the capacity `rustkv_config` sets: one per
    partition (one per core, as `partitions = 0` resolves), 8 bytes per entry of the
    partition's capacity rounded up to a power of two (src/store/sketch.rs)."""
    capacity = keys * 2
    partitions = max(1, min(len(os.sched_getaffinity(0)), capacity // 1024))
    words = 1 << max(3, (capacity // partitions - 1).bit_length())
    return partitions * words * 8


def persistence_cost(args):
    """RustKV's bytes per key with persistence off, and with aof (everysec) after the
    PUTs and after a restart that replays them."""
    port = free_port()
    config = rustkv_config(port, args.keys, args.eviction)
    off, _ = measure("rustkv off", [args.binary, "--config", config], port, args.keys,
                     rustkv_request, http_replies)
    os.unlink(config)
    data = os.path.join(args.data, "rustkv")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    port = free_port()
    config = rustkv_config(port, args.keys, args.eviction, f'[persistence]\nmode = "aof"\ndir = "{data}"\n'
                           f'fsync = "everysec"\n')
    aof, restarted = measure("rustkv aof", [args.binary, "--config", config], port,
                             args.keys, rustkv_request, http_replies, restart=True)
    os.unlink(config)
    print(f"aof / off: {aof / off:.2f} after the PUTs, {restarted / off:.2f} after the "
          f"restart (1.00 means persistence adds no memory per key)")
    return off


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--binary", default="target/release/rustkv")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--eviction", choices=["lru", "tinylfu"], default="lru",
                        help="RustKV's store.eviction")
    parser.add_argument("--persistence", action="store_true",
                        help="RustKV also with mode = \"aof\", and after a restart")
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-data", "memory"),
                        help="the aof data directory's parent (a real disk)")
    args = parser.parse_args()

    if args.persistence:
        ours = persistence_cost(args)
    else:
        port = free_port()
        config = rustkv_config(port, args.keys, args.eviction)
        ours, _ = measure("rustkv", [args.binary, "--config", config], port,
                          args.keys, rustkv_request, http_replies)
        os.unlink(config)
    if args.eviction == "tinylfu":
        print(f"of which W-TinyLFU's sketch: {sketch_bytes(args.keys) / args.keys:.1f} bytes/key "
              f"(8 bytes per entry of the capacity, {args.keys * 2})")
    if args.skip_redis:
        return
    if not shutil.which("redis-server"):
        print("installing redis-server from apt ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True)
    port = free_port()
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    theirs, _ = measure(f"redis {version.split('=')[-1]}",
                        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save",
                         "", "--appendonly", "no"], port, args.keys, redis_request, resp_replies)
    print(f"ratio rustkv / redis: {ours / theirs:.2f} (<= 1.00 means RustKV needs no more memory per key)")


if __name__ == "__main__":
    main()
