"""``EVENT_TASKS_REDIS_WAIT_REPLICAS``: every publish, batch and replayed copy waits for that many
replicas (``WAIT`` on the connection that wrote), and fewer in time is a ``PublishError`` whose
cause says what to do; a master without the script (a new one after a failover) gets it again."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
from kombu import Connection

from event_tasks.brokers.message import Prepared
from event_tasks.brokers.redis.fanout import RedisFanout
from event_tasks.brokers.topology import declare, service_queue
from event_tasks.conf import Settings, settings
from event_tasks.errors import MasterDeposed, PublishError, ReplicasBehind
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.brokers import RedisServer
from tests.fabric.schemas.probe import PROBE_CREATED

BODY = json.dumps([[], {}, {}])


@pytest.fixture(scope="module")
def master() -> Iterator[RedisServer]:
    server = RedisServer().start()
    server.client().config_set("repl-diskless-sync-delay", 0)  # a replica syncs at once (not after 5 s)
    with Connection(server.url) as conn:
        declare(conn, [service_queue("alpha", [PROBE_CREATED])])
    yield server
    server.cleanup()


@pytest.fixture
def replica(master: RedisServer) -> Iterator[RedisServer]:
    server = RedisServer().start()
    with server.client() as client:
        client.execute_command("REPLICAOF", "127.0.0.1", master.port)
    wait_until(
        lambda: server.client().info("replication").get("master_link_status") == "up", 20, message="the replica's sync"
    )
    yield server
    with server.client() as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    server.cleanup()
    wait_until(lambda: master.client().info("replication")["connected_slaves"] == 0, 20, message="the replica gone")


def conf(replicas: int, timeout: float = 0.05) -> Settings:
    return dataclasses.replace(settings(), redis_wait_replicas=replicas, redis_wait_timeout=timeout)


def waits(server: RedisServer) -> int:
    """How many WAIT commands the server ran so far."""
    stats = server.client().info("commandstats").get("cmdstat_wait") or {}
    return int(stats.get("calls", 0))


def test_a_send_without_the_replicas_asked_for_is_a_publish_error_that_says_what_to_do(master):
    fanout = RedisFanout(master.url, {}, conf(1))
    publisher = Publisher(None, "prober", conf(1), transport=fanout)
    try:
        with pytest.raises(PublishError) as raised:
            publisher.send(PROBE_CREATED, {"n": 1})
        cause = raised.value.cause
        assert isinstance(cause, ReplicasBehind) and (cause.acknowledged, cause.wanted) == (0, 1)
        text = str(raised.value)
        assert "0 of the 1 replica(s)" in text and "same id" in text and "EVENT_TASKS_REDIS_WAIT_REPLICAS" in text
        assert publisher.unreachable(raised.value)  # the relay backs off and keeps its rows
        with pytest.raises(PublishError) as batch:
            publisher.send_many([(PROBE_CREATED, {"n": 2}), (PROBE_CREATED, {"n": 3})])
        assert isinstance(batch.value.cause, ReplicasBehind)  # none of the batch is confirmed
        with pytest.raises(PublishError) as replay:
            publisher.publish_to("alpha", PROBE_CREATED, "replayed", BODY, "()")
        assert isinstance(replay.value.cause, ReplicasBehind)
    finally:
        fanout.close()


def test_with_the_replica_there_every_publish_waits_for_it_and_returns(master, replica):
    fanout = RedisFanout(master.url, {}, conf(1, timeout=5))
    try:
        before = waits(master)
        assert fanout.publish(PROBE_CREATED, "w-1", BODY, "()") == 1
        assert fanout.publish_many([Prepared(PROBE_CREATED, f"w-{i}", BODY, "()") for i in (2, 3, 4)]) == [1, 1, 1]
        fanout.publish_to("events.alpha", "alpha", PROBE_CREATED, "w-5", BODY, "()")
        assert waits(master) - before == 3  # one WAIT per send, per batch, per replayed copy
        ids = [json.loads(m)["headers"]["id"] for m in replica.client().lrange("events.alpha", 0, 4)]
        assert ids == ["w-5:alpha", "w-4:alpha", "w-3:alpha", "w-2:alpha", "w-1:alpha"]  # on the replica
    finally:
        fanout.close()
        master.client().delete("events.alpha")


def test_no_wait_by_default(master):
    fanout = RedisFanout(master.url, {}, conf(0))
    try:
        before = waits(master)
        assert fanout.publish(PROBE_CREATED, "n-1", BODY, "()") == 1
        assert fanout.publish_many([Prepared(PROBE_CREATED, "n-2", BODY, "()")]) == [1]
        assert waits(master) == before
    finally:
        fanout.close()
        master.client().delete("events.alpha")


@pytest.mark.parametrize("replicas", [0, 1])
def test_a_master_without_the_script_gets_it_again(master, replicas, request):
    if replicas:
        request.getfixturevalue("replica")
    fanout = RedisFanout(master.url, {}, conf(replicas, timeout=5))
    try:
        assert fanout.publish(PROBE_CREATED, "s-1", BODY, "()") == 1
        master.client().script_flush()  # as on a replica just promoted: NOSCRIPT
        assert fanout.publish(PROBE_CREATED, "s-2", BODY, "()") == 1
        master.client().script_flush()
        assert fanout.publish_many([Prepared(PROBE_CREATED, "s-3", BODY, "()")]) == [1]
        assert master.client().llen("events.alpha") == 3
    finally:
        fanout.close()
        master.client().delete("events.alpha")


class Sentinels:
    """Stands for the sentinels: the master they name (the newest configuration)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked = 0

    def discover_master(self, service_name: str) -> tuple[str, int]:
        self.asked += 1
        return "127.0.0.1", self.port


def test_behind_sentinel_a_publish_to_a_deposed_master_is_not_confirmed(master, replica):
    """The node written to took the event and its replica confirmed it, but the sentinels name
    another master by then: it will drop the event when it becomes a replica. Not confirmed; the
    connection is dropped, so the next attempt asks the sentinels for the master again."""
    fanout = RedisFanout(master.url, {}, conf(1, timeout=5))
    publisher = Publisher(None, "prober", conf(1), transport=fanout)
    fanout.sentinels = sentinels = Sentinels(port=replica.port)  # a failover the master did not see
    try:
        with pytest.raises(PublishError) as raised:
            publisher.send(PROBE_CREATED, {"n": 1})
        cause = raised.value.cause
        assert isinstance(cause, MasterDeposed)
        assert (cause.written_to, cause.master) == (f"127.0.0.1:{master.port}", f"127.0.0.1:{replica.port}")
        assert "same id" in str(raised.value) and publisher.unreachable(raised.value)
        with pytest.raises(PublishError) as batch:
            publisher.send_many([(PROBE_CREATED, {"n": 2}), (PROBE_CREATED, {"n": 3})])
        assert isinstance(batch.value.cause, MasterDeposed)
        with pytest.raises(PublishError) as replay:
            publisher.publish_to("alpha", PROBE_CREATED, "replayed", BODY, "()")
        assert isinstance(replay.value.cause, MasterDeposed)
        assert sentinels.asked == 3  # after each write and its WAIT
        sentinels.port = master.port  # the sentinels name the node written to: confirmed
        assert fanout.publish(PROBE_CREATED, "d-1", BODY, "()") == 1
        assert fanout.publish_many([Prepared(PROBE_CREATED, "d-2", BODY, "()")]) == [1]
    finally:
        fanout.close()
        master.client().delete("events.alpha")
