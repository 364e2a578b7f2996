"""Signed envelopes end to end, on Redis and on RabbitMQ, with real workers.

Two probe services consume ``probe.created`` (owned by ``prober``): ``alpha`` enforces signatures,
``beta`` only warns. Every event goes to both: what alpha refuses (a dead letter with the reason,
its handler never runs) beta runs and counts. The producer signs with one of two keys of a rotation;
a key removed from the table, a payload changed after signing, an event without a signature and one
signed by another service are what a forger can send. A replayed dead letter and an event the outbox
relay sends keep their signatures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from event_tasks.brokers.message import encode_body
from event_tasks.conf import settings as fabric_settings
from event_tasks.send.publisher import Publisher
from event_tasks.testing import make_test_keys, wait_until
from tests.fabric.schemas.probe import PROBE_CREATED

KEYS = make_test_keys("prober", "prober_next", "prober_removed", "beta")
TABLE = {  # what the consumers accept: prober's two keys of a rotation, and beta's own key
    "prober": {"prober-test": KEYS.public["prober"], "prober_next-test": KEYS.public["prober_next"]},
    "beta": {"beta-test": KEYS.public["beta"]},
}
COMMON = {"EVENT_TASKS_RETRY_BACKOFF": "0.2", "EVENT_TASKS_MAX_RETRIES": "1"}


@pytest.fixture(scope="module")
def signed(platform):
    import json

    public = json.dumps(TABLE)
    platform.worker(
        "alpha", env={**COMMON, "EVENT_TASKS_SIGNING_PUBLIC_KEYS": public, "EVENT_TASKS_SIGNING_MODE": "enforce"}
    )
    platform.worker(
        "beta", env={**COMMON, "EVENT_TASKS_SIGNING_PUBLIC_KEYS": public, "EVENT_TASKS_SIGNING_MODE": "warn"}
    )
    platform.start("alpha", "beta")
    return platform


def publisher(platform, key: str | None) -> Publisher:
    app = platform.producer().app
    conf = fabric_settings()
    if key is not None:
        conf = dataclasses.replace(conf, signing_key=KEYS.private[key], signing_key_id=KEYS.key_id(key))
    return Publisher(app, "prober", conf)


def raw_send(platform, envelope: dict, data: dict) -> str:
    """Publish a hand-made envelope and payload to every subscriber, as a forger with broker access can."""
    body, argsrepr = encode_body(envelope, data)
    platform.producer().publish(PROBE_CREATED, envelope["id"], body, argsrepr)
    return envelope["id"]


def envelope(source: str = "prober", key: str | None = None) -> dict:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": str(uuid.uuid4()),
        "type": PROBE_CREATED,
        "source": source,
        "time": now,
        "specversion": "1.0",
        "key": key,
    }


def letters(platform, service: str) -> dict[str, str]:
    return {row["event_id"]: row["reason"] for row in platform.dead_letters(service)}


def test_signed_events_are_applied_with_either_key_of_the_rotation_and_after_a_retry(signed):
    by_current = publisher(signed, "prober").send(PROBE_CREATED, {"n": 1}, key="fail:alpha:1").id  # retried once
    by_next = publisher(signed, "prober_next").send(PROBE_CREATED, {"n": 2}).id
    for eid in (by_current, by_next):
        wait_until(
            lambda eid=eid: signed.processed("alpha", eid), 30, message=lambda: signed.workers["alpha"].output()[-2000:]
        )
        signed.wait_calls("beta", eid)
    assert signed.calls("alpha", by_current) == 2  # the failed attempt, then the retry (same envelope: verified)
    assert not {by_current, by_next} & set(letters(signed, "alpha"))
    assert signed.query("beta", "SELECT * FROM event_tasks_signaturewarning") == []


def test_forged_events_are_dead_letters_where_enforced_and_run_and_counted_where_warned(signed):
    data = {"n": 3, "note": ""}
    unsigned = raw_send(signed, envelope(), data)
    sealed = KEYS.sign("prober", envelope(), data)
    tampered = raw_send(signed, sealed, {**data, "n": 4})  # the payload changed after signing
    removed = raw_send(signed, KEYS.sign("prober_removed", envelope(), data), data)  # a key no longer in the table
    not_owner = raw_send(signed, KEYS.sign("beta", envelope(source="beta"), data), data)  # beta does not own the type
    expected = {unsigned: "unsigned", tampered: "bad_signature", removed: "bad_signature", not_owner: "not_owner"}
    wait_until(
        lambda: set(expected) <= set(letters(signed, "alpha")), 30, message=lambda: str(letters(signed, "alpha"))
    )
    assert {eid: letters(signed, "alpha")[eid] for eid in expected} == expected
    for eid in expected:
        signed.wait_calls("beta", eid)  # warn mode runs it
        assert signed.calls("alpha", eid) == 0  # enforce never ran the handler
    counts = {
        row["reason"]: row["count"]
        for row in signed.query(
            "beta", "SELECT reason, SUM(count) AS count FROM event_tasks_signaturewarning GROUP BY reason"
        )
    }
    assert counts == {"unsigned": 1, "bad_signature": 2, "not_owner": 1}


def test_a_replayed_dead_letter_keeps_its_signature(signed):
    blocked = signed.dir / "blocked-alpha"
    blocked.touch()
    eid = publisher(signed, "prober").send(PROBE_CREATED, {"n": 5}, key="blocked:alpha:x").id
    wait_until(
        lambda: letters(signed, "alpha").get(eid) == "max_retries", 30, message=lambda: str(letters(signed, "alpha"))
    )
    blocked.unlink()
    (letter,) = [row["id"] for row in signed.dead_letters("alpha") if row["event_id"] == eid]
    signed.manage("alpha", "events", "deadletters", "replay", str(letter))
    wait_until(lambda: signed.processed("alpha", eid), 30, message=lambda: signed.workers["alpha"].output()[-2000:])


@pytest.mark.django_db(transaction=True)
def test_an_event_the_relay_sends_from_the_outbox_keeps_its_signature(signed, monkeypatch):
    """The outbox row holds the signed body: the relay, a process without the sender's state, sends
    exactly what was signed, and the enforcing consumer applies it."""
    from django.db import transaction
    from django.utils import timezone

    from event_tasks.models import OutboxEvent
    from event_tasks.send.relay import Relay
    from event_tasks.store import sent

    sender = publisher(signed, "prober")

    def broker_down(batch):
        raise ConnectionError("the broker is down at commit")

    monkeypatch.setattr(sender, "publish_many", broker_down)
    with transaction.atomic():
        eid = sender.send(PROBE_CREATED, {"n": 6}).id
    row = OutboxEvent.objects.get(event_id=eid)
    assert row.sent_at is None and '"sig"' in row.body  # signed before it was written
    OutboxEvent.objects.filter(event_id=eid).update(claimed_until=timezone.now() - dt.timedelta(seconds=1))
    assert Relay(publisher(signed, None), grace=0).drain() == 1  # the relay has no signing key of its own
    sent.flush()  # the relay's sent marks, while this test may use the database
    assert OutboxEvent.objects.get(event_id=eid).sent_at is not None
    wait_until(lambda: signed.processed("alpha", eid), 30, message=lambda: str(letters(signed, "alpha")))
    signed.wait_calls("beta", eid)
    assert eid not in letters(signed, "alpha")
    assert not signed.query("beta", "SELECT * FROM event_tasks_signaturewarning WHERE last_event_id = ?", (eid,))
