"""Where the time goes: ``python -m bench.profile send|batch|consume [--events N] [--service S]``.

* ``send`` / ``batch``: ``send_event`` (or ``send_events`` in calls of 100) of the bench's
  certificate event to 3 subscribed queues (``--services N``: N) on a private Redis, under cProfile, in this process;
  prints the functions by cumulative time and the Redis server's own time per command
  (``INFO commandstats``).
* ``consume``: one ``-P solo`` worker of a bench service (default ``dedupe``: duplicate
  suppression on PostgreSQL, the bench's consume row) draining N pre-filled events (``--broker
  rabbitmq``: on a RabbitMQ vhost of its own), sampled by
  py-spy (``pip install py-spy``); prints the share of samples under the frames that matter
  (the duplicate mark, the commit, the ack, task events, Celery's saferepr ...).

Figures of a profile are slower than the bench's (the profiler's own cost); read the shares.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Harness
from .payload import CERTIFICATE_CREATED, COURSE_KEY, certificate

SERVICES = ("s00", "s01", "s02")
# Frames whose share of a consume profile the summary prints (substring of py-spy's frame name).
CONSUME_FRAMES = {
    "the whole event loop": "asynloop (celery/worker/loops.py",
    "handlers + duplicate mark + commit (deliver)": "deliver (event_tasks/consume/dispatch.py",
    "waiting for PostgreSQL": "Connection.wait (psycopg/connection.py",
    "duplicate mark INSERT (with BEGIN)": "insert_mark (event_tasks/store/idempotency.py",
    "COMMIT": "Connection.commit (psycopg/connection.py",
    "ack (Redis round trip)": "QoS.ack (kombu/transport/redis.py",
    "task events (Flower)": "EventDispatcher.flush (celery/events/dispatcher.py",
    "Celery's saferepr of the return value": "saferepr (celery/utils/saferepr.py",
    "payload validation (codec)": "EventType.decode (event_tasks/catalog.py",
    "message JSON decode": "loads (kombu/utils/json.py",
}


def profile_send(bench: Harness, events: int, batch: bool, services: int) -> None:
    import event_tasks

    bench.declare([f"s{i:02d}" for i in range(services)])
    data = [certificate(i) for i in range(16)]

    def run() -> None:
        if batch:
            for offset in range(0, events, 100):
                event_tasks.send_events(
                    [(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY) for i in range(offset, min(events, offset + 100))]
                )
        else:
            for i in range(events):
                event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

    run()  # warm: connections, scripts, codecs
    bench.client.config_resetstat()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run()
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{events} events in {elapsed:.2f}s under cProfile ({events / elapsed:,.0f} events/s)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    stats = bench.client.info("commandstats")
    for name in ("cmdstat_evalsha", "cmdstat_lpush", "cmdstat_smembers"):
        if name in stats:
            s = stats[name]
            print(f"redis {name[8:]}: {s['calls']} calls, {s['usec_per_call']} µs per call in the server")


def profile_consume(bench: Harness, events: int, service: str) -> None:
    from .workers import fabric_env, worker_command

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install py-spy")
    blob = bench.fill_ours(service, events)
    bench.restore(f"events.{service}", blob)
    db = bench.reset_postgres() if service.endswith("dedupe") else bench.fresh_sqlite(service)
    raw = Path(tempfile.mkdtemp()) / "consume.txt"
    command = worker_command("config.celery_app", f"events.{service}", service)
    spy_process = subprocess.Popen(
        [spy, "record", "--format", "raw", "-r", "200", "-o", str(raw), "--", *command],
        env=fabric_env(service, bench.url, db),
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    while (
        bench.client.llen(f"events.{service}") + bench.client.hlen(f"unacked:events.{service}")
    ) and time.monotonic() - started < 300:
        time.sleep(0.05)
    print(f"{events} events drained {time.monotonic() - started:.2f}s after the worker started (start-up included)")
    spy_process.send_signal(signal.SIGINT)  # py-spy writes its samples, then the worker is stopped
    spy_process.wait(60)
    subprocess.run(["pkill", "-TERM", "-f", "--", " ".join(command[1:8])], check=False)
    shares(raw)


def profile_consume_rabbitmq(bench: Harness, events: int, service: str) -> None:
    """As :func:`profile_consume`, on a RabbitMQ vhost of its own (``--broker rabbitmq``)."""
    import event_tasks

    from .brokers import RabbitVhost
    from .sections.rabbitmq import depths
    from .workers import fabric_env, wait_until, worker_command

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install py-spy")
    vhost = RabbitVhost().start()
    try:
        url = vhost.url
        bench.send_through(url)
        bench.declare([service], url)
        data = [certificate(i) for i in range(16)]
        for i in range(events):
            event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
        queue = f"events.{service}"
        wait_until(lambda: depths(url, [queue])[0] == events, 60, f"{events} messages in {queue}")
        db = bench.reset_postgres() if service.endswith("dedupe") else bench.fresh_sqlite(service)
        raw = Path(tempfile.mkdtemp()) / "consume.txt"
        command = worker_command("config.celery_app", queue, service)
        spy_process = subprocess.Popen(
            [spy, "record", "--format", "raw", "-r", "200", "-o", str(raw), "--", *command],
            env=fabric_env(service, url, db),
            cwd=Path(__file__).parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        wait_until(lambda: depths(url, [queue])[0] == 0, 300, f"{queue} to be drained", interval=0.05)
        print(f"{events} events drained {time.monotonic() - started:.2f}s after the worker started (start-up included)")
        spy_process.send_signal(signal.SIGINT)
        spy_process.wait(60)
        subprocess.run(["pkill", "-TERM", "-f", "--", " ".join(command[1:8])], check=False)
        shares(raw)
    finally:
        vhost.stop()


def shares(raw: Path) -> None:
    total = 0
    under: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for label, frame in CONSUME_FRAMES.items():
            if frame in stack:
                under[label] += int(count)
    print(f"{total} samples (py-spy, 200/s); share of samples under each frame:")
    for label in CONSUME_FRAMES:
        print(f"  {under[label] / max(total, 1) * 100:5.1f}%  {label}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["send", "batch", "consume"])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--service", default="dedupe", help="consume: the bench service (bench/services/)")
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis", help="consume: the broker")
    parser.add_argument("--services", type=int, default=len(SERVICES), help="send / batch: subscribed queues")
    args = parser.parse_args(argv)
    bench = Harness(1, 1.0, [], Path(tempfile.mkdtemp()), sys.argv[1:])
    bench.setup()
    try:
        print(f"$ {' '.join([Path(sys.executable).name, '-m', 'bench.profile', *sys.argv[1:]])}")
        if args.what == "consume" and args.broker == "rabbitmq":
            profile_consume_rabbitmq(bench, args.events, args.service)
        elif args.what == "consume":
            profile_consume(bench, args.events, args.service)
        else:
            profile_send(bench, args.events, args.what == "batch", args.services)
    finally:
        bench.teardown()


if __name__ == "__main__":
    main()
