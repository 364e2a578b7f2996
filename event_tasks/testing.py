"""Helpers for testing services built on event-tasks (shipped to users; pytest fixtures in
``event_tasks.pytest_plugin``).

* :func:`make_event` builds an :class:`~event_tasks.Event` exactly as a worker would hand it to
  a handler (validated, JSON round-tripped), so handlers can be called directly;
* :func:`capture_events` records what ``send_event`` would publish, validated, without a broker
  (also inside Django's ``TestCase``, whose transaction never commits);
* :func:`run_handlers` runs a service's handlers for one event in process, through duplicate
  suppression and the retry decision of the worker;
* :func:`make_test_keys` makes Ed25519 key pairs at test time for signed envelopes
  (:class:`TestKeys`: the settings of each service, and signing a hand-made envelope);
* :func:`wait_until` polls a condition with a timeout instead of sleeping;
* :class:`ServiceWorker` runs one service's real Celery worker in a subprocess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time as _time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from . import catalog
from .conf import settings
from .envelope import Event
from .handlers import service_handlers
from .send import publisher

if TYPE_CHECKING:
    from .brokers.message import Prepared
    from .consume.delivery import Outcome

T = TypeVar("T")


def make_event(
    event_type: str,
    data: Mapping[str, object],
    *,
    key: str | None = None,
    source: str = "test",
    id: str | None = None,
    time: dt.datetime | None = None,
) -> Event:
    """An event of ``event_type`` as a consuming worker would see it (raises like ``send_event``)."""
    entry = catalog.get(event_type)
    _, wire = entry.encode(data)
    loaded = entry.decode(json.loads(json.dumps(wire)))
    return Event(
        id=id or str(uuid.uuid4()),
        type=event_type,
        source=source,
        time=time or dt.datetime.now(dt.UTC),
        key=key,
        data=loaded,
    )


@dataclasses.dataclass(frozen=True)
class TestKeys:
    """Ed25519 key pairs made at test time (never committed), one per service, key ids ``<service>-test``."""

    __test__ = False  # not a pytest test class
    private: Mapping[str, str]  # service -> base64 private key
    public: Mapping[str, str]  # service -> base64 public key

    def key_id(self, service: str) -> str:
        return f"{service}-test"

    def public_keys(self) -> dict[str, dict[str, str]]:
        """``EVENT_TASKS_SIGNING_PUBLIC_KEYS`` for every service of these keys."""
        return {s: {self.key_id(s): key} for s, key in self.public.items()}

    def settings(self, service: str | None = None, mode: str | None = "enforce") -> dict[str, object]:
        """The ``EVENT_TASKS_SIGNING_*`` Django settings of ``service`` (its key; everyone's public keys)
        for ``override_settings(**keys.settings("lms"))``; without ``service``, a consumer's only."""
        found: dict[str, object] = {
            "EVENT_TASKS_SIGNING_PUBLIC_KEYS": self.public_keys(),
            "EVENT_TASKS_SIGNING_MODE": mode,
        }
        if service is not None:
            found |= {
                "EVENT_TASKS_SIGNING_KEY": self.private[service],
                "EVENT_TASKS_SIGNING_KEY_ID": self.key_id(service),
            }
        return found

    def env(self, service: str | None = None, mode: str = "enforce") -> dict[str, str]:
        """The same as environment variables (the demo's settings read them; the public keys as JSON)."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.settings(service, mode).items()}

    def sign(self, service: str, envelope: Mapping[str, object], data: object) -> dict[str, object]:
        """``envelope`` (time as it travels: ISO 8601) signed by ``service`` over ``data`` as it travels."""
        from .signing import Signer, load_private_key

        return Signer(self.key_id(service), load_private_key(self.private[service])).sign(envelope, data)


def make_test_keys(*services: str) -> TestKeys:
    """A fresh key pair for each of ``services`` (signed envelopes in tests: docs/signing.md)."""
    from .signing import generate_key_pair

    pairs = {service: generate_key_pair() for service in services}
    return TestKeys({s: p[0] for s, p in pairs.items()}, {s: p[1] for s, p in pairs.items()})


@dataclasses.dataclass
class CapturedEvents:
    """What ``send_event`` sent while :func:`capture_events` was active, in order."""

    events: list[Event] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __getitem__(self, index: int) -> Event:
        return self.events[index]

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.events if e.type == event_type]

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


class _Recorder:
    """A fan-out that keeps the published bodies instead of talking to a broker."""

    errors: tuple[type[BaseException], ...] = ()
    connection_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []

    def publish(self, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        self.bodies.append((event_id, body))

    def publish_to(self, queue: str, service: str, event_type: str, event_id: str, body: str, argsrepr: str) -> None:
        self.bodies.append((event_id, body))

    def publish_many(self, batch: Sequence[Prepared]) -> list[int | None]:
        self.bodies.extend((item.event_id, item.body) for item in batch)
        return [None] * len(batch)

    def close(self) -> None:
        pass


class _CapturingPublisher(publisher.Publisher):
    def __init__(self, service: str, captured: CapturedEvents) -> None:
        super().__init__(None, service, settings(), transport=_Recorder())
        self.use_outbox = False  # record at once: a test's transaction may never commit
        self.captured = captured

    def send(
        self, event_type: str, data: Mapping[str, object], *, key: str | None = None, id: str | None = None
    ) -> Event:
        event = super().send(event_type, data, key=key, id=id)
        self.captured.events.append(event)
        return event

    def send_many(self, items: Iterable[Sequence[object]]) -> list[Event]:
        events = super().send_many(items)
        self.captured.events.extend(events)
        return events


@contextlib.contextmanager
def capture_events(service: str | None = None) -> Iterator[CapturedEvents]:
    """Record every ``send_event`` in the block instead of publishing it.

    Each event is validated exactly as ``send_event`` validates it (an invalid payload still
    raises ``EventValidationError``), then kept in the returned :class:`CapturedEvents`; no broker
    and no Celery app are needed. ``service`` is the ``source`` of the events (default: this
    process's ``EVENT_TASKS_SERVICE``, else ``"test"``).
    """
    captured = CapturedEvents()
    fake = _CapturingPublisher(service or settings().service or "test", captured)
    with publisher._lock:
        previous = publisher._publisher
        publisher._publisher = (os.getpid(), fake)
    try:
        yield captured
    finally:
        with publisher._lock:
            publisher._publisher = previous


def run_handlers(
    event_type: str,
    data: Mapping[str, object],
    *,
    service: str | None = None,
    key: str | None = None,
    id: str | None = None,
    source: str = "test",
    time: dt.datetime | None = None,
    retries: int = 0,
) -> Outcome:
    """Run ``service``'s handlers for one event in this process, as its worker would.

    The event is validated and JSON round-tripped (:func:`make_event`); each handler runs through
    duplicate suppression (pass the same ``id`` twice to see the second delivery skipped); the
    result says what the worker would do next: ``outcome.decision`` is ``"done"``, ``"retry"`` or
    ``"dead_letter"`` (``outcome.reason``), with ``applied``, ``duplicates`` and ``failures``.
    ``retries`` is the retry number of this delivery (0: the first attempt).
    """
    from .consume.delivery import deliver  # needs Django's models: this module must import before setup (wait_until)

    service = service or settings().require_service()
    event = make_event(event_type, data, key=key, source=source, id=id, time=time)
    handlers = service_handlers(service).for_type(event_type)
    if not handlers:
        raise LookupError(f"service {service!r} has no handler for {event_type!r}")
    return deliver(service, handlers, event, retries=retries, default_max_retries=settings().max_retries)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Return ``predicate()`` as soon as it is truthy; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = _time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if _time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout}s waiting for {text}")
        _time.sleep(interval)


class ServiceWorker:
    """One service's real Celery worker in a subprocess (what the Procfile runs), for tests.

    ``env`` is added to the current environment (``CELERY_BROKER_URL``, ``DATABASE_URL``,
    ``DJANGO_SETTINGS_MODULE`` …); ``app`` is the ``celery -A`` argument. The worker consumes
    ``events.<service>`` and the ``extra_queues`` (the host's own), from ``cwd``.
    """

    def __init__(
        self,
        service: str,
        *,
        env: Mapping[str, str],
        log_dir: str,
        app: str = "config.celery_app",
        pool: str = "solo",
        concurrency: int = 1,
        queue_prefix: str = "events.",
        extra_args: tuple[str, ...] = (),
        extra_queues: tuple[str, ...] = (),
        cwd: str | None = None,
    ) -> None:
        self.service = service
        self.env = dict(env)
        self.app = app
        self.pool = pool
        self.concurrency = concurrency
        self.queue = f"{queue_prefix}{service}"
        self.queues = ",".join((self.queue, *extra_queues))
        self.extra_args = extra_args
        self.cwd = cwd
        self.log_path = os.path.join(log_dir, f"worker-{service}-{uuid.uuid4().hex[:8]}.log")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "-Q",
            self.queues,
            "-P",
            self.pool,
            "-c",
            str(self.concurrency),
            "-n",
            f"{self.service}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
            "-f",
            self.log_path,
            *self.extra_args,
        ]

    def start(self, wait: bool = True, timeout: float = 60.0) -> ServiceWorker:
        if self.running:
            raise RuntimeError(f"worker {self.service} already running")
        env = {**os.environ, **self.env, "EVENT_TASKS_SERVICE": self.service}
        self._ready_marks = self.log().count(" ready.")
        out = open(self.log_path + ".out", "ab")  # noqa: SIM115 - the worker writes it for as long as it runs
        self.process = subprocess.Popen(
            self.command(), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd
        )
        out.close()
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.service} exited with {self.process.returncode}:\n{self.output()[-4000:]}"
                )
            return self.log().count(" ready.") > self._ready_marks

        wait_until(ready, timeout, 0.05, f"worker {self.service} to be ready")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM: finish the current task), then SIGKILL if it hangs."""
        if not self.running:
            return None
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the worker and its pool children: nothing gets to clean up or ack."""
        if self.process is None:
            return None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.wait(10)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        try:
            with open(self.log_path + ".out", encoding="utf-8", errors="replace") as fh:
                return self.log() + fh.read()
        except FileNotFoundError:
            return self.log()

    def __enter__(self) -> ServiceWorker:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
