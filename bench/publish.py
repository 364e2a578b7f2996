"""Publish throughput: event-tasks ``send_event`` against plain Celery ``send_task``, same run.

Both publish the same event (envelope + payload as task arguments) to 3 subscribed queues on a
private redis-server (started and stopped here). Plain Celery routes through a kombu topic
exchange (``declare=[exchange]``, the only way it does not drop silently on Redis); event-tasks
pushes one copy per queue with its Lua script. Prints events/s (median of the rounds) and Redis
commands per event.

    python bench/publish.py [--events 5000] [--rounds 3] [--broker amqp://…]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from kombu import Connection  # noqa: E402

from event_tasks import catalog  # noqa: E402
from event_tasks.app import install  # noqa: E402
from event_tasks.envelope import SPECVERSION, format_time  # noqa: E402
from event_tasks.publisher import Publisher  # noqa: E402
from event_tasks.topology import declare, events_exchange, service_queue  # noqa: E402

EVENT_TYPE = "org.openedx.learning.probe.created.v1"
SERVICES = ("alpha", "beta", "gamma")


def start_redis() -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="et-bench-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", data], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0", data


def commands(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_flushdb", "cmdstat_del"))


def clear_queues(url: str) -> None:
    with Connection(url) as conn, conn.channel() as ch:
        for s in SERVICES:
            ch.queue_purge(f"events.{s}")


def plain_celery(url: str, n: int) -> float:
    app = Celery("plain", broker=url, set_as_current=False)
    app.conf.task_serializer = "json"
    exchange = events_exchange()
    now = time.time()
    with app.producer_or_acquire() as producer:
        start = time.perf_counter()
        for i in range(n):
            envelope = {"id": f"p{i}", "type": EVENT_TYPE, "source": "bench", "time": now,
                        "specversion": SPECVERSION, "key": None}
            app.send_task(EVENT_TYPE, args=[envelope, {"n": i, "note": ""}], exchange=exchange,
                          routing_key=EVENT_TYPE, declare=[exchange], producer=producer)
        return n / (time.perf_counter() - start)


def event_tasks(url: str, n: int) -> float:
    app = Celery("fabric", broker=url, set_as_current=False)
    install(app)
    publisher = Publisher(app, "bench")
    publisher.send(EVENT_TYPE, {"n": 0})  # connect and load the script outside the timing
    start = time.perf_counter()
    for i in range(n):
        publisher.send(EVENT_TYPE, {"n": i})
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    catalog.load("tests.fabric.schemas")
    proc, url, data = start_redis()
    try:
        with Connection(url) as conn:
            declare(conn, [service_queue(s, [EVENT_TYPE]) for s in SERVICES])
        results: dict[str, list[float]] = {"plain Celery send_task": [], "event-tasks send_event": []}
        per_event: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, fn in (("plain Celery send_task", plain_celery), ("event-tasks send_event", event_tasks)):
                clear_queues(url)
                before = commands(url)
                results[name].append(fn(url, args.events))
                per_event[name] = (commands(url) - before) / args.events
                with Connection(url) as conn, conn.channel() as ch:
                    depth = [ch.queue_declare(f"events.{s}", passive=True)[1] for s in SERVICES]
                assert all(d >= args.events for d in depth), (name, depth)
        print(f"$ python bench/publish.py --events {args.events} --rounds {args.rounds}")
        print(f"{args.events} events x {args.rounds} rounds, 3 subscribed queues, private Redis "
              f"{redis.Redis.from_url(url).info('server')['redis_version']}, one process")
        print(f"{'variant':28} {'events/s (median)':>18} {'min':>8} {'max':>8} {'Redis cmds/event':>17}")
        for name, values in results.items():
            print(f"{name:28} {statistics.median(values):>18,.0f} {min(values):>8,.0f} {max(values):>8,.0f} "
                  f"{per_event[name]:>17.2f}")
        base = statistics.median(results["plain Celery send_task"])
        print(f"speed-up: {statistics.median(results['event-tasks send_event']) / base:.2f}x")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
