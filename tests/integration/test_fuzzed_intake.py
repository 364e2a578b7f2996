"""The fuzzed intake, on both brokers with a real worker: Hypothesis-drawn raw messages (tests/fuzz.py) put
straight into ``events.alpha`` (RabbitMQ: published on the default exchange with arbitrary properties,
headers and bodies; Redis: pushed into the queue list as kombu items, and as items that are no kombu message
at all). One batch against one running worker, then: every message is accounted for (applied by the
handler, or a dead letter with a known reason and a detail: dead letters + applied == messages put in), the
worker is still running, and a valid event sent afterwards is applied. Then again with the worker enforcing
signatures: only what the type's owner signed is applied, the rest are ``unsigned``, ``bad_signature`` or
``not_owner`` dead letters (or refused for what else is wrong with them). ``-m long`` (``make faults-long``):
the same with ``EVENT_TASKS_FUZZ_LONG`` (2,000) messages."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import uuid

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kombu import Connection, Exchange, Producer

from event_tasks.conf import settings as fabric_settings
from event_tasks.models import DeadLetter
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.fuzz import KEYS, OWNER_SIGNED, SERVICE, Raw, json_values, raw_messages, signed_examples

pytestmark = pytest.mark.timeout(600)
QUEUE = f"events.{SERVICE}"
REASONS = set(DeadLetter.Reason.values)


def kombu_item(raw: Raw) -> bytes:
    """``raw`` as kombu's Redis transport stores a message (body base64, a fresh delivery tag)."""
    message = {
        "body": base64.b64encode(raw.body).decode(),
        "content-encoding": raw.content_encoding,
        "content-type": raw.content_type,
        "headers": raw.headers if raw.headers is not None else {},
        "properties": {
            "delivery_tag": str(uuid.uuid4()),
            "body_encoding": "base64",
            "delivery_mode": 2,
            "priority": 0,
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
        },
    }
    return json.dumps(message).encode()


@st.composite
def broken_kombu_items(draw: st.DrawFn) -> bytes:
    """A kombu-looking item with its outer parts wrong: properties, tag, body encoding, body type."""
    message = json.loads(kombu_item(draw(raw_messages())))
    for part in draw(st.lists(st.sampled_from(["body", "properties", "headers", "content-type"]), max_size=2)):
        message[part] = draw(json_values)
    properties = message.get("properties")
    if isinstance(properties, dict) and draw(st.booleans()):
        properties[draw(st.sampled_from(["delivery_tag", "body_encoding", "delivery_info"]))] = draw(json_values)
    return json.dumps(message).encode()


redis_items = st.one_of(
    raw_messages().map(kombu_item),
    raw_messages().map(kombu_item),
    raw_messages().map(kombu_item),
    broken_kombu_items(),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
)


def put_drawn(strategy: st.SearchStrategy, put, count: int) -> int:
    """Draw ``count`` items with Hypothesis (fixed seed) and ``put`` each; returns how many went in."""
    drawn: list[object] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def put_one(item: object) -> None:
        if put(item) is not False:
            drawn.append(item)

    put_one()
    return len(drawn)


def fuzz(platform, count: int, enforce: bool = False) -> None:
    env = {"EVENT_TASKS_UNKNOWN_TYPE_WAIT": "0", **(KEYS.env(None, "enforce") if enforce else {})}
    if platform.workers.get(SERVICE) is not None and platform.workers[SERVICE].env.get("EVENT_TASKS_SIGNING_MODE") != (
        "enforce" if enforce else None
    ):
        platform.workers.pop(SERVICE).stop()  # the other test's worker: this one checks signatures otherwise
    worker = platform.worker(SERVICE, env=env)
    if not worker.running:
        worker.start()
    applied_before, dead_before = len(platform.seen(SERVICE)), len(platform.dead_letters(SERVICE))
    if platform.broker_url.startswith("redis"):
        client = redis.Redis.from_url(platform.broker_url)
        put = put_drawn(redis_items, lambda item: client.lpush(QUEUE, item), count)
        for raw in signed_examples() if enforce else []:
            put += client.lpush(QUEUE, kombu_item(raw)) > 0
    else:
        with Connection(platform.broker_url) as conn:
            producer = Producer(conn.channel())

            def publish(raw: Raw) -> bool:
                """Publish ``raw``; RabbitMQ closes the connection on a header table it refuses (then
                the message was never put in: reconnect, and it is not counted)."""
                nonlocal producer
                try:
                    producer.publish(
                        raw.body,
                        exchange=Exchange(""),
                        routing_key=QUEUE,
                        content_type=raw.content_type,
                        content_encoding=raw.content_encoding,
                        headers=raw.headers if raw.headers is not None else {},
                        delivery_mode=2,
                    )
                except conn.connection_errors + conn.channel_errors:
                    conn.close()
                    conn.ensure_connection(max_retries=3)
                    producer = Producer(conn.channel())
                    return False
                return True

            put = put_drawn(raw_messages(), publish, count)
            for raw in signed_examples() if enforce else []:
                put += publish(raw)

    def accounted() -> tuple[int, int] | None:
        applied = len(platform.seen(SERVICE)) - applied_before
        dead = len(platform.dead_letters(SERVICE)) - dead_before
        return (applied, dead) if applied + dead >= put else None

    def state() -> str:
        rows = platform.dead_letters(SERVICE)[dead_before:]
        return (
            f"{put} put in, {len(platform.seen(SERVICE)) - applied_before} applied, {len(rows)} dead letters; "
            f"worker errors: {[line for line in worker.output().splitlines() if 'rror' in line or 'Couldn' in line][-15:]}"
            + (f"\nthe worker's log, last lines:\n{worker.output()[-6000:]}" if "Traceback" in worker.output() else "")
        )

    applied, dead = wait_until(
        accounted,
        int(os.environ.get("EVENT_TASKS_FUZZ_WAIT", "90")),
        0.5,
        lambda: f"every message accounted for: {state()}",
    )
    rows = platform.dead_letters(SERVICE)[dead_before:]
    assert {r["reason"] for r in rows} <= REASONS, state()
    assert all(r["detail"] for r in rows), state()
    if enforce:
        conf = dataclasses.replace(
            fabric_settings(), signing_key=KEYS.private["prober"], signing_key_id=KEYS.key_id("prober")
        )
        applied_ids = {r["id"] for r in platform.seen(SERVICE)[applied_before:]}
        after = Publisher(platform.producer().app, "prober", conf).send(PROBE_CREATED, {"n": 1})
        assert applied_ids <= OWNER_SIGNED, f"applied without the owner's signature: {applied_ids - OWNER_SIGNED}"
        assert {"unsigned", "bad_signature", "not_owner"} <= {r["reason"] for r in rows}, state()
    else:
        after = platform.send(PROBE_CREATED, {"n": 1})
    platform.wait_calls(SERVICE, after.id)
    assert worker.running, state()
    assert (len(platform.seen(SERVICE)) - applied_before, len(platform.dead_letters(SERVICE)) - dead_before) == (
        applied + 1,
        dead,
    ), f"nothing counted twice: {state()}"
    assert applied + dead == put, state()
    assert applied > 0, f"some drawn messages are valid events: {state()}"
    reasons: dict[str, int] = {}
    for r in rows:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    print(f"{platform.broker_url.split(':')[0]}: {put} fuzzed messages, {applied} applied, dead letters {reasons}")


def test_fuzzed_messages_are_each_applied_or_a_dead_letter(platform):
    fuzz(platform, 200)


def test_with_signatures_enforced_only_what_the_owner_signed_is_applied(platform):
    fuzz(platform, 200, enforce=True)


@pytest.mark.long
def test_fuzzed_messages_long(platform):
    fuzz(platform, int(os.environ.get("EVENT_TASKS_FUZZ_LONG", "2000")))
