"""A TCP proxy that puts a network hop between the bench's clients and a broker on loopback.

Every chunk read from one side is written to the other ``delay`` seconds after it arrived
(``python -m bench.proxy --target 127.0.0.1:6379 --delay-ms 0.25``): a round trip through it
takes at least twice the delay, as on a link of that one-way latency. Each direction of each
connection has a reader thread (``recv``, time stamp, queue) and a writer thread (waits until the
chunk's due time, ``sendall``), so bytes stay in order per direction and chunks in flight
overlap: a chunk's delivery time is its arrival + delay, never the previous chunk's delivery +
delay. No bandwidth limit, no loss, no jitter beyond the scheduler's (the lateness of every
delivery is counted and printed when the proxy stops; the process asks Linux for a 1 ns timer
slack so that short sleeps end on time). ``TCP_NODELAY`` on every socket: the proxy adds no
Nagle delay of its own.

The bench runs it in its own process (:func:`start`), so its threads never take the GIL of the
measured process; the unit tests use :class:`LatencyProxy` in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CHUNK = 65536
MAX_SAMPLES = 1_000_000  # lateness samples kept for the stats
DEFAULT_DELAY_MS = 0.25


class LatencyProxy:
    """Listen on ``listen`` (port 0: a free one), forward every connection to ``target``, each
    chunk ``delay`` seconds late in each direction."""

    def __init__(self, target: tuple[str, int], delay: float, listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.target = target
        self.delay = delay
        self.server = socket.create_server(listen, backlog=128)
        self.connections = 0
        self.chunks = 0
        self.bytes = 0
        self.lateness: list[float] = []  # seconds each delivery started after its due time (the first MAX_SAMPLES)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def start(self) -> LatencyProxy:
        threading.Thread(target=self.serve, name="proxy-accept", daemon=True).start()
        return self

    def serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, upstream))
            pair = _Pair(self, client, upstream)
            for src, dst, name in ((client, upstream, "up"), (upstream, client, "down")):
                q: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
                threading.Thread(target=self._read, args=(src, q), name=f"proxy-{name}-read", daemon=True).start()
                threading.Thread(
                    target=self._write, args=(dst, q, pair), name=f"proxy-{name}-write", daemon=True
                ).start()

    def _read(self, src: socket.socket, q: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _write(self, dst: socket.socket, q: queue.SimpleQueue[tuple[float, bytes]], pair: _Pair) -> None:
        try:
            while True:
                due, data = q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:  # the other side closed (or failed): pass the end of stream on
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                late = time.monotonic() - due
                with self._lock:
                    self.chunks += 1
                    self.bytes += len(data)
                    if len(self.lateness) < MAX_SAMPLES:
                        self.lateness.append(late)
                dst.sendall(data)
        except OSError:
            pair.abort()  # a write failed: drop the connection both ways
        finally:
            pair.done()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            late = sorted(self.lateness)

        def at(q: float) -> float:
            return late[min(len(late) - 1, int(q * len(late)))] * 1000 if late else 0.0

        return {
            "delay_ms": self.delay * 1000,
            "connections": self.connections,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "late_ms_p50": at(0.5),
            "late_ms_p99": at(0.99),
            "late_ms_max": late[-1] * 1000 if late else 0.0,
        }

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.server.close()
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)


class _Pair:
    """One proxied connection: both sockets are closed once both directions have ended."""

    def __init__(self, proxy: LatencyProxy, a: socket.socket, b: socket.socket) -> None:
        self.proxy = proxy
        self.sockets = (a, b)
        self.open_directions = 2
        self.lock = threading.Lock()

    def abort(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the readers: their recv returns b""

    def done(self) -> None:
        with self.lock:
            self.open_directions -= 1
            last = self.open_directions == 0
        if last:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.close()
            self.proxy._forget(*self.sockets)


# -- the bench's side: a proxy process in front of a broker URL -------------------------------------
def via(url: str, port: int) -> str:
    """``url`` with its host:port replaced by the proxy's (127.0.0.1:``port``); credentials, path
    (database, vhost) and query kept."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def target_of(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


class ProxyProcess:
    """``python -m bench.proxy`` in its own process (started by the harness, stopped by PID)."""

    def __init__(self, proc: Any, port: int, delay_ms: float) -> None:
        self.proc = proc
        self.port = port
        self.delay_ms = delay_ms

    def url(self, broker_url: str) -> str:
        return via(broker_url, self.port)

    def stats(self) -> dict[str, str]:
        """The proxy's last stats line (``stats key=value ...``), printed when it stopped."""
        for line in reversed(self.proc.output().splitlines()):
            if line.startswith("stats "):
                return dict(item.split("=", 1) for item in line.split()[1:])
        return {}


def start(harness: Any, target: tuple[str, int], delay_ms: float, name: str = "proxy") -> ProxyProcess:
    """Start a proxy process in front of ``target`` through ``harness.proc`` and wait for its port."""
    from .workers import PY, wait_until

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = harness.proc(
        [PY, "-m", "bench.proxy", "--target", f"{target[0]}:{target[1]}", "--delay-ms", f"{delay_ms:g}"],
        env,
        name,
    )

    def listening() -> int | None:
        for line in proc.output().splitlines():
            if line.startswith("listening "):
                return int(line.split()[1].rpartition(":")[2])
        return None

    port = wait_until(listening, 30, f"the latency proxy to {target[0]}:{target[1]}", interval=0.01, proc=proc)
    return ProxyProcess(proc, port, delay_ms)


def tight_timers() -> None:
    """Linux: a 1 ns timer slack for this thread and the threads it starts (the default, 50 µs,
    would make every 0.25 ms sleep up to 50 µs longer). Best effort: elsewhere, nothing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the broker")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on (port 0: a free one)")
    parser.add_argument("--delay-ms", type=float, default=DEFAULT_DELAY_MS, help="one-way delay per chunk")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    lhost, _, lport = args.listen.rpartition(":")
    proxy = LatencyProxy((host, int(port)), args.delay_ms / 1000, (lhost, int(lport)))

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tight_timers()  # before serve(): the connections' threads inherit it
    print(f"listening {lhost}:{proxy.port} -> {host}:{port}, {args.delay_ms:g} ms each way", flush=True)
    try:
        proxy.serve()
    finally:
        proxy.close()
        line = "stats " + " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in proxy.stats().items()
        )
        print(line, flush=True)
        os._exit(0)  # the daemon threads may be inside recv/sleep: do not wait for them


if __name__ == "__main__":
    main()
