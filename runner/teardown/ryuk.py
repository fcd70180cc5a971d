"""A resource reaper that speaks testcontainers' Ryuk protocol, with one lease per connection.

Each line a client sends is a URL query such as `label=a=b&label=c=d`: one Docker filter set, answered
with `ACK`. When the connection that registered a filter set closes, the set is pruned after
RYUK_RECONNECTION_TIMEOUT, unless a live connection registers the same set in the meantime. Ryuk itself
waits until every client has gone, so one long-lived client keeps a killed client's resources alive.
On SIGTERM every filter set still known is pruned at once.

Only the standard library: the image carries nothing but Debian's python3. Run it as
`python3 -m runner.teardown.ryuk` or as a plain script.

Environment: RYUK_PORT (8080), RYUK_CONNECTION_TIMEOUT (60s), RYUK_RECONNECTION_TIMEOUT (10s),
DOCKER_HOST (unix:///var/run/docker.sock). Durations are written as in Go: "500ms", "10s", "1m30s".
"""

from __future__ import annotations

import datetime
import http.client
import itertools
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any

KINDS = ("containers", "networks", "volumes", "images")  # containers first: they keep the others in use
SPARED = {"org.testcontainers.ryuk": "true", "dev.runner.reaper": "true"}  # reapers, this one included
ORCHESTRATED = "com.docker.swarm."  # an orchestrator owns these and would start them again
ENDED = ("exited", "dead")  # an orchestrator's container in these states is only kept history
RETRIES = 10
RETRY_DELAY = 0.5
POLL = 0.5
ENGINE_ERRORS = (OSError, http.client.HTTPException, ValueError)  # socket, protocol, JSON

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TERM = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")  # "ms" before "m" and "s"
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def log(message: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    print(f"{stamp} {message}", flush=True)


def parse_duration(text: str) -> float:
    """Seconds in a Go duration; a bare number is taken as seconds."""
    text = text.strip()
    if re.fullmatch(_NUMBER, text):
        return float(text)
    if not re.fullmatch(f"(?:{_TERM.pattern})+", text):
        raise ValueError(f"not a duration: {text!r} (write it like 500ms, 10s or 1m)")
    return sum(float(number) * _UNIT[unit] for number, unit in _TERM.findall(text))


def parse_filters(line: str) -> dict[str, list[str]]:
    """The Docker filters in one protocol line; blank values are dropped."""
    return urllib.parse.parse_qs(line.strip())


def filter_key(filters: dict[str, list[str]]) -> str | None:
    """One string per distinct filter set, whatever the order of its terms; None for an empty set,
    which Docker would read as "everything"."""
    if not filters:
        return None
    return json.dumps({name: sorted(set(values)) for name, values in filters.items()}, sort_keys=True)


def error_message(body: Any) -> str:
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Engine:
    """The few Docker Engine API calls a prune needs."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def call(self, method: str, path: str) -> tuple[int, Any]:
        # A connection per call: prunes run in several threads, and calls are rare.
        connection = UnixHTTPConnection(self.socket_path)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        return response.status, json.loads(body) if body else None

    def matching(self, kind: str, filters: dict[str, list[str]]) -> list[str]:
        query = urllib.parse.urlencode({"filters": json.dumps(filters)})
        path = {
            "containers": f"/containers/json?all=1&{query}",
            "images": f"/images/json?{query}",
        }.get(kind, f"/{kind}?{query}")
        status, body = self.call("GET", path)
        if status != 200:
            raise OSError(f"listing {kind} failed: {status} {error_message(body)}")
        items = (body["Volumes"] or []) if kind == "volumes" else body
        return [
            item["Name"] if kind == "volumes" else item["Id"]
            for item in items
            if not SPARED.items() & (item.get("Labels") or {}).items()
            and (
                not any(key.startswith(ORCHESTRATED) for key in item.get("Labels") or {})
                # a Swarm job's container that ended: the service never starts it again (a run's own,
                # matched by the run's label; a live service's running containers are never touched)
                or item.get("State") in ENDED
            )
        ]

    def remove(self, kind: str, ident: str) -> bool:
        """True when this call removed it, False when it was already gone."""
        query = {"containers": "?force=1&v=1", "volumes": "?force=1", "images": "?force=1"}.get(kind, "")
        for _ in range(RETRIES):
            status, body = self.call("DELETE", f"/{kind}/{ident}{query}")
            if status in (200, 204):
                return True
            if status == 404:
                return False
            # 409 and 500 cover "in use" and "removal already in progress", which pass on their own.
            if status not in (409, 500):
                break
            time.sleep(RETRY_DELAY)
        raise OSError(f"removing {kind} {ident} failed: {status} {error_message(body)}")

    def prune(self, filters: dict[str, list[str]]) -> dict[str, int]:
        """Remove what matches `filters`, kind by kind; how many of each kind this removed."""
        removed = dict.fromkeys(KINDS, 0)
        # The second pass catches what a create call still in flight during the first one added.
        for _ in range(2):
            for kind in KINDS:
                try:
                    for ident in self.matching(kind, filters):
                        try:
                            removed[kind] += self.remove(kind, ident)
                        except ENGINE_ERRORS as error:
                            log(str(error))
                except ENGINE_ERRORS as error:
                    log(str(error))  # e.g. a filter networks do not know; the other kinds still go
        return removed


class Leases:
    """Which connections hold which filter set, and the sets waiting out their reconnection timeout."""

    def __init__(self, engine: Engine, reconnection_timeout: float) -> None:
        self.engine = engine
        self.reconnection_timeout = reconnection_timeout
        self.lock = threading.Condition()
        self.held: dict[str, set[int]] = {}
        self.waiting: dict[str, threading.Timer] = {}
        self.connections = 0
        self.pruning = 0
        self.ever_connected = False
        self.stopping = False
        self.changed = time.monotonic()

    def open(self) -> None:
        with self.lock:
            self.connections += 1
            self.ever_connected = True

    def hold(self, connection: int, key: str) -> None:
        with self.lock:
            self.held.setdefault(key, set()).add(connection)
            timer = self.waiting.pop(key, None)
        if timer:
            timer.cancel()
            log(f"connection {connection} took over {key}")

    def close(self, connection: int, keys: set[str]) -> None:
        with self.lock:
            self.connections -= 1
            self.changed = time.monotonic()
            for key in keys:
                holders = self.held.get(key, set())
                holders.discard(connection)
                if holders or self.stopping:
                    continue
                del self.held[key]
                timer = threading.Timer(self.reconnection_timeout, self._expire, args=(key,))
                timer.daemon = True
                self.waiting[key] = timer
                timer.start()
                log(f"connection {connection} closed: pruning {key} in {self.reconnection_timeout:g}s")

    def _expire(self, key: str) -> None:
        with self.lock:
            # A reconnection may have taken the set over while this timer was firing.
            if self.waiting.get(key) is not threading.current_thread():
                return
            del self.waiting[key]
            self.pruning += 1
        try:
            self.prune(key)
        finally:
            with self.lock:
                self.pruning -= 1
                self.changed = time.monotonic()
                self.lock.notify_all()

    def prune(self, key: str) -> None:
        removed = self.engine.prune(json.loads(key))
        log(f"pruned {key}: " + ", ".join(f"{count} {kind}" for kind, count in removed.items()))

    def idle_for(self) -> float:
        with self.lock:
            if self.connections or self.waiting or self.pruning:
                return 0.0
            return time.monotonic() - self.changed

    def stop(self) -> None:
        """Prune every filter set still known, held or waiting, and let the prunes under way finish."""
        with self.lock:
            self.stopping = True
            keys = set(self.held) | set(self.waiting)
            for timer in self.waiting.values():
                timer.cancel()
            self.held.clear()
            self.waiting.clear()
        for key in sorted(keys):
            self.prune(key)
        with self.lock:
            self.lock.wait_for(lambda: not self.pruning, timeout=60)


def serve(conn: socket.socket, connection: int, leases: Leases) -> None:
    keys: set[str] = set()
    try:
        with conn, conn.makefile("rb") as lines:
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                key = filter_key(parse_filters(line))
                if key is None:
                    log(f"connection {connection} sent no filter: {line!r}")
                else:
                    leases.hold(connection, key)
                    if key not in keys:
                        keys.add(key)
                        log(f"connection {connection} holds {key}")
                # Ryuk acknowledges a line it could not use too; a client waiting for the ACK would hang.
                conn.sendall(b"ACK\n")
    except OSError:
        pass  # a client that went away without reading its ACKs; the lease ends all the same
    finally:
        leases.close(connection, keys)


def docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def register(conn: socket.socket, filters: str) -> bool:
    """A client's side of the protocol: send one filter line, and tell whether the reaper acknowledged it.
    Raises OSError when the connection fails."""
    conn.sendall(filters.strip().encode() + b"\n")
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = conn.recv(16)
        if not chunk:
            break
        answer += chunk
    return answer.strip() == b"ACK"


def hold_lease(filters: str, port: int) -> int:
    """`ryuk.py lease FILTERS`, run inside the reaper's container by a client that holds its stdin open:
    registers FILTERS over the local protocol, prints ACK, and keeps the connection until stdin ends.
    The client's engine connection carries the lease, so no port needs publishing, and the lease breaks
    when the client, or its whole machine, goes away."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            if not register(conn, filters):
                print(f"ryuk: no ACK for {filters!r}", file=sys.stderr, flush=True)
                return 1
            print("ACK", flush=True)
            conn.settimeout(None)
            while os.read(0, 4096):
                pass
    except OSError as error:
        print(f"ryuk: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "lease":
        return hold_lease(sys.argv[2], int(os.environ.get("RYUK_PORT", "8080")))
    try:
        port = int(os.environ.get("RYUK_PORT", "8080"))
        connection_timeout = parse_duration(os.environ.get("RYUK_CONNECTION_TIMEOUT", "60s"))
        reconnection_timeout = parse_duration(os.environ.get("RYUK_RECONNECTION_TIMEOUT", "10s"))
    except ValueError as error:
        print(f"ryuk: {error}", file=sys.stderr)
        return 2

    # Listen before announcing it: clients that wait for this line connect at once, and behind Docker's
    # port proxy a connection made before the server listens is accepted by the proxy, then dropped.
    inherited = os.environ.get("RYUK_LISTEN_FD")  # the image's launcher listened before this started
    server = socket.socket(fileno=int(inherited)) if inherited else socket.create_server(("0.0.0.0", port))
    server.settimeout(POLL)
    log("Started!")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    leases = Leases(Engine(docker_socket()), reconnection_timeout)
    numbers = itertools.count(1)
    with server:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except TimeoutError:
                pass
            else:
                connection = next(numbers)
                log(f"connection {connection} from {address[0]}:{address[1]}")
                leases.open()  # before the thread starts, so the idle check below cannot miss it
                threading.Thread(target=serve, args=(conn, connection, leases), daemon=True).start()
            if leases.idle_for() >= connection_timeout:
                reason = "idle" if leases.ever_connected else "no client connected"
                log(f"{reason} for {connection_timeout:g}s, exiting")
                return 0
    log("stopping: pruning every filter set still known")
    leases.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
