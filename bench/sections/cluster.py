"""Broker clusters: a 3-node RabbitMQ cluster with quorum queues beside one node with classic
queues (publish with confirms, consume with one ``-P solo`` worker), Redis behind Sentinel with and
without the replica wait, and the pause a SIGKILLed node or master causes to a steady producer and
its worker. Every broker here is private (``tests.rabbitmq_cluster``, ``tests.redis_sentinel``),
started once for the section and removed at its end."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..common import BATCH_SIZE, ROOT, Harness

NAME = "cluster"
RABBIT = "RabbitMQ cluster"
SENTINEL = "Redis Sentinel"
TITLES = (RABBIT, SENTINEL)
RABBIT_PUBLISH_EVENTS = 300
RABBIT_CONSUME_EVENTS = 500
REDIS_PUBLISH_EVENTS = 1000
SERVICES = ["s00", "s01", "s02"]
FAILOVER_RATE = 100.0  # events/s of each steady producer during a failover run
FAILOVER_WARMUP = 20  # events each worker handles before the steady second
FAILOVER_STEADY = 1.0  # seconds of steady sending and handling before the kill
FAILOVER_TIMEOUT = 25.0  # seconds after the kill before a system counts as not recovered
FAILOVER_GRACE = 2.0  # ... or this long after the last recovery, once every worker handled an event again
FAILOVER_IDLE = 2.0  # before the kill: a worker that handled nothing this long with the producers held has caught up
POLL = 0.002  # seconds between two looks at the handlers' files

REBUILT = "ours (new publisher after a failed send)"
DELAYED_RETRY = "Retrying delayed delivery setup"
ONE_NODE = "one node, classic queues"
CLUSTER = "3-node cluster, quorum queues"
PUBLISH = "publish, 3 subscribed services (publisher confirms), "
CONSUME = "consume, one `-P solo` worker, no-op handler, "
RABBIT_KILL = "failover: SIGKILL of the node of producer, worker and queue leader"
REDIS_WAIT = "publish, 3 subscribed services, `EVENT_TASKS_REDIS_WAIT_REPLICAS={}`"
REDIS_KILL = "failover: SIGKILL of the master"
TO_CONFIRMED = " → first confirmed publish"
TO_HANDLED = " → first handled event"

# plain Celery's worker here: bench.plain_celery with the queue's arguments (a quorum queue) and the
# broker's transport options (Sentinel's master name) from the environment; written to the temp dir.
PLAIN_APP = "et_bench_cluster_plain"
PLAIN_APP_SOURCE = '''"""bench.plain_celery with BENCH_QUEUE_ARGUMENTS and BENCH_TRANSPORT_OPTIONS (JSON) applied."""
import json
import os

from kombu import Exchange, Queue

from bench.plain_celery import CERTIFICATE_CREATED, QUEUE, app

app.conf.broker_transport_options = json.loads(os.environ.get("BENCH_TRANSPORT_OPTIONS") or "{}")
app.conf.task_queues = [
    Queue(
        QUEUE,
        Exchange("events", type="topic", durable=True),
        routing_key=CERTIFICATE_CREATED,
        durable=True,
        queue_arguments=json.loads(os.environ.get("BENCH_QUEUE_ARGUMENTS") or "null"),
    )
]
'''
QUORUM = {"x-queue-type": "quorum"}
# In a failover run both systems send and consume at once; their queues are bound to the same type on
# exchanges named `events`, so plain Celery's live in a vhost (RabbitMQ) or database (Redis) of its own.
PLAIN_VHOST = "plain"
PLAIN_DB = 1


def in_vhost(url: str, vhost: str) -> str:
    """``amqp://…:port//`` (or a ``;`` list of them) on another vhost."""
    return ";".join(u[: u.index("/", u.index("://") + 3)] + "/" + vhost for u in url.split(";"))


def describe(bench: Harness) -> None:
    r = bench.results
    rounds = f"{bench.rounds} runs per figure"
    failover = (
        f"Failover: producer threads send {FAILOVER_RATE:.0f} events/s in all to each system's idle `-P solo` "
        f"worker (both systems at once, on queues of their own); once each worker handled "
        f"{FAILOVER_WARMUP} events and {FAILOVER_STEADY:.0f} s of steady traffic, the producers hold their next "
        f"send until every confirmed event was handled (or a worker handled nothing for {FAILOVER_IDLE:.0f} s: "
        f"the number not handled is kept in the figures' parameters), and the node is SIGKILLed. Seconds from the "
        f"kill to the first send that returns (confirmed) after it, and to the first handler call after it "
        f"(the handlers append a line per event to a file the bench watches every {POLL * 1000:.0f} ms); "
        f"a failed send is counted and the next one follows on schedule. A run watches up to "
        f"{FAILOVER_TIMEOUT:.0f} s after the kill, or {FAILOVER_GRACE:.0f} s after the last recovery once both "
        f"workers handle events again."
    )
    r.section(
        RABBIT,
        f"Private RabbitMQ nodes (`tests/rabbitmq_cluster.py`, RabbitMQ's own start script, the same "
        f"config on every node): *one node* is a one-node `RabbitMQCluster(1)`, *cluster* is "
        f"`RabbitMQCluster(3)`, the clients on its failover list (connected to its first node, where the "
        f"queues' leaders are). Publish: 3 queues bound to the type, {bench.n(RABBIT_PUBLISH_EVENTS)} events "
        f"per run, a confirm awaited per event; consume: {bench.n(RABBIT_CONSUME_EVENTS, 100)} pre-filled "
        f"events, one `-P solo` worker, the end when the handler ran for the last one; {rounds}. "
        f"{failover} Each failover run kills another node (the queues are declared through a connection "
        f"to it, so their leaders are there, and every client has it first in its list); the node is "
        f"restarted before the next run. Plain Celery's queue is in a vhost of its own (both queues are bound "
        f"to the type on an exchange `events`). Event-tasks' worker gets {FAILOVER_RATE / 2:.0f} events/s from "
        f"`send_event` and {FAILOVER_RATE / 2:.0f} from a second producer through the library "
        f"(`Publisher(app, 'lms').send`) that drops its publisher after a failed send and builds a new one (a "
        f"new connection); that producer's first confirmed publish is in the figures' parameters "
        f"(`results.jsonl`).",
    )
    r.section(
        SENTINEL,
        f"A private master, 2 replicas and 3 sentinels (`tests/redis_sentinel.py`: AOF on, `everysec`, "
        f"`down-after-milliseconds` 1000), every client on the `sentinel://…;…` list with "
        f"`master_name`. Publish: 3 queues bound to the type, {bench.n(REDIS_PUBLISH_EVENTS)} events per run; "
        f"{rounds}. {failover} event-tasks' producer waits for 1 replica "
        f"(`EVENT_TASKS_REDIS_WAIT_REPLICAS=1`) in the failover runs; plain Celery's queue is in database "
        f"{PLAIN_DB}; the killed server comes back as a replica before the next run.",
    )


def run(bench: Harness) -> None:
    from django.conf import settings as django_settings

    from event_tasks.conf import settings as fabric_settings
    from event_tasks.send.publisher import reset_default_publisher

    names = ("EVENT_TASKS_QUEUE_TYPE", "EVENT_TASKS_REDIS_WAIT_REPLICAS")
    saved = {name: getattr(django_settings, name) for name in names}
    (bench.tmp / f"{PLAIN_APP}.py").write_text(PLAIN_APP_SOURCE)
    try:
        rabbitmq(bench)
        sentinel(bench)
    finally:
        for name, value in saved.items():
            setattr(django_settings, name, value)
        fabric_settings.cache_clear()
        reset_default_publisher()


# -- shared ------------------------------------------------------------------------------------------
def use(url: str, transport_options: dict[str, Any] | None = None, **overrides: Any) -> None:
    """Make ``send_event`` in this process publish to ``url`` with these EVENT_TASKS_* settings."""
    from celery import Celery
    from django.conf import settings as django_settings

    from event_tasks.app import install
    from event_tasks.conf import settings as fabric_settings
    from event_tasks.send.publisher import reset_default_publisher

    for name, value in overrides.items():
        setattr(django_settings, f"EVENT_TASKS_{name.upper()}", value)
    fabric_settings.cache_clear()
    app = Celery(f"bench-producer-{uuid.uuid4().hex[:6]}", broker=url, set_as_current=False)
    if transport_options:
        app.conf.broker_transport_options = dict(transport_options)
    install(app)  # the last installed app is the one send_event uses
    reset_default_publisher()


def ours_sender() -> Callable[[int], None]:
    import event_tasks

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY, certificate

    data = [certificate(i) for i in range(16)]

    def send(i: int) -> None:
        event_tasks.send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)

    return send


def ours_fill(n: int) -> None:
    import event_tasks

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY, certificate

    for first in range(0, n, BATCH_SIZE):
        event_tasks.send_events(
            [(CERTIFICATE_CREATED, certificate(i % 16), COURSE_KEY) for i in range(first, min(n, first + BATCH_SIZE))]
        )


def declare_ours(url: str, services: list[str], queue_type: str, transport_options: dict | None = None) -> None:
    from kombu import Connection

    from event_tasks.brokers.topology import declare, service_queue

    from ..payload import CERTIFICATE_CREATED

    with Connection(url, transport_options=transport_options or {}) as conn:
        # fresh queues: no stale binding to prune (pruning on RabbitMQ asks the management API, not enabled here)
        declare(conn, [service_queue(s, [CERTIFICATE_CREATED], queue_type) for s in services], prune=False)


def declare_plain(url: str, arguments: dict | None, transport_options: dict | None = None) -> None:
    from kombu import Connection, Exchange, Queue

    from ..payload import CERTIFICATE_CREATED

    with Connection(url, transport_options=transport_options or {}) as conn, conn.channel() as ch:
        Queue(
            "events.plain",
            Exchange("events", type="topic", durable=True),
            routing_key=CERTIFICATE_CREATED,
            durable=True,
            queue_arguments=arguments,
        )(ch).declare()


def plain_worker(bench: Harness, url: str, *, queue_arguments: dict | None = None, **env: Any):
    """plain Celery's no-op worker (``bench.plain_celery``) on ``url``, its queue with ``queue_arguments``."""
    from ..workers import fabric_env, worker_command

    extra = {k: v if isinstance(v, str) else json.dumps(v) for k, v in env.items()}
    e = fabric_env(None, url, "sqlite:///unused", BENCH_PLAIN_QUEUE="events.plain", **extra)
    e["BENCH_QUEUE_ARGUMENTS"] = json.dumps(queue_arguments)
    e["PYTHONPATH"] = os.pathsep.join([str(bench.tmp), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "EVENT_TASKS_CONSUMERS_PACKAGE", "EVENT_TASKS_SCHEMAS_PACKAGE"):
        e.pop(k, None)
    return bench.proc(worker_command(PLAIN_APP, "events.plain", "plain"), e, "worker-plain-cluster")


def parallel(*calls: Callable[[], Any]) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(c) for c in calls]
        return [f.result() for f in futures]


def rotate(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


# -- failover runs -----------------------------------------------------------------------------------
class Steady(threading.Thread):
    """One system's producer: ``send(i)`` at a steady rate (after a long send, on from then: no burst),
    each send under ``lock`` so that the kill can fall between two sends."""

    def __init__(self, name: str, send: Callable[[int], None], rate: float) -> None:
        super().__init__(name=f"steady-{name}", daemon=True)
        self.system = name
        self.send = send
        self.interval = 1.0 / rate
        self.lock = threading.Lock()
        self.confirmed: list[float] = []  # time.time() when each send returned
        self.failed: list[tuple[float, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        due = time.monotonic()
        while not self.halt.is_set():
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                try:
                    self.send(i)
                    self.confirmed.append(time.time())
                except Exception as exc:  # a refused or failed send: counted, the next one follows
                    self.failed.append((time.time(), error_chain(exc)))
            i += 1
            due = max(due + self.interval, time.monotonic())

    def first_after(self, t: float) -> float | None:
        return next((x for x in self.confirmed if x > t), None)


class Watch(threading.Thread):
    """Counts the lines the handlers append to their files; records when each count grew."""

    def __init__(self, paths: dict[str, Path]) -> None:
        super().__init__(name="watch-handled", daemon=True)
        self.paths = paths
        self.counts = dict.fromkeys(paths, 0)
        self.offsets = dict.fromkeys(paths, 0)
        self.seen: dict[str, list[tuple[float, int]]] = {k: [] for k in paths}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for key, path in self.paths.items():
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                if size > self.offsets[key]:
                    with open(path, "rb") as fh:
                        fh.seek(self.offsets[key])
                        chunk = fh.read(size - self.offsets[key])
                    seen_at = time.time()  # after the read: never before the handler wrote the line
                    self.offsets[key] += len(chunk)
                    grew = chunk.count(b"\n")
                    if grew:
                        self.counts[key] += grew
                        self.seen[key].append((seen_at, self.counts[key]))
            time.sleep(POLL)

    def first_after(self, key: str, t: float, count: int) -> float | None:
        return next((at for at, c in self.seen[key] if at > t and c > count), None)


def failover_run(
    procs: dict[str, Any],
    streams: dict[str, tuple[str, Callable[[int], None], float]],
    files: dict[str, Path],
    kill: Callable[[], None],
    reap: Callable[[], None],
    before_kill: Callable[[], None] | None = None,
    after_watch: Callable[[], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, float | None]]:
    """Steady producers (``streams``: name -> (the system whose worker gets its events, send)), one
    worker per system writing a line per handled event to ``files[system]``, and the kill between two
    sends. ``kill`` runs with every producer's lock held, so it only sends the signal; ``reap`` then
    waits for the process to be gone. Returns per stream {"confirmed": seconds from the kill to its
    first send that returned after it, "failed sends", "first error"} and per system the seconds to
    its worker's first handled event after the kill (None: nothing in the time watched: at most
    FAILOVER_TIMEOUT, or FAILOVER_GRACE after the last recovery once every worker handles again)."""
    from ..workers import wait_until

    for path in files.values():
        path.touch()
    watch = Watch(files)
    watch.start()
    steady = {name: Steady(name, send, rate) for name, (_, send, rate) in streams.items()}
    for s in steady.values():
        s.start()

    def sent_to(system: str) -> int:
        return sum(len(steady[name].confirmed) for name, (key, _, _) in streams.items() if key == system)

    try:
        for system in files:
            wait_until(
                lambda: watch.counts[system] >= FAILOVER_WARMUP,
                120,
                f"{system}'s worker to handle {FAILOVER_WARMUP} events",
                interval=0.05,
                proc=procs[system],
            )
        started = time.monotonic()
        if before_kill is not None:  # e.g. until the brokers are as the run needs them
            before_kill()
        time.sleep(max(0.0, FAILOVER_STEADY - (time.monotonic() - started)))
        # the kill falls between two sends, every confirmed event handled: the producers wait (each
        # holds its next send) until the workers have caught up, or have handled nothing for
        # FAILOVER_IDLE s (then the confirmed events not handled are lost; their number is kept)
        with _locks([s.lock for s in steady.values()]):
            deadline = time.monotonic() + 60
            counts, still_since = dict(watch.counts), time.monotonic()
            while True:
                gaps = {system: sent_to(system) - watch.counts[system] for system in files}
                if all(g <= 0 for g in gaps.values()):
                    break
                if watch.counts != counts:
                    counts, still_since = dict(watch.counts), time.monotonic()
                elif time.monotonic() - still_since > FAILOVER_IDLE:
                    break
                if time.monotonic() > deadline:
                    state = {
                        system: f"{watch.counts[system]} handled of {sent_to(system)} confirmed" for system in files
                    }
                    raise TimeoutError(f"the workers did not catch up in 60 s: {state}")
                time.sleep(0.002)
            killed_at, killed_mono = time.time(), time.monotonic()
            kill()
            handled_at_kill = dict(watch.counts)
            unhandled = {system: max(0, g) for system, g in gaps.items()}
        reap()
        end = killed_mono + FAILOVER_TIMEOUT
        while time.monotonic() < end:
            confirmed = [s.first_after(killed_at) for s in steady.values()]
            handled = [watch.first_after(system, killed_at, handled_at_kill[system]) for system in files]
            if None not in confirmed + handled:
                break
            # every worker handles events again: a producer still failing gets FAILOVER_GRACE more
            if None not in handled and time.time() > max(t for t in confirmed + handled if t) + FAILOVER_GRACE:
                break
            time.sleep(0.05)
        waited = time.time() - killed_at
        if after_watch is not None:  # e.g. bring the killed node back while the run winds down
            after_watch()
        time.sleep(0.3)
    finally:
        for s in steady.values():
            s.halt.set()
        for s in steady.values():
            s.join(15)
        watch.halt.set()
        watch.join(5)
    sent = {}
    for name, s in steady.items():
        confirmed = s.first_after(killed_at)
        errors = [e for t, e in s.failed if t > killed_at]
        sent[name] = {
            "confirmed": None if confirmed is None else confirmed - killed_at,
            "failed sends": len(errors),
            "first error": errors[0] if errors else "",
            "watched after the kill (s)": round(waited, 1),
        }
    for name, (system, _, _) in streams.items():
        if unhandled[system]:
            sent[name]["confirmed and not handled before the kill"] = unhandled[system]
    handled = {}
    for system in files:
        at = watch.first_after(system, killed_at, handled_at_kill[system])
        handled[system] = None if at is None else at - killed_at
    return sent, handled


def record_failover(
    bench: Harness,
    sec: str,
    row: str,
    sent: dict[str, dict[str, Any]],
    handled: dict[str, float | None],
    notes: dict[str, str],
    misses: dict[tuple[str, str], list[dict[str, Any]]],
    **params: Any,
) -> None:
    """The run's figures (system = the stream of that name; other streams ``<system> (...)`` go
    into its params); a system that did not recover within the timeout goes to ``misses``."""
    for suffix in (TO_CONFIRMED, TO_HANDLED):  # the rows in this order, whoever recovered
        bench.results.row(sec, row + suffix, "s", higher_is_better=False)
    for system, handled_after in handled.items():
        extra: dict[str, Any] = {k: v for k, v in sent[system].items() if k != "confirmed"}
        for name, other in sent.items():
            if name.startswith(f"{system} ("):
                extra[f"{name}: first confirmed publish (s)"] = other["confirmed"]
                extra[f"{name}: failed sends"] = other["failed sends"]
        for value, suffix in ((sent[system]["confirmed"], TO_CONFIRMED), (handled_after, TO_HANDLED)):
            if value is None:
                misses.setdefault((row + suffix, system), []).append(extra)
                print(f"  [{sec}] {row}{suffix} | {system}: nothing after the kill {extra}", flush=True)
                continue
            bench.results.add(
                sec,
                row + suffix,
                system,
                value,
                "s",
                higher_is_better=False,
                note=notes.get(system, ""),
                **extra,
                **params,
            )


def close_misses(bench: Harness, sec: str, misses: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    """Runs without recovery: named in the figure's note, or the figure is "not measured" with why."""
    for (row, system), runs in misses.items():
        watched = [r["watched after the kill (s)"] for r in runs]
        why = (
            f"nothing in the {min(watched):.0f}–{max(watched):.0f} s watched after the kill in {len(runs)} of "
            f"{bench.rounds} run(s) (a run ends {FAILOVER_GRACE:.0f} s after the last other recovery, at most "
            f"{FAILOVER_TIMEOUT:.0f} s after the kill)"
        )
        errors = [r["first error"] for r in runs if r.get("first error")]
        failed = sum(r["failed sends"] for r in runs)
        if errors and row.endswith(TO_CONFIRMED):
            why += f"; every send after the kill failed ({failed} in all), the first with {errors[0]}"
        elif errors:
            why += f"; {failed} failed sends after the kill, the first with {errors[0]}"
        fig = bench.results.row(sec, row, "s", higher_is_better=False).figures.get(system)
        if fig is None or not fig.runs:
            bench.results.unavailable(sec, row, system, why, "s", "not measured")
        else:
            fig.note = f"{fig.note}; {why}, left out" if fig.note else f"{why}, left out"


def sockets(pid: int) -> set[str]:
    """The inodes of process ``pid``'s sockets (from /proc)."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_peers(pid: int, ignore: Collection[str] = ()) -> set[int]:
    """The remote ports of process ``pid``'s established TCP connections (from /proc), but those of
    the socket inodes in ``ignore``."""
    inodes = sockets(pid) - set(ignore)
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def error_chain(exc: BaseException) -> str:
    """``PublishError ← OperationalError ← MessageNacked()``: an exception and its causes, short."""
    names = []
    seen: BaseException | None = exc
    while seen is not None and len(names) < 5:
        names.append(type(seen).__name__)
        last = seen
        seen = seen.__cause__ or seen.__context__
    text = str(last)[:120]
    return " ← ".join(names) + (f" ({text})" if text and len(names) > 1 else f": {text}" if text else "")


def rebuilt_sender() -> Callable[[int], None]:
    """``Publisher(app, 'lms').send`` through the library, with a new publisher (a new connection)
    after each failed send: what a producer that drops its publisher on a ``PublishError`` gets."""
    from event_tasks.send.publisher import Publisher, the_app

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY, certificate

    data = [certificate(i) for i in range(16)]
    state: dict[str, Any] = {}

    def send(i: int) -> None:
        if "publisher" not in state:
            state["publisher"] = Publisher(the_app(), "lms")
        try:
            state["publisher"].send(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
        except Exception:
            publisher = state.pop("publisher")
            try:
                publisher.transport.close()
            except Exception:
                pass
            raise

    send.close = lambda: state.pop("publisher").transport.close() if "publisher" in state else None  # type: ignore[attr-defined]
    return send


# -- RabbitMQ ----------------------------------------------------------------------------------------
def rabbitmq(bench: Harness) -> None:
    from tests.rabbitmq_cluster import RabbitMQCluster

    sec = RABBIT
    rows = [PUBLISH + ONE_NODE, PUBLISH + CLUSTER, CONSUME + ONE_NODE, CONSUME + CLUSTER]
    single = RabbitMQCluster(1)
    cluster = RabbitMQCluster(3)
    started = time.monotonic()
    try:
        parallel(single.start, cluster.start)
    except Exception as exc:
        for c in (single, cluster):
            try:
                c.cleanup()
            except Exception:
                pass
        reason = f"the private RabbitMQ nodes did not start: {str(exc).splitlines()[0][:300]}"
        for row in [*rows, RABBIT_KILL + TO_CONFIRMED, RABBIT_KILL + TO_HANDLED]:
            for system in ("ours", "celery"):
                bench.results.unavailable(
                    sec, row, system, reason, "s" if "failover" in row else "events/s", "not measured"
                )
        return
    print(f"  [{sec}] one node and 3-node cluster up in {time.monotonic() - started:.0f} s", flush=True)
    restart: threading.Thread | None = None
    try:
        for name, phase in (("publish", rabbit_publish), ("consume", rabbit_consume)):
            began = time.monotonic()
            phase(bench, single, cluster)
            print(f"  [{sec}] {name} runs done in {time.monotonic() - began:.0f} s", flush=True)
        began = time.monotonic()
        restart = rabbit_failover(bench, cluster)
        print(f"  [{sec}] failover runs done in {time.monotonic() - began:.0f} s", flush=True)
    finally:
        if restart is not None:
            restart.join(120)
        parallel(single.cleanup, cluster.cleanup)
    bench.results.note(
        sec,
        "Why a private one-node `RabbitMQCluster(1)` and not a vhost on the machine's RabbitMQ: the same "
        "RabbitMQ binary, start script and config files as the cluster's nodes (statistics every second, "
        "quorum tick 1 s), no other tenant's load on it; the two differ only in clustering and queue type.",
    )


def rabbit_publish(bench: Harness, single: Any, cluster: Any) -> None:
    from kombu import Connection

    sec = RABBIT
    brokers = {ONE_NODE: (single.url, "classic"), CLUSTER: (cluster.url, "quorum")}
    queues = [f"events.{s}" for s in SERVICES]
    celery = {where: bench.plain_sender(url, confirm=True) for where, (url, _) in brokers.items()}
    ours = ours_sender()
    for where, (url, qtype) in brokers.items():
        declare_ours(url, SERVICES, qtype)

    def depths(url: str) -> list[int]:
        with Connection(url) as conn, conn.channel() as ch:
            return [ch.queue_declare(q, passive=True)[1] for q in queues]

    def purge(url: str) -> None:
        with Connection(url) as conn, conn.channel() as ch:
            for q in queues:
                ch.queue_purge(q)

    leaders = {q: info["leader"] for q, info in cluster.queue_infos().items() if q in queues}
    n = bench.n(RABBIT_PUBLISH_EVENTS)
    combos = [(where, system) for where in brokers for system in ("ours", "celery")]
    for fn in celery.values():
        fn(0)
    from ..workers import wait_until

    for rnd in range(bench.rounds):
        current = None
        for where, system in rotate(combos, rnd):
            url, qtype = brokers[where]
            if system == "ours" and current != where:
                use(url, queue_type=qtype)
                ours(0)  # connect (and the confirm channel) outside the timing
                current = where
                wait_until(lambda: all(d >= 1 for d in depths(url)), 10, "the warm-up event")
            purge(url)
            send = ours if system == "ours" else celery[where]
            start = time.perf_counter()
            for i in range(n):
                send(i)
            rate = n / (time.perf_counter() - start)
            wait_until(lambda: depths(url) == [n] * 3, 10, f"{system}: {n} messages in each queue on {where}")
            purge(url)
            bench.results.add(
                sec,
                PUBLISH + where,
                system,
                rate,
                "events/s",
                events=n,
                **({"leaders": leaders} if where == CLUSTER else {}),
                note={
                    "ours": "`send_event`: one publish to the topic exchange, a confirm awaited per event",
                    "celery": "`send_task` with `broker_transport_options={'confirm_publish': True}`",
                }[system],
            )
    for fn in celery.values():
        fn.close()
    for url, _ in brokers.values():
        with Connection(url) as conn, conn.channel() as ch:
            for q in queues:
                ch.queue_delete(q)


def rabbit_consume(bench: Harness, single: Any, cluster: Any) -> None:
    from kombu import Connection

    from ..workers import wait_until

    sec = RABBIT
    brokers = {ONE_NODE: (single.url, "classic"), CLUSTER: (cluster.url, "quorum")}
    n = bench.n(RABBIT_CONSUME_EVENTS, 100)
    fill = {where: bench.plain_sender(url) for where, (url, _) in brokers.items()}
    combos = [(where, system) for where in brokers for system in ("ours", "celery")]
    stopping: threading.Thread | None = None  # the last run's worker, stopping while the next queue fills
    for rnd in range(bench.rounds):
        for where, system in rotate(combos, rnd):
            url, qtype = brokers[where]
            queue = "events.noop" if system == "ours" else "events.plain"
            # only the queue being measured is bound while it is filled (both are bound to the type)
            if system == "ours":
                declare_ours(url, ["noop"], qtype)
                use(url, queue_type=qtype)
                ours_fill(n)
            else:
                declare_plain(url, QUORUM if qtype == "quorum" else None)
                for i in range(n):
                    fill[where](i)
            conn = Connection(url)
            ch = conn.channel()

            def depth() -> int:
                return ch.queue_declare(queue, passive=True)[1]

            wait_until(lambda: depth() == n, 30, f"{n} messages in {queue} on {where}")
            if stopping is not None:
                stopping.join(60)
            done = bench.tmp / f"done-{uuid.uuid4().hex[:6]}"
            env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done)}
            if system == "ours":
                w = bench.fabric_worker(
                    "noop", url, bench.fresh_sqlite("noop-cluster"), EVENT_TASKS_QUEUE_TYPE=qtype, **env
                )
            else:
                w = plain_worker(bench, url, queue_arguments=QUORUM if qtype == "quorum" else None, **env)
            try:
                start = wait_until(
                    lambda: time.time() if depth() < n else None,
                    120,
                    f"the first message of {queue}",
                    interval=0.002,
                    proc=w,
                )
                wait_until(
                    lambda: done.exists() and done.read_text(),
                    600,
                    f"{system} to handle {n} events",
                    interval=0.01,
                    proc=w,
                )
                end = float(done.read_text())
                wait_until(lambda: depth() == 0, 30, f"{queue} to be empty", proc=w)
            except BaseException:
                bench.stop(w)
                raise
            finally:
                ch.close()
                conn.release()
            stopping = threading.Thread(target=bench.stop, args=(w,), daemon=True)
            stopping.start()
            with Connection(url) as c, c.channel() as chan:
                chan.queue_delete(queue)
            bench.results.add(sec, CONSUME + where, system, n / (end - start), "events/s", events=n)
    if stopping is not None:
        stopping.join(60)
    for fn in fill.values():
        fn.close()
    bench.results.note(
        sec,
        "Consume: start = the first time the queue's ready count dropped below the pre-filled count "
        "(`queue.declare` passive, polled every 2 ms), end = the wall time at which the handler ran for "
        "the last expected event (written by the handler). event-tasks' worker runs with "
        "`EVENT_TASKS_QUEUE_TYPE=quorum` on the cluster; plain Celery's queue has "
        "`queue_arguments={'x-queue-type': 'quorum'}` there (Celery detects it and uses per-consumer "
        "prefetch).",
    )


def rabbit_failover(bench: Harness, cluster: Any) -> threading.Thread | None:
    """The failover runs; returns the thread restarting the last killed node (None if none is)."""
    from kombu import Connection

    from ..workers import wait_until

    sec = RABBIT
    misses: dict[tuple[str, str], list[dict[str, Any]]] = {}
    delayed_retries: list[dict[str, int]] = []
    fresh: list[float | None] = []  # the rebuilt publisher's first confirmed publish, per run
    restart: threading.Thread | None = None
    cluster.rabbitmqctl("add_vhost", PLAIN_VHOST)
    cluster.rabbitmqctl("set_permissions", "-p", PLAIN_VHOST, "guest", ".*", ".*", ".*")
    for rnd in range(bench.rounds):
        if restart is not None:  # the node killed in the run before, restarting since its end
            restart.join(180)  # (a quorum queue declared while a node boots may fail: INTERNAL_ERROR)
        target = rnd % cluster.size
        node = cluster.nodes[target]
        url_first = ";".join(rotate(cluster.urls, target))  # the failover list, the target first
        plain_first = in_vhost(url_first, PLAIN_VHOST)
        # declared through a connection to the target: the queues' leaders are there
        with Connection(node.url) as conn, conn.channel() as ch:
            ch.queue_delete("events.latency")
        with Connection(in_vhost(node.url, PLAIN_VHOST)) as conn, conn.channel() as ch:
            ch.queue_delete("events.plain")
        declare_ours(node.url, ["latency"], "quorum")
        declare_plain(in_vhost(node.url, PLAIN_VHOST), QUORUM)
        before = sockets(os.getpid())  # this process's connections of earlier runs are not this run's
        use(url_first, queue_type="quorum")
        rebuilt = rebuilt_sender()
        celery = bench.plain_sender(plain_first, confirm=True)
        half = FAILOVER_RATE / 2  # event-tasks' worker gets FAILOVER_RATE in all, as plain Celery's does
        streams = {
            "ours": ("ours", ours_sender(), half),
            REBUILT: ("ours", rebuilt, half),
            "celery": ("celery", celery, FAILOVER_RATE),
        }
        files = {s: bench.tmp / f"failover-{s}-{uuid.uuid4().hex[:6]}.txt" for s in ("ours", "celery")}
        for path in files.values():
            path.touch()
        workers = {
            "ours": bench.fabric_worker(
                "latency",
                url_first,
                bench.fresh_sqlite("latency-cluster"),
                EVENT_TASKS_QUEUE_TYPE="quorum",
                BENCH_LATENCY_FILE=str(files["ours"]),
            ),
            "celery": plain_worker(
                bench,
                plain_first,
                queue_arguments=QUORUM,
                BENCH_MODE="latency",
                BENCH_LATENCY_FILE=str(files["celery"]),
            ),
        }
        placement: dict[str, Any] = {}

        def brokers_ready() -> None:
            """Until both queues have every member online; their leaders and members."""
            everyone = list(range(cluster.size))

            def online() -> dict[str, dict[str, Any]] | None:
                ours_queues, plain_queues = parallel(cluster.queue_infos, lambda: cluster.queue_infos(PLAIN_VHOST))
                found = {
                    "events.latency": ours_queues["events.latency"],
                    "plain/events.plain": plain_queues["events.plain"],
                }
                return found if all(q["online"] == everyone for q in found.values()) else None

            found = wait_until(online, 120, "every member of the queues online", interval=0.5)
            placement["leaders"] = {q: info["leader"] for q, info in found.items()}
            placement["members"] = {q: info["members"] for q, info in found.items()}

        def check() -> None:
            try:
                brokers_ready()
            except Exception as exc:
                placement["error"] = exc

        checking = threading.Thread(target=check, daemon=True)  # rabbitmqctl while the workers start
        checking.start()
        node_of_port = {n.port: n.index for n in cluster.nodes}

        def wait_ready() -> None:
            checking.join(300)
            if checking.is_alive() or "error" in placement:
                raise RuntimeError(f"the cluster is not ready for the kill: {placement.get('error', 'still waiting')}")
            clients = {"bench process (producers)": os.getpid(), **{f"{k} worker": w.pid for k, w in workers.items()}}
            placement["clients' nodes"] = {
                name: sorted(
                    {
                        node_of_port[p]
                        for p in tcp_peers(pid, before if pid == os.getpid() else set())
                        if p in node_of_port
                    }
                )
                for name, pid in clients.items()
            }

        def kill() -> None:
            pid = node.beam_pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)

        def reap() -> None:
            node.kill()

        def bring_back(killed: int = target, last: bool = rnd == bench.rounds - 1) -> None:
            nonlocal restart
            restart = None
            if not last:  # the next run needs every node; it waits for this before declaring
                restart = threading.Thread(target=cluster.start_node, args=(killed,), daemon=True)
                restart.start()

        try:
            first = time.time()
            sent, handled = failover_run(
                workers, streams, files, kill, reap, before_kill=wait_ready, after_watch=bring_back
            )
        finally:
            parallel(*[lambda w=w: bench.stop(w) for w in workers.values()])
            celery.close()
            rebuilt.close()
        retries = {k: w.output().count(DELAYED_RETRY) for k, w in workers.items()}
        delayed_retries.append(retries)
        fresh.append(sent[REBUILT]["confirmed"])
        record_failover(
            bench,
            sec,
            RABBIT_KILL,
            sent,
            handled,
            {
                "ours": "`send_event` (quorum queues, confirms; a nack or lost connection sends again on the next "
                "node); worker on the failover list",
                "celery": "`send_task` with `confirm_publish` on the failover list (Celery's default retry policy); "
                "worker on the failover list, queue with `x-queue-type: quorum`",
            },
            misses,
            delayed_delivery_retries=retries,
            killed_node=target,
            leaders=placement.get("leaders"),
            members=placement.get("members"),
            clients_nodes=placement.get("clients' nodes"),
            run_seconds=time.time() - first,
        )
    close_misses(bench, sec, misses)
    stuck = misses.get((RABBIT_KILL + TO_CONFIRMED, "ours"))
    if stuck:
        fresh_values = [v for v in fresh if v is not None]
        bench.results.note(
            sec,
            f"event-tasks' `send_event` got no confirmed publish after the kill (watched "
            f"{min(r['watched after the kill (s)'] for r in stuck):.0f}–{max(r['watched after the kill (s)'] for r in stuck):.0f} s) in "
            f"{len(stuck)} of {bench.rounds} runs: every send failed ({stuck[0].get('first error', '')}). In the "
            f"same runs a second producer through the same library, `Publisher(app, 'lms').send`, dropped "
            f"after each failed send and built anew (a new connection), was confirmed "
            + (
                f"{statistics.median(fresh_values):.2f} s (median; {', '.join(f'{v:.2f}' for v in fresh_values)}) after the kill"
                if fresh_values
                else "never"
            )
            + ", so event-tasks' first handled event after the kill is measured on that producer's events.",
        )
    if any(sum(r.values()) for r in delayed_retries):
        bench.results.note(
            sec,
            "In the failover runs both workers log Celery's native delayed delivery set-up (a quorum queue "
            f"worker's bootstep) retrying on reconnect ('{DELAYED_RETRY}': per run "
            + "; ".join(", ".join(f"{k} {v}" for k, v in r.items()) for r in delayed_retries)
            + "): it tries every URL of the failover list, the killed node's too (3 tries, sleeping 1, 3 and "
            "5 s), and the worker consumes again only after it.",
        )
    return restart


# -- Redis Sentinel ----------------------------------------------------------------------------------
def sentinel(bench: Harness) -> None:
    from tests.redis_sentinel import RedisSentinelSet

    sec = SENTINEL
    sentinels = RedisSentinelSet(replicas=2, sentinels=3)
    try:
        sentinels.start()
    except Exception as exc:
        reason = f"the Sentinel set did not start: {str(exc).splitlines()[0][:300]}"
        for row in [REDIS_WAIT.format(0), REDIS_WAIT.format(1), REDIS_KILL + TO_CONFIRMED, REDIS_KILL + TO_HANDLED]:
            for system in ("ours", "celery"):
                bench.results.unavailable(
                    sec, row, system, reason, "s" if "failover" in row else "events/s", "not measured"
                )
        return
    try:
        for name, phase in (("publish", sentinel_publish), ("failover", sentinel_failover)):
            began = time.monotonic()
            phase(bench, sentinels)
            print(f"  [{sec}] {name} runs done in {time.monotonic() - began:.0f} s", flush=True)
    finally:
        sentinels.cleanup()


def sentinel_publish(bench: Harness, sentinels: Any) -> None:
    from ..workers import wait_until

    sec = SENTINEL
    url, options = sentinels.url, sentinels.transport_options
    queues = [f"events.{s}" for s in SERVICES]
    declare_ours(url, SERVICES, "classic", options)
    celery = bench.plain_sender(url, transport_options=options)
    ours = ours_sender()
    n = bench.n(REDIS_PUBLISH_EVENTS)

    def master():
        return sentinels.master().client()

    def depths() -> list[int]:
        with master() as client:
            return [client.llen(q) for q in queues]

    def purge() -> None:
        with master() as client:
            client.delete(*queues)

    systems = ["ours 0", "ours 1", "celery"]
    celery(0)
    for rnd in range(bench.rounds):
        for system in rotate(systems, rnd):
            if system.startswith("ours"):
                use(url, options, redis_wait_replicas=int(system[-1]))
                ours(0)
            purge()
            send = celery if system == "celery" else ours
            start = time.perf_counter()
            for i in range(n):
                send(i)
            rate = n / (time.perf_counter() - start)
            wait_until(lambda: depths() == [n] * 3, 10, f"{system}: {n} messages in each queue")
            purge()
            if system == "celery":
                for wait in (0, 1):
                    bench.results.add(
                        sec,
                        REDIS_WAIT.format(wait),
                        "celery",
                        rate,
                        "events/s",
                        events=n,
                        note="`send_task` on the Sentinel URL (`broker_transport_options={'master_name': …}`); "
                        "it has no replica wait: the same runs in both rows",
                    )
            else:
                bench.results.add(
                    sec,
                    REDIS_WAIT.format(system[-1]),
                    "ours",
                    rate,
                    "events/s",
                    events=n,
                    note="`send_event` on the Sentinel URL with `master_name`"
                    + ("; each send then `WAIT 1` (one replica has the copies)" if system.endswith("1") else ""),
                )
    celery.close()
    purge()


def sentinel_failover(bench: Harness, sentinels: Any) -> None:
    sec = SENTINEL
    url, options = sentinels.url, sentinels.transport_options
    name = sentinels.master_name
    plain_url = ";".join(f"{u}/{PLAIN_DB}" for u in url.split(";"))
    misses: dict[tuple[str, str], list[dict[str, Any]]] = {}
    restart: threading.Thread | None = None  # the server killed in the run before, back as a replica

    def bring_back(i: int) -> None:
        sentinels.start_server(i)
        sentinels.wait_ready()

    for rnd in range(bench.rounds):
        old = sentinels.master_index()
        server = sentinels.servers[old]
        with sentinels.master().client() as client:
            client.flushall()
        declare_ours(url, ["latency"], "classic", options)
        declare_plain(plain_url, None, options)
        use(url, options, redis_wait_replicas=1)
        ours = ours_sender()
        celery = bench.plain_sender(plain_url, transport_options=options)
        files = {s: bench.tmp / f"failover-{s}-{uuid.uuid4().hex[:6]}.txt" for s in ("ours", "celery")}
        for path in files.values():
            path.touch()
        workers = {
            "ours": bench.fabric_worker(
                "latency",
                url,
                bench.fresh_sqlite("latency-sentinel"),
                CELERY_BROKER_MASTER_NAME=name,
                BENCH_LATENCY_FILE=str(files["ours"]),
            ),
            "celery": plain_worker(
                bench,
                plain_url,
                BENCH_TRANSPORT_OPTIONS=options,
                BENCH_MODE="latency",
                BENCH_LATENCY_FILE=str(files["celery"]),
            ),
        }

        def kill() -> None:
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGKILL)

        def every_server_up(restarting: threading.Thread | None = restart) -> None:
            if restarting is not None:
                restarting.join(120)
                if restarting.is_alive():
                    raise TimeoutError("the server killed in the run before is not back as a replica")

        try:
            first = time.time()
            streams = {"ours": ("ours", ours, FAILOVER_RATE), "celery": ("celery", celery, FAILOVER_RATE)}
            sent, handled = failover_run(workers, streams, files, kill, server.kill, before_kill=every_server_up)
            new = sentinels.wait_for_failover(old, 60)
        finally:
            parallel(*[lambda w=w: bench.stop(w) for w in workers.values()])
            celery.close()
        record_failover(
            bench,
            sec,
            REDIS_KILL,
            sent,
            handled,
            {
                "ours": "`send_event` with `EVENT_TASKS_REDIS_WAIT_REPLICAS=1`; worker on the Sentinel URL",
                "celery": "`send_task` on the Sentinel URL (Celery's default retry policy); worker on the Sentinel URL",
            },
            misses,
            killed_server=old,
            promoted=new,
            run_seconds=time.time() - first,
        )
        restart = None
        if rnd < bench.rounds - 1:  # back while the next run's workers start; that run waits for it
            restart = threading.Thread(target=bring_back, args=(old,), daemon=True)
            restart.start()
    close_misses(bench, sec, misses)


@contextmanager
def _locks(locks: list[threading.Lock]) -> Iterator[None]:
    for lock in locks:
        lock.acquire()
    try:
        yield
    finally:
        for lock in reversed(locks):
            lock.release()
