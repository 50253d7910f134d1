"""The cluster scenario against config/cluster/ started by run.sh (tests/cluster.sh
starts it on free ports and runs this): keys through HAProxy land on exactly one
shard and its replica, the proxy derives RustKV's key, refuses what it cannot
route, and a shard survives kill -9 of its primary (reads from the replica,
promotion, writes, the old primary back as a replica that HAProxy sends no writes).

Standard library only. Exits non-zero with a message on the first failure."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

PROXY = int(os.environ["RUSTKV_CLUSTER_PORT"])
PRIMARIES = [int(os.environ[f"RUSTKV_SHARD{i}_PRIMARY_PORT"]) for i in (1, 2, 3)]
REPLICAS = [int(os.environ[f"RUSTKV_SHARD{i}_REPLICA_PORT"]) for i in (1, 2, 3)]
RUN = os.environ["RUSTKV_CLUSTER_RUN"]
BINARY = os.environ["RUSTKV"]
KEYS = 10_000
# Keys checked one by one on every primary (the rest by the nodes' key counts).
SAMPLE = 2_400


class Client:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    self.conn.connect()
                    # http.client sends head and body in two writes: without this,
                    # Nagle holds the body for the server's delayed ACK (~200 ms).
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return response.status, data
            except (ConnectionError, http.client.HTTPException, socket.timeout):
                self.close()
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def wait(what, limit, predicate):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.1)
    fail(f"timed out after {limit}s waiting until {what}")


def quote(key):
    return urllib.parse.quote(key, safe="")


def status_of(port):
    code, body = Client(port).request("GET", "/v1/replication")
    check(code == 200, f"GET /v1/replication on {port}: {code}")
    return json.loads(body)


def writable_shards():
    """The shards whose write backend HAProxy has a server UP in (its stats socket).
    A primary starts fenced until its replica connects, and HAProxy takes `rise`
    good checks to mark it UP again, so each shard becomes writable on its own."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stats:
        stats.settimeout(5)
        stats.connect(os.path.join(RUN, "haproxy.sock"))
        stats.sendall(b"show stat\n")
        text = b""
        while chunk := stats.recv(65536):
            text += chunk
    rows = [line.split(",") for line in text.decode().splitlines() if line and line[0] != "#"]
    return {row[0] for row in rows
            if row[0].endswith("_write") and row[1] not in ("FRONTEND", "BACKEND")
            and row[17] == "UP"}


def key_set():
    """Keys of every awkward kind: %2F and raw slashes, delete/ prefixes,
    non-ASCII (2, 3 and 4 UTF-8 bytes), quotes, backslashes, spaces and '+'."""
    shapes = ["plain{n}", "dir/sub/{n}", "delete/{n}", "é-{n}", "✓ {n}", "😀{n}",
              'q"uote{n}', "back\\slash{n}", "plus+{n}", "pct%{n}"]
    return [shapes[n % len(shapes)].format(n=n) for n in range(KEYS)]


def write(client, key, value, n):
    """Through the proxy, alternating route families and key encodings."""
    if n % 2 == 0:
        # ensure_ascii: non-ASCII keys travel as \\uXXXX escapes (surrogate pairs too).
        body = json.dumps({"key": key, "value": value}, ensure_ascii=n % 4 == 0)
        code, data = client.request("PUT", "/kv/insert", body.encode(),
                                    {"Content-Type": "application/json"})
    else:
        path = "/v1/kv/" + (quote(key) if n % 3 else urllib.parse.quote(key, safe="/"))
        code, data = client.request("PUT", path, json.dumps(value).encode(),
                                    {"Content-Type": "application/json"})
    return code, data


def stats_keys(port):
    code, body = Client(port).request("GET", "/v1/stats")
    check(code == 200, f"GET /v1/stats on {port}: {code}")
    return json.loads(body)["keys"]


def read_direct(port, key):
    code, body = Client(port).request("GET", "/v1/kv/" + quote(key))
    return json.loads(body) if code == 200 else None


def caught_up():
    """Every replica streams and holds its primary's position."""
    for primary, replica in zip(PRIMARIES, REPLICAS):
        p, r = status_of(primary), status_of(replica)
        if r.get("link") != "streaming" or r["position"] != p["position"]:
            return False
    return True


def main():
    started = time.monotonic()
    proxy = Client(PROXY)
    wait("every node answers", 30, lambda: all(
        Client(port).request("GET", "/health")[0] == 200 for port in PRIMARIES + REPLICAS))
    wait("HAProxy has a writable primary in every shard", 30,
         lambda: writable_shards() == {f"shard{i}_write" for i in (1, 2, 3)})
    wait("HAProxy routes writes", 30,
         lambda: write(proxy, "warm-up", 0, 1)[0] == 200 or write(proxy, "warm-up", 0, 1)[0] == 201)

    keys = key_set()
    for n, key in enumerate(keys):
        code, data = write(proxy, key, n, n)
        check(code in (200, 201), f"write {key!r}: {code} {data[:200]!r}")
    print(f"wrote {KEYS} keys through HAProxy in {time.monotonic() - started:.1f}s")
    wait("replicas reach their primaries' positions", 60, caught_up)

    # Every key on exactly one shard: the primaries' key counts add up to the keys
    # written (a key on two shards would count twice, a lost one not at all), and
    # each replica holds as many as its primary.
    counts = [stats_keys(port) for port in PRIMARIES]
    check(sum(counts) == KEYS + 1, f"primaries hold {counts} keys, {KEYS + 1} were written")
    for primary, replica in zip(PRIMARIES, REPLICAS):
        check(stats_keys(replica) == stats_keys(primary), f"replica of {primary} differs")
    for i, count in enumerate(counts):
        check(0.2 * KEYS < count < 0.47 * KEYS, f"shard {i + 1} holds {count} of {KEYS} keys")
    # And key by key for a sample: on one primary and its replica, with its value.
    primaries = [Client(port) for port in PRIMARIES]
    replicas = [Client(port) for port in REPLICAS]
    shard1 = []
    for n, key in enumerate(keys[:SAMPLE]):
        found = [i for i, conn in enumerate(primaries)
                 if conn.request("GET", "/v1/kv/" + quote(key))[0] == 200]
        check(len(found) == 1, f"{key!r} found on primaries {found}")
        code, body = replicas[found[0]].request("GET", "/v1/kv/" + quote(key))
        check(code == 200 and json.loads(body) == n, f"{key!r} on its replica: {code} {body!r}")
        if found[0] == 0:
            shard1.append((n, key))
    print(f"every key on exactly one shard and its replica; keys per shard: {counts}")

    # The proxy reads RustKV's key: GET /kv/delete/x reads "delete/x", DELETE
    # /kv/delete/x deletes "x"; a%2Fb and a/b are one key.
    check(proxy.request("GET", "/kv/delete/plain0")[0] == 404, "GET /kv/delete/plain0 found a key")
    code, body = proxy.request("GET", "/kv/delete/12")
    check(code == 200 and json.loads(body)["key"] == "delete/12", f"GET /kv/delete/12: {body!r}")
    code, _ = proxy.request("DELETE", "/kv/delete/plain0")
    check(code == 200, f"DELETE /kv/delete/plain0: {code}")
    check(proxy.request("GET", "/kv/plain0")[0] == 404, "plain0 survived DELETE /kv/delete/plain0")
    check(proxy.request("GET", "/kv/delete/12")[0] == 200, "delete/12 went too")
    code, body = proxy.request("GET", "/kv/dir%2Fsub%2F1")
    check(code == 200 and json.loads(body)["value"] == 1, f"dir%2Fsub%2F1: {code} {body!r}")

    # What the proxy cannot route, it refuses with a JSON 4xx.
    for method, path, body, want in [
        ("POST", "/v1/batch", b"[]", 421),
        ("GET", "/v1/kv", None, 421),
        ("GET", "/v1/kv?prefix=a", None, 421),
        ("POST", "/v1/txn", b"{}", 421),
        ("PUT", "/kv/insert", b"not json", 400),
        ("PUT", "/kv/insert", b'{"value": 1}', 400),
        ("PUT", "/kv/insert", b'{"key": 5, "value": 1}', 400),
        ("PUT", "/kv/insert", json.dumps({"key": "big", "value": "x" * 50_000}).encode(), 413),
        ("GET", "/v1/stats", None, 400),
    ]:
        code, data = proxy.request(method, path, body, {"Content-Type": "application/json"})
        check(code == want, f"{method} {path}: {code} (want {want}) {data[:200]!r}")
        json.loads(data)
    print("refusals: batch/scan/txn 421, unroutable 400, oversized 413, all JSON")

    # Failover of shard 1: kill -9 its primary with no write in flight.
    wait("replicas reach their primaries' positions", 30, caught_up)
    shard1 = [(n, k) for n, k in shard1 if k != "plain0"]
    with open(f"{RUN}/node-8101.pid") as pid_file:
        os.kill(int(pid_file.read()), signal.SIGKILL)
    killed_at = time.monotonic()
    sample = shard1[:300]
    wait("HAProxy reads shard 1 from its replica", 15,
         lambda: proxy.request("GET", "/v1/kv/" + quote(sample[0][1]))[0] == 200)
    for n, key in sample:
        code, body = proxy.request("GET", "/v1/kv/" + quote(key))
        check(code == 200 and json.loads(body) == n, f"read {key!r} after the kill: {code}")
    print(f"reads of shard 1 answered from its replica {time.monotonic() - killed_at:.1f}s after kill -9")

    code, body = Client(REPLICAS[0]).request("POST", "/v1/replication/promote")
    check(code == 200 and json.loads(body)["role"] == "primary", f"promote: {code} {body!r}")
    wait("HAProxy sends shard 1's writes to the promoted node", 15,
         lambda: write(proxy, sample[0][1], -1, 1)[0] == 200)
    acked = {}
    for n, key in shard1[:500]:
        code, _ = write(proxy, key, n + KEYS, n)
        check(code in (200, 201), f"write {key!r} after promotion: {code}")
        acked[key] = n + KEYS
    lost = sum(1 for n, key in shard1[500:]
               if read_direct(REPLICAS[0], key) != n)
    print(f"promoted; 500 writes acknowledged; acknowledged writes lost in the failover: {lost}")
    check(lost == 0, f"{lost} acknowledged writes lost")

    # The old primary comes back fenced (fence_on_start: no replica connects to
    # it), so HAProxy sends it no write even once it has been up longer than the
    # checks' rise; then it follows the new one, catches up, and takes no writes.
    config = f"{RUN}/node-8101.toml"
    log = open(f"{RUN}/node-8101.restarted.log", "w")
    old = subprocess.Popen([BINARY, "--config", config], stderr=log, stdout=log)
    with open(f"{RUN}/node-8101.restarted.pid", "w") as pid_file:
        pid_file.write(str(old.pid))
    wait("the old primary listens", 15,
         lambda: Client(PRIMARIES[0]).request("GET", "/health")[0] == 503)
    check(status_of(PRIMARIES[0])["fenced"], "the old primary is not fenced")
    time.sleep(2)  # longer than HAProxy's rise (3 checks 500ms apart)
    for n, key in shard1[200:300]:
        code, data = write(proxy, key, n + 3 * KEYS, n)
        check(code in (200, 201), f"write {key!r} with the old primary fenced: {code} {data!r}")
        acked[key] = n + 3 * KEYS
    held = json.loads(Client(PRIMARIES[0]).request("GET", "/v1/stats")[1])["keys"]
    check(held == 0, f"HAProxy sent the fenced old primary writes: it holds {held} keys")
    print("old primary back, fenced: 100 writes through HAProxy went to the promoted node")
    follow = json.dumps({"primary": f"http://127.0.0.1:{REPLICAS[0]}"}).encode()
    code, body = Client(PRIMARIES[0]).request("POST", "/v1/replication/follow", follow,
                                              {"Content-Type": "application/json"})
    check(code == 200, f"follow: {code} {body!r}")
    time.sleep(2)  # longer than HAProxy's rise (3 checks 500ms apart)
    for n, key in shard1[:200]:
        code, data = write(proxy, key, n + 2 * KEYS, n)
        check(code in (200, 201), f"write {key!r} with the old primary back: {code} {data!r}")
        acked[key] = n + 2 * KEYS
    wait("the old primary catches up", 30, lambda: (
        status_of(PRIMARIES[0])["position"] == status_of(REPLICAS[0])["position"]
        and status_of(PRIMARIES[0])["link"] == "streaming"))
    for key, value in acked.items():
        check(read_direct(PRIMARIES[0], key) == value, f"old primary lacks {key!r}")
    check(Client(PRIMARIES[0]).request("GET", "/health/primary")[0] == 503,
          "the old primary claims to be writable")
    print(f"old primary rejoined as a replica and caught up; HAProxy sent it no write; "
          f"total {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
