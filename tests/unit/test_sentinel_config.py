"""Redis behind Sentinel as kombu and Celery name it: ``sentinel://h1:26379;sentinel://h2:26379`` with
the transport option ``master_name``. It is a Redis broker to the fabric, its clients find the
master through the sentinels, and a worker consumes its event queue with the crash-safe step."""

from __future__ import annotations

import importlib

import kombu.transport
import pytest
from celery import Celery
from django.test import override_settings
from kombu import Connection
from redis.sentinel import SentinelConnectionPool

from event_tasks import conf
from event_tasks.brokers.check import check_redis
from event_tasks.brokers.redis import sentinel as fabric_sentinel
from event_tasks.brokers.redis import transport as fabric_transport
from event_tasks.brokers.redis.clients import close_client, is_sentinel, redis_client, sentinel_target
from event_tasks.brokers.topology import broker_kind, is_redis, queue_type_for
from event_tasks.consume.worker import SENTINEL_TRANSPORT, prepare_worker
from event_tasks.errors import ConfigurationError

URL = "sentinel://127.0.0.1:1;sentinel://127.0.0.1:2;sentinel://127.0.0.1:3"
OPTIONS = {"master_name": "events"}


def test_a_sentinel_list_is_a_redis_broker():
    assert broker_kind(URL) == "redis"
    assert broker_kind("sentinel://:secret@h1:26379/2;sentinel://h2") == "redis"
    assert queue_type_for(URL) == "classic"
    assert is_sentinel(URL) and not is_sentinel("redis://127.0.0.1:6379/0") and not is_sentinel("")


def test_the_list_and_the_transport_options_name_the_sentinels_master_and_database():
    target = sentinel_target(
        "sentinel://user:secret@h1:26380/3;sentinel://h2;sentinel://h3:26381",
        {"master_name": "events", "sentinel_kwargs": {"password": "s3"}, "min_other_sentinels": 1},
    )
    assert target.sentinels == [("h1", 26380), ("h2", 26379), ("h3", 26381)]
    assert (target.master_name, target.db, target.username, target.password) == ("events", 3, "user", "secret")
    assert target.sentinel_kwargs == {"password": "s3"} and target.min_other_sentinels == 1


def test_without_a_master_name_it_says_what_to_set():
    with pytest.raises(ConfigurationError, match=r"no 'master_name'.*CELERY_BROKER_TRANSPORT_OPTIONS"):
        sentinel_target(URL, {})
    with pytest.raises(ConfigurationError, match="only the sentinels"):
        sentinel_target("sentinel://h1:26379;redis://h2:6379", OPTIONS)


def test_the_fabrics_client_is_on_the_sentinels_master():
    client = redis_client(URL, OPTIONS, socket_timeout=0.5)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "events"
        # the fabric's master connection: it asks the sentinels again when it reconnects in place
        assert pool.connection_class.__name__ == "FabricSentinelConnection"
        kwargs = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
        assert [(k["host"], k["port"]) for k in kwargs] == [("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)]
        assert all(k["socket_timeout"] == 0.5 for k in kwargs)
    finally:
        close_client(client)


def test_no_sentinel_answering_is_one_short_line(caplog):
    assert check_redis(URL, require=True, transport_options=OPTIONS) == []  # a warning: it could not check
    (record,) = [r for r in caplog.records if "persistence" in r.getMessage()]
    text = record.getMessage()
    assert "no sentinel (127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3) names a live master 'events'" in text
    assert len(text) < 400, text
    with pytest.raises(ConfigurationError, match="master_name"):
        check_redis(URL, require=False, transport_options={})


def test_is_redis_for_the_sentinel_transports():
    assert is_redis(Connection(URL, transport_options=OPTIONS))  # kombu's own (operator commands, producers)
    assert is_redis(Connection(URL, transport=SENTINEL_TRANSPORT, transport_options=OPTIONS))  # the worker's


def test_the_worker_transport_is_the_crash_safe_channel_on_kombus_sentinel_channel():
    channel = fabric_sentinel.SentinelChannel
    assert issubclass(channel, fabric_transport.Channel)
    assert issubclass(channel, kombu.transport.redis.SentinelChannel)
    assert channel._get_pool is kombu.transport.redis.SentinelChannel._get_pool  # the pool on the master
    assert channel.serve_events is fabric_transport.Channel.serve_events  # the consume step
    assert fabric_sentinel.SentinelTransport.default_port == 26379
    assert (
        importlib.import_module(SENTINEL_TRANSPORT.split(":")[0]).SentinelTransport is fabric_sentinel.SentinelTransport
    )


@pytest.fixture
def alpha_service(monkeypatch):
    from event_tasks import handlers

    # kombu's transport names, as they were: the worker's wiring changes the one of `sentinel`
    monkeypatch.setattr(kombu.transport, "TRANSPORT_ALIASES", dict(kombu.transport.TRANSPORT_ALIASES))
    monkeypatch.setattr(kombu.transport, "_transport_cache", {})
    module = importlib.import_module("tests.fabric.services.alpha.handlers")
    with override_settings(EVENT_TASKS_SERVICE="alpha", EVENT_TASKS_SCHEMAS_PACKAGE="tests.fabric.schemas"):
        conf.settings.cache_clear()
        handlers.reset()
        handlers.discovered.cache_clear()
        original = handlers.discovered
        handlers.discovered = lambda: {"alpha": tuple(handlers.collect(module))}
        try:
            yield
        finally:
            handlers.discovered = original
            handlers.reset()
            conf.settings.cache_clear()


@pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")
def test_a_worker_on_sentinel_consumes_with_the_crash_safe_step_even_after_switching_sentinels(alpha_service):
    app = Celery("host", broker=URL, set_as_current=False)
    app.conf.broker_transport_options = dict(OPTIONS)
    before = dict(app.conf.items())
    plan = prepare_worker(app)
    changed = {k for k, v in app.conf.items() if not k.startswith("event_tasks") and before.get(k) != v}
    assert changed == {"broker_transport"} and app.conf.broker_transport == SENTINEL_TRANSPORT
    assert plan.redis is not None  # the intake serves the event channel (serve_events)
    connection = app.connection_for_read()
    assert connection.transport_cls == SENTINEL_TRANSPORT
    # kombu moves to the next URL of the list after a failed connect, and takes the transport from
    # its scheme again: it must still be the fabric's
    connection.maybe_switch_next()
    assert connection.hostname == "127.0.0.1" and connection.port == 2
    assert type(connection.transport) is fabric_sentinel.SentinelTransport


@pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")
def test_a_host_transport_on_sentinel_is_left_alone(alpha_service, caplog):
    app = Celery("host", broker=URL, set_as_current=False)
    app.conf.broker_transport_options = dict(OPTIONS)
    app.conf.broker_transport = "kombu.transport.redis:SentinelTransport"
    plan = prepare_worker(app)
    assert app.conf.broker_transport == "kombu.transport.redis:SentinelTransport" and plan.redis is None
    assert "can lose a message" in caplog.text
    assert kombu.transport.TRANSPORT_ALIASES["sentinel"] == "kombu.transport.redis:SentinelTransport"


class AnsweringSentinel:
    """A sentinel's client that answers ``SENTINEL MASTERS`` with one state (or cannot be reached)."""

    def __init__(self, port: int, state: dict | None) -> None:
        self.state = state
        self.connection_pool = type("Pool", (), {"connection_kwargs": {"host": "127.0.0.1", "port": port}})()

    def close(self) -> None:
        pass

    def sentinel_masters(self) -> dict:
        if self.state is None:
            import redis

            raise redis.ConnectionError("refused")
        return {"events": self.state}


def master_state(port: int, epoch: int, flags: str = "master") -> dict:
    return {
        "ip": "127.0.0.1",
        "port": port,
        "config-epoch": epoch,
        "is_master": "master" in flags,
        "is_sdown": "s_down" in flags,
        "is_odown": "o_down" in flags,
        "num-other-sentinels": 2,
    }


def test_the_master_of_the_newest_configuration_wins_over_a_sentinel_that_missed_a_failover():
    """Right after a failover a sentinel may still name the old master, back up and empty: the
    fabric's clients (and the worker's) believe the highest config epoch, not the first answer."""
    client = redis_client(URL, OPTIONS)
    try:
        manager = client.connection_pool.sentinel_manager
        manager.sentinels = [
            AnsweringSentinel(1, master_state(7001, epoch=3)),  # missed the failover
            AnsweringSentinel(2, None),  # unreachable
            AnsweringSentinel(3, master_state(7002, epoch=4)),  # the failover's
        ]
        assert manager.discover_master("events") == ("127.0.0.1", 7002)
        manager.sentinels[2].state = master_state(7002, epoch=4, flags="master,s_down")
        assert manager.discover_master("events") == ("127.0.0.1", 7001)  # the only live master named
        manager.sentinels[0].state = None
        with pytest.raises(Exception, match="no sentinel .* names a live master 'events'"):
            manager.discover_master("events")
    finally:
        close_client(client)


def test_the_workers_sentinel_channel_finds_its_master_the_same_way():
    # a channel not connected (kombu's connects in __init__): what its pool is built from
    channel = object.__new__(fabric_sentinel.SentinelChannel)
    channel._connparams = lambda asynchronous=False: {"host": "127.0.0.1", "port": 1, "db": 0}
    channel.connection = type("C", (), {"client": Connection(URL), "default_port": 26379})()
    channel.master_name = "events"
    pool = channel._sentinel_managed_pool()
    assert type(pool.sentinel_manager).__name__ == "FabricSentinel"
    pool.sentinel_manager.sentinels = [
        AnsweringSentinel(1, master_state(7001, 3)),
        AnsweringSentinel(2, master_state(7002, 5)),
    ]
    assert pool.get_master_address() == ("127.0.0.1", 7002)
