"""Prometheus metrics of the fabric that Flower's ``/metrics`` cannot know, read at scrape time.

Flower exports what Celery's task events say (tasks received, retried, failed, runtimes, per
task name = event type and per worker = service). What lives in the brokers and in each
service's database is exported here, from :func:`event_tasks.ops.status.collect` (the data ``events
status`` prints), plus the duplicates the consumers suppressed:

* ``event_tasks_queue_depth``, ``event_tasks_queue_unacked``, ``event_tasks_queue_oldest_age_seconds``,
  ``event_tasks_queue_consumers``: the service's event queue on the broker;
* ``event_tasks_workers``: the workers consuming it that answered (only with ``workers=True``);
* ``event_tasks_dead_letters{service, reason}``: dead letters held now, every reason present (0 too;
  ``unsigned``, ``bad_signature``, ``not_owner``: events refused by the signature check);
* ``event_tasks_signature_warnings{service, reason}``: deliveries a worker in signing mode ``warn`` ran
  although ``enforce`` would refuse them (what switching to ``enforce`` would dead-letter);
* ``event_tasks_outbox_pending``, ``event_tasks_outbox_oldest_age_seconds``: the outbox backlog;
* ``event_tasks_duplicates_suppressed_total{service, handler}``: redelivered copies skipped;
* ``event_tasks_up``: 0 when the figures could not be read (broker or database down), with the
  error in the log; ``event_tasks_scrape_duration_seconds``.

:class:`StatusCollector` is a ``prometheus_client`` custom collector: a service that already
serves Prometheus metrics registers it (``REGISTRY.register(StatusCollector())``);
``python manage.py events metrics --port N`` serves it alone (:func:`serve`), behind HTTP basic auth
when ``EVENT_TASKS_METRICS_AUTH`` is set (required with ``EVENT_TASKS_REQUIRE_ENDPOINT_AUTH``: :func:`credentials`). Owned by operations;
what is counted belongs to ``status`` (broker and database figures) and ``models``.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..conf import settings
from ..errors import EndpointAuthMissing, ExtraMissing
from ..models import DeadLetter, ProcessedEvent
from ..signing import REASONS as SIGNATURE_REASONS

try:  # the `metrics` extra; only `events metrics` (or a service registering the collector) imports this module
    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise ExtraMissing("events metrics", "prometheus-client", "metrics", str(exc)) from exc

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import StartResponse, WSGIEnvironment

    from celery import Celery

log = logging.getLogger(__name__)
PREFIX = "event_tasks_"


def read_status(
    app: Celery | None = None, services: list[str] | None = None, workers: bool = False, timeout: float | None = None
) -> dict[str, Any]:  # Any: status.collect's JSON-shaped report
    """The data of ``events status`` (broker and database figures per service)."""
    from .status import collect

    return collect(app, services=services, workers=workers, timeout=timeout)


def duplicates_by_handler(alias: str) -> dict[str, int]:
    """``{handler: copies skipped}`` in one service's database (``ProcessedEvent.duplicates``)."""
    from django.db.models import Sum

    rows = ProcessedEvent.objects.using(alias).values("handler").annotate(n=Sum("duplicates")).order_by("handler")
    return {row["handler"]: int(row["n"] or 0) for row in rows}


# Any: data is status.collect's JSON-shaped report (rows of figures, None where a broker cannot tell)
def families(data: dict[str, Any], duplicates: dict[str, dict[str, int]]) -> list[Metric]:
    """Prometheus metric families for one status reading (``duplicates``: ``{service: {handler: n}}``)."""

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ("service",)) -> GaugeMetricFamily:
        return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))

    depth = gauge("queue_depth", "Events waiting in the service's event queue.", ("service", "queue"))
    unacked = gauge("queue_unacked", "Events a worker took from the queue and has not acknowledged yet.")
    oldest = gauge("queue_oldest_age_seconds", "Age of the oldest waiting event (Redis only).")
    consumers = gauge("queue_consumers", "Consumers of the service's event queue (RabbitMQ only).")
    workers = gauge("workers", "Workers consuming the service's event queue that answered.")
    dead = gauge("dead_letters", "Dead letters the service holds now, by reason.", ("service", "reason"))
    warned = gauge(
        "signature_warnings", "Deliveries run in signing mode warn that enforce would refuse.", ("service", "reason")
    )
    pending = gauge("outbox_pending", "Outbox rows not published yet.")
    outbox_age = gauge("outbox_oldest_age_seconds", "Age of the oldest outbox row not published yet.")
    dups = CounterMetricFamily(
        PREFIX + "duplicates_suppressed",
        "Redelivered copies a handler skipped (already applied).",
        labels=["service", "handler"],
    )
    for row in data["services"]:
        service = row["service"]
        if row.get("exists") or row.get("consumes"):
            depth.add_metric([service, row["queue"]], row.get("depth") or 0)
            for family, value in (
                (unacked, row.get("unacked")),
                (oldest, row.get("oldest_age")),
                (consumers, row.get("consumers")),
            ):
                if value is not None:
                    family.add_metric([service], value)
        if data.get("workers") is not None:
            workers.add_metric([service], len(row.get("workers") or []))
        letters = row.get("dead_letters")
        if letters is not None:
            by_reason = dict.fromkeys(DeadLetter.Reason.values, 0)
            by_reason.update(letters["by_reason"])
            for reason, count in sorted(by_reason.items()):
                dead.add_metric([service, reason], count)
        if row.get("dead_letters") is not None:
            for reason in SIGNATURE_REASONS:
                warned.add_metric([service, reason], (row.get("signature_warnings") or {}).get(reason, 0))
        outbox = row.get("outbox")
        if outbox is not None:
            pending.add_metric([service], outbox["pending"])
            if outbox.get("oldest_age") is not None:
                outbox_age.add_metric([service], outbox["oldest_age"])
        for handler, count in (duplicates.get(service) or {}).items():
            dups.add_metric([service, handler], count)
    return [depth, unacked, oldest, consumers, workers, dead, warned, pending, outbox_age, dups]


class StatusCollector(Collector):
    """Reads the fabric's figures on every scrape (see the module docstring).

    ``services``: only these (default: every service this process knows); ``workers``: also ask
    the workers over Celery's remote control (adds up to ``timeout`` seconds to each scrape;
    Flower's ``flower_worker_online`` usually tells enough); ``read``: the status source (tests).
    """

    def __init__(
        self,
        app: Celery | None = None,
        *,
        services: list[str] | None = None,
        workers: bool = False,
        timeout: float | None = None,
        read: Callable[..., dict[str, Any]] = read_status,  # Any: status.collect's JSON-shaped report
        read_duplicates: Callable[[str], dict[str, int]] = duplicates_by_handler,
    ) -> None:
        self.app = app
        self.services = services
        self.workers = workers
        self.timeout = timeout
        self.read = read
        self.read_duplicates = read_duplicates

    def describe(self) -> list[Metric]:
        return []  # nothing is read when the collector is registered; names come with each scrape

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily(PREFIX + "up", "1 if the last scrape read the broker and the databases.")
        try:
            data = self.read(self.app, services=self.services, workers=self.workers, timeout=self.timeout)
            duplicates = {
                row["service"]: self.read_duplicates(row["database"]) for row in data["services"] if row.get("database")
            }
            found = families(data, duplicates)
        except Exception as exc:
            log.warning(
                "event_tasks metrics: reading the status failed (event_tasks_up 0): %r",
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            up.add_metric([], 0)
            found = []
        else:
            up.add_metric([], 1)
        yield from found
        yield up
        yield GaugeMetricFamily(
            PREFIX + "scrape_duration_seconds", "Seconds the last scrape took.", value=time.monotonic() - started
        )


def _close_connections() -> None:
    """After each scrape of :func:`serve`: drop broken or expired database connections, as Django
    does after each request (a database restarted between scrapes)."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


def registry(collector: StatusCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def credentials() -> str | None:
    """``EVENT_TASKS_METRICS_AUTH`` (``user:password``), checked; raises :class:`EndpointAuthMissing` when it
    is missing or malformed and ``EVENT_TASKS_REQUIRE_ENDPOINT_AUTH`` is on (``None``: serve without auth)."""
    conf = settings()
    auth = conf.metrics_auth or None
    user, colon, password = (auth or "").partition(":")
    if (auth is not None and not (user and colon and password)) or (auth is None and conf.require_endpoint_auth):
        problem = "is not set" if auth is None else "is not 'user:password'"
        raise EndpointAuthMissing(
            f"events metrics refuses to start: EVENT_TASKS_METRICS_AUTH {problem} (EVENT_TASKS_REQUIRE_ENDPOINT_AUTH "
            "is on); set it to 'user:password' in the settings, from the environment or a file, never the repository"
        )
    return auth


def authorized(environ: WSGIEnvironment, auth: str | None) -> bool:
    """Whether the request carries the basic-auth credentials ``auth`` (always, when ``auth`` is None)."""
    if auth is None:
        return True
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(given, auth.encode())


def serve(
    collector: StatusCollector,
    port: int,
    address: str = "127.0.0.1",
    on_ready: Callable[[int], None] | None = None,
    auth: str | None = None,
) -> WSGIServer:
    """A WSGI server with ``/metrics`` for ``collector``; returns it (call ``serve_forever()``).

    One request at a time in the calling thread, so the collector's database connections stay in
    one thread. ``port`` 0 picks a free port (``server.server_port``). ``auth`` (``user:password``):
    every request without these basic-auth credentials gets 401.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            log.debug("metrics: " + format, *args)

    metrics_app = make_wsgi_app(registry(collector))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not authorized(environ, auth):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="metrics"')]
            )
            return [b"unauthorized: the metrics need EVENT_TASKS_METRICS_AUTH's credentials\n"]
        if environ.get("PATH_INFO") in ("/metrics", "/"):
            try:
                return metrics_app(environ, start_response)
            finally:
                _close_connections()
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: the metrics are at /metrics\n"]

    server = make_server(address, port, app, handler_class=QuietHandler)
    if on_ready is not None:
        on_ready(server.server_port)
    return server


def run(
    port: int,
    address: str = "127.0.0.1",
    *,
    services: list[str] | None = None,
    workers: bool = False,
    write: Callable[[str], object] = print,
) -> None:
    """``events metrics``: serve ``/metrics`` until SIGTERM or Ctrl-C.

    The server runs in one thread of its own (every scrape, and so every database connection,
    stays in it); the main thread only waits for the signal, then shuts the server down.
    """
    import signal
    import threading

    auth = credentials()  # before anything is served: no credentials where they are required, no start
    stop = threading.Event()
    server = serve(StatusCollector(services=services, workers=workers), port, address, auth=auth)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.serve_forever, name="event-tasks-metrics", daemon=True)
    thread.start()
    write(f"serving event-tasks metrics on http://{address}:{server.server_port}/metrics")
    try:
        while not stop.wait(1.0):
            if not thread.is_alive():
                raise RuntimeError("the metrics server stopped by itself (see the log above)")
    finally:
        server.shutdown()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write("metrics server stopped")
