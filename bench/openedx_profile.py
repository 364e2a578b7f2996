"""Where the openedx-events backend's time goes: ``python -m bench.openedx_profile send|consume [--events N]``.

* ``send``: ``EventTasksProducer.send`` of ``CERTIFICATE_CREATED`` (the bench's ``sender``: metadata,
  then the producer's ``send``) to the one subscribed queue on a private Redis, under cProfile, in
  this process; prints the functions by cumulative time and the shares under the backend's frames.
* ``consume``: the backend's worker (``celery -A config.celery_app worker -Q events.oeconsumer -P
  solo``, ``bench.openedx_settings``: the re-emitting handler, duplicate suppression on, SQLite)
  draining N pre-filled events, sampled by py-spy (``pip install py-spy``); prints the share of
  samples under the frames that matter: the backend's own code (``event_tasks/openedx/``), the
  general consume path (``event_tasks/consume/``, the Redis transport) and the duplicate store
  (``event_tasks/store/``).

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

from .openedx_backend import SERVICE, SETTINGS, Backend

# label -> substring of a py-spy frame ("function (file:line)"); a sample counts once per label
CONSUME_FRAMES = {
    "the whole event loop": "asynloop (celery/worker/loops.py",
    "the task (Celery's trace: task + result + ack)": "trace_task (celery/app/trace.py",
    "the fabric's delivery (event_tasks/consume/dispatch.py)": "(event_tasks/consume/dispatch.py",
    "  reading the event: envelope + payload validation (read_event)": "read_event (event_tasks/consume/delivery.py",
    "    of which the compiled codec (event_tasks/codec.py)": "walk (event_tasks/codec.py",
    "    of which marshmallow's own load (Schema._do_load)": "_do_load (marshmallow/schema.py",
    "  the duplicate store (event_tasks/store/)": "(event_tasks/store/",
    "    of which SQLite (execute/commit)": "(django/db/backends/sqlite3/base.py",
    "  the backend's handler (event_tasks/openedx/handlers.py reemit)": "reemit (event_tasks/openedx/handlers.py",
    "    from_payload (event_tasks/openedx/codec.py)": "from_payload (event_tasks/openedx/codec.py",
    "    openedx-events' deserializer": "(openedx_events/event_bus/avro/deserializer.py",
    "    the signal's send (send_event_with_custom_metadata)": "send_event_with_custom_metadata (",
    "    of which openedx-events' format_responses (pprint)": "format_responses (openedx_events/utils.py",
    "    RequestCache.clear_all_namespaces": "clear_all_namespaces (",
    "the Redis transport (event_tasks/brokers/redis/)": "(event_tasks/brokers/redis/",
    "kombu's Redis transport": "(kombu/transport/redis.py",
    "task events (Flower)": "EventDispatcher.",
    "Celery's saferepr": "saferepr (celery/utils/saferepr.py",
    "the result backend (store_result / mark_as_done)": "mark_as_done (celery/backends/base.py",
    "Django's request signals / connection close (Celery's Django fixup)": "(celery/fixups/django.py",
}
# Who owns each sample of a delivery: the innermost frame of the stack that matches one of these, in
# the order given per frame (a sample in Django's commit under the duplicate store is the store's; one
# in openedx-events' deserializer under the backend's from_payload is the backend's).
OWNERS = (
    (
        "the backend's own code (event_tasks/openedx/: conversion, re-emitting, its schema's validators)",
        "(event_tasks/openedx/",
    ),
    ("openedx-events' signal send (called by the backend's handler)", "(openedx_events/tooling.py"),
    ("the duplicate store (event_tasks/store/: mark, transaction, commit)", "(event_tasks/store/"),
    ("payload validation machinery (event_tasks/catalog.py, codec.py)", "(event_tasks/catalog.py"),
    ("payload validation machinery (event_tasks/catalog.py, codec.py)", "(event_tasks/codec.py"),
    ("the general consume path (event_tasks/consume/)", "(event_tasks/consume/"),
    ("the Redis transport (event_tasks/brokers/redis/)", "(event_tasks/brokers/redis/"),
    ("Celery's task trace (result, task events, ack)", "(celery/app/trace.py"),
    ("Celery/kombu event loop and the rest", "asynloop (celery/worker/loops.py"),
)
SEND_FRAMES = {
    "the producer (EventTasksProducer.send)": "producer.py:",
    "to_payload (event_tasks/openedx/codec.py)": "to_payload",
    "openedx-events' to_dict": "serializer.py:130(to_dict)",
    "send_event (validation, envelope, publish)": "publisher.py:323(send_event)",
    "  validation (EventType.encode)": "catalog.py:64(encode)",
    "  the publish (Redis round trip)": "brokers/redis/fanout.py:",
    "metadata (generate_signal_metadata, the caller's)": "generate_signal_metadata",
}


def profile_send(backend: Backend, events: int) -> None:
    from event_tasks.openedx import create_producer

    from .openedx_bus import sender

    backend.declare()
    send = sender(create_producer())
    for i in range(50):  # warm: connection, script, codecs
        send(i)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(events):
        send(i)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{events} sends in {elapsed:.2f}s under cProfile ({events / elapsed:,.0f} events/s)")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(35)
    total = sum(v[3] for (file, _, name), v in stats.stats.items() if name == "send" and "openedx_bus" in file)  # type: ignore[attr-defined]
    print(f"share of the send loop ({total:.2f}s, cumulative time):")
    for label, needle in SEND_FRAMES.items():
        cum = max(
            (v[3] for (file, line, name), v in stats.stats.items() if needle in f"{file}:{line}({name})"),  # type: ignore[attr-defined]
            default=0.0,
        )
        print(f"  {cum / max(total, 1e-9) * 100:5.1f}%  {label}")


def profile_consume(backend: Backend, events: int) -> None:
    from .workers import fabric_env, worker_command

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install py-spy")
    blob = backend.fill_ours(events)
    queue = f"events.{SERVICE}"
    backend.client.flushall()
    backend.client.restore(queue, 0, blob, replace=True)
    backend.declare()
    db = backend.fresh_db()
    raw = Path(tempfile.mkdtemp()) / "consume.txt"
    command = worker_command("config.celery_app", queue, SERVICE)
    env = fabric_env(SERVICE, backend.url, db, DJANGO_SETTINGS_MODULE=SETTINGS)
    env["EVENT_TASKS_SCHEMAS_PACKAGE"] = "event_tasks.openedx.catalog"
    spy_process = subprocess.Popen(
        [spy, "record", "--format", "raw", "-r", "200", "-o", str(raw), "--", *command],
        env=env,
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    while (backend.client.llen(queue) + backend.client.hlen(f"unacked:{queue}")) and time.monotonic() - started < 300:
        time.sleep(0.05)
    print(f"{events} events drained {time.monotonic() - started:.2f}s after the worker started (start-up included)")
    # py-spy writes its samples on SIGINT; the worker (its child, same session) stops with it
    os.kill(spy_process.pid, signal.SIGINT)
    try:
        spy_process.wait(60)
    finally:
        try:
            os.killpg(spy_process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    shares(raw)


def shares(raw: Path) -> None:
    total = 0
    under: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for label, frame in CONSUME_FRAMES.items():
            if frame in stack:
                under[label] += int(count)
    loop = under["the whole event loop"]
    print(f"{total} samples (py-spy, 200/s), {loop} in the event loop; share of the event loop's samples:")
    for label in CONSUME_FRAMES:
        print(f"  {under[label] / max(loop, 1) * 100:5.1f}%  {label}")
    owned: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if CONSUME_FRAMES["the whole event loop"] not in stack:
            continue
        for frame in reversed(stack.split(";")):
            owner = next((label for label, needle in OWNERS if needle in frame), None)
            if owner is not None:
                owned[owner] += int(count)
                break
    print("each event-loop sample counted once, for the innermost of these frames in its stack:")
    for label in dict.fromkeys(label for label, _ in OWNERS):
        print(f"  {owned[label] / max(loop, 1) * 100:5.1f}%  {label}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openedx_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["send", "consume"])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args(argv)
    backend = Backend().start()
    try:
        print(f"$ python -m bench.openedx_profile {' '.join(sys.argv[1:] if argv is None else argv)}")
        if args.what == "consume":
            profile_consume(backend, args.events)
        else:
            profile_send(backend, args.events)
    finally:
        backend.stop()


if __name__ == "__main__":
    main()
