"""Local broker clusters for a developer, until Ctrl-C: ``python -m tests.clusters`` (``make cluster``).

* RabbitMQ: 3 nodes clustered on 127.0.0.1 (:class:`tests.rabbitmq_cluster.RabbitMQCluster`),
  AMQP on 5682-5684, distribution on 25682-25684, management on 15682-15684 when its plugin
  starts; use quorum queues (``EVENT_TASKS_QUEUE_TYPE=quorum``).
* Redis: a master, 2 replicas and 3 sentinels (:class:`tests.redis_sentinel.RedisSentinelSet`).

It prints the environment lines to paste (``CELERY_BROKER_URL`` …), waits for SIGINT / SIGTERM,
then stops everything and removes the data. ``--rabbitmq-only`` / ``--redis-only`` start one.
The machine's own RabbitMQ (5672) and Redis (6379) are not touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import sys
import threading
import time
from typing import Any

RABBITMQ_PORTS = [5682, 5683, 5684]
RABBITMQ_DIST_PORTS = [25682, 25683, 25684]
RABBITMQ_MANAGEMENT_PORTS = [15682, 15683, 15684]
RABBITMQ_NAMES = ["et1@localhost", "et2@localhost", "et3@localhost"]


def _busy(ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the brokers do: TIME_WAIT is no obstacle
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def start_rabbitmq(management: bool = True) -> Any:
    """The 3-node cluster on the fixed ports; without management if its plugin does not start."""
    from tests.rabbitmq_cluster import RabbitMQCluster

    busy = _busy(RABBITMQ_PORTS + RABBITMQ_DIST_PORTS)
    if busy:
        raise SystemExit(f"ports {busy} are in use (another `make cluster` running?): RabbitMQ not started")
    if management and _busy(RABBITMQ_MANAGEMENT_PORTS):
        print(f"management ports {_busy(RABBITMQ_MANAGEMENT_PORTS)} in use: RabbitMQ without management", flush=True)
        management = False

    def cluster(management: bool) -> Any:
        return RabbitMQCluster(
            3,
            management,
            ports=RABBITMQ_PORTS,
            dist_ports=RABBITMQ_DIST_PORTS,
            management_ports=RABBITMQ_MANAGEMENT_PORTS,
            names=RABBITMQ_NAMES,
        )

    if management:
        try:
            return cluster(True).start()
        except (RuntimeError, TimeoutError) as exc:  # start() cleaned up after itself
            first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
            print(f"RabbitMQ with the management plugin did not start ({first_line}); again without", flush=True)
    return cluster(False).start()


def start_redis() -> Any:
    from tests.redis_sentinel import RedisSentinelSet

    return RedisSentinelSet(replicas=2, sentinels=3, master_name="events").start()


def rabbitmq_lines(cluster: Any) -> list[str]:
    ctl = "rabbitmqctl" if os.geteuid() == 0 else os.path.join(cluster.nodes[0].sbin, "rabbitmqctl")
    lines = [
        f"# RabbitMQ: {cluster.size} nodes {', '.join(n.node for n in cluster.nodes)}, quorum queues",
        f"CELERY_BROKER_URL={shlex.quote(cluster.url)}",
        "EVENT_TASKS_QUEUE_TYPE=quorum",
    ]
    if cluster.management:
        lines.append(
            f"#   management (guest/guest): {' '.join(u.replace('guest:guest@', '') for u in cluster.management_urls)}"
        )
    lines.append(f"#   {ctl} -n {cluster.nodes[0].node} --erlang-cookie {cluster.cookie} cluster_status")
    lines.append(f"#   data and logs: {cluster.dir}")
    return lines


def redis_lines(sentinels: Any) -> list[str]:
    return [
        "# Redis: a master, 2 replicas and 3 sentinels",
        f"CELERY_BROKER_URL={shlex.quote(sentinels.url)}",
        f"CELERY_BROKER_MASTER_NAME={sentinels.master_name}",
        f"#   transport options: {sentinels.transport_options!r}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.clusters", description=__doc__.splitlines()[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--rabbitmq-only", action="store_true", help="only the 3-node RabbitMQ cluster")
    only.add_argument("--redis-only", action="store_true", help="only Redis behind Sentinel")
    parser.add_argument("--no-management", action="store_true", help="RabbitMQ without the management plugin")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    running: list[Any] = []
    blocks: list[list[str]] = []
    began = time.monotonic()
    try:
        if not args.redis_only:
            print("starting a 3-node RabbitMQ cluster …", flush=True)
            cluster = start_rabbitmq(management=not args.no_management)
            running.append(cluster)
            blocks.append(rabbitmq_lines(cluster))
        if not args.rabbitmq_only:
            print("starting Redis behind Sentinel …", flush=True)
            try:
                sentinels = start_redis()
            except ImportError as exc:
                if args.redis_only:
                    raise SystemExit(f"tests/redis_sentinel.py is not importable ({exc})") from None
                print(f"Redis Sentinel skipped: tests/redis_sentinel.py is not importable ({exc})", flush=True)
            else:
                running.append(sentinels)
                blocks.append(redis_lines(sentinels))
        print(f"\nup in {time.monotonic() - began:.0f}s; paste one block into your environment (.env):\n")
        for block in blocks:
            print("\n".join(block) + "\n")
        print("Ctrl-C stops everything and removes the data.", flush=True)
        while not stop.is_set():
            stop.wait(1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the cleanup short
        for thing in reversed(running):
            print(f"stopping {type(thing).__name__} …", flush=True)
            try:
                thing.cleanup()
            except Exception as exc:
                print(f"  {exc!r}", file=sys.stderr)
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
