"""The bench's latency proxy (bench/proxy.py): bytes intact and in order both ways, every chunk
delayed in each direction, chunks in flight not serialised behind one another's delay."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.proxy import LatencyProxy, via

ROOT = Path(__file__).resolve().parents[2]
DELAY = 0.05  # one way, seconds: large beside the scheduler's noise, small enough to keep the tests fast


@contextlib.contextmanager
def echo_server(greeting: bytes = b"") -> Iterator[tuple[str, int]]:
    """A TCP server that sends ``greeting`` first, then echoes every byte back."""
    server = socket.create_server(("127.0.0.1", 0))

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if greeting:
                conn.sendall(greeting)
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[:2]
    finally:
        server.close()


@contextlib.contextmanager
def proxied(delay: float = DELAY, greeting: bytes = b"") -> Iterator[socket.socket]:
    with echo_server(greeting) as target:
        proxy = LatencyProxy(target, delay).start()
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                yield client
        finally:
            proxy.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Blocks (the socket's timeout bounds the wait) until n bytes have come."""
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        assert data, f"connection closed after {len(buf)} of {n} bytes"
        buf += data
    return bytes(buf)


def test_bytes_forwarded_intact_and_in_order_both_ways() -> None:
    greeting = b"hello from the server\r\n"
    payload = os.urandom(300_000) + bytes(range(256)) * 100  # many chunks each way
    with proxied(delay=0.001, greeting=greeting) as client:
        assert recv_exactly(client, len(greeting)) == greeting  # server -> client alone
        received = bytearray()

        def read() -> None:
            received.extend(recv_exactly(client, len(payload)))

        reader = threading.Thread(target=read)
        reader.start()
        for i in range(0, len(payload), 7_919):  # uneven writes, while the echo streams back
            client.sendall(payload[i : i + 7_919])
        reader.join(timeout=30)
        assert not reader.is_alive()
        assert bytes(received) == payload
        client.shutdown(socket.SHUT_WR)  # end of stream passes through: the echo server closes
        assert client.recv(1) == b""


def test_a_round_trip_takes_at_least_twice_the_delay() -> None:
    with proxied() as client:
        for _ in range(3):
            start = time.perf_counter()
            client.sendall(b"x")
            assert recv_exactly(client, 1) == b"x"
            elapsed = time.perf_counter() - start
            assert elapsed >= 2 * DELAY, elapsed


def test_chunks_in_flight_are_not_serialised_behind_each_other() -> None:
    """A second chunk sent half a delay after the first comes back one round trip after it was
    sent (arrival + delay per leg), not after the first chunk's delivery + another delay."""
    delay = 0.1
    with proxied(delay) as client:
        start = time.perf_counter()
        client.sendall(b"a")
        second = start + delay / 2
        while time.perf_counter() < second:  # send the second one half a delay later, on the clock
            pass
        sent_b = time.perf_counter()
        client.sendall(b"b")
        assert recv_exactly(client, 1) == b"a"
        assert recv_exactly(client, 1) == b"b"
        rtt_b = time.perf_counter() - sent_b
        # on time: 2 delays; serialised behind "a" it would be 2.5 delays
        assert 2 * delay <= rtt_b < 2.35 * delay, rtt_b


def test_the_proxy_process_prints_its_port_and_forwards() -> None:
    """What the bench starts: ``python -m bench.proxy`` in its own process."""
    with echo_server() as (host, port):
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.proxy", "--target", f"{host}:{port}", "--delay-ms", "20"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the proxy listens
            assert line.startswith("listening "), line
            proxy_port = int(line.split()[1].rpartition(":")[2])
            with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as client:
                start = time.perf_counter()
                client.sendall(b"ping")
                assert recv_exactly(client, 4) == b"ping"
                assert time.perf_counter() - start >= 0.040
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "stats " in out and "chunks=2" in out, out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/0", "redis://127.0.0.1:9000/0"),
        ("amqp://guest:guest@127.0.0.1:5672/et-bench-x", "amqp://guest:guest@127.0.0.1:9000/et-bench-x"),
        ("redis://localhost/3?x=1", "redis://127.0.0.1:9000/3?x=1"),
    ],
)
def test_via_points_a_broker_url_at_the_proxy(url: str, expected: str) -> None:
    assert via(url, 9000) == expected
