"""Signed envelopes: what Ed25519 signing costs per event, at send and at receive.

Measured in one process: signing and verifying one certificate event (µs, the canonical encoding and
SHA-256 of the payload included); ``Publisher.send`` to 3 subscribed queues on the private Redis with
and without a signing key (events/s); ``read_event``, the consume step that checks the envelope, the
signature and the payload before any handler runs, with ``EVENT_TASKS_SIGNING_MODE`` enforce and off
(events/s); and a worker's consume rate (one ``-P solo`` worker of the no-op service draining a
pre-filled queue of the same events, signed and enforced against unsigned and off: Celery, the
database and the handler on top of that step).
"""

from __future__ import annotations

import dataclasses
import json
import time

from ..common import Harness

NAME = "signing"
TITLES = ("Signed envelopes",)
EVENTS = 2000
CONSUME_EVENTS = 3000


def describe(bench: Harness) -> None:
    bench.results.section(
        "Signed envelopes",
        f"Ed25519 signatures (`cryptography`), one process, {bench.rounds} runs per figure, "
        f"{bench.n(EVENTS)} events per run: sign and verify one certificate event (µs, canonical JSON "
        "and SHA-256 of the payload included); `Publisher.send` to 3 subscribed queues on the private "
        "Redis, signing on and off; `read_event` (the consume step before any handler: envelope, "
        "signature, payload) with the signing mode enforce and off; one `-P solo` worker of the no-op "
        f"service draining {bench.n(CONSUME_EVENTS)} pre-filled events, signed and enforced against "
        "unsigned and off (a fresh worker and database each run).",
    )


def run(bench: Harness) -> None:
    from celery import Celery

    from event_tasks import signing
    from event_tasks.conf import settings
    from event_tasks.consume import delivery
    from event_tasks.send.publisher import Publisher
    from event_tasks.testing import make_test_keys

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY

    sec = "Signed envelopes"
    n = bench.n(EVENTS)
    keys = make_test_keys("lms")
    base = settings()
    signed_conf = dataclasses.replace(
        base,
        signing_key=keys.private["lms"],
        signing_key_id=keys.key_id("lms"),
        signing_public_keys=keys.public_keys(),
        signing_mode="enforce",
    )
    off_conf = dataclasses.replace(base, signing_mode="off")
    data = bench.payloads()
    bench.flush()
    bench.declare(["s1", "s2", "s3"])
    app = Celery("bench-signing", broker=bench.url, set_as_current=False)
    plain, signer = Publisher(app, "lms", off_conf), Publisher(app, "lms", signed_conf)
    verifier = signing.verifier_for(signed_conf)
    prepared = [signer.prepare(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY)[1] for i in range(16)]
    args = [tuple(json.loads(p.body)[0]) for p in prepared]
    unsigned = [
        tuple(json.loads(plain.prepare(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY)[1].body)[0]) for i in range(16)
    ]
    sign = signer.signer
    assert sign is not None
    for _ in range(bench.rounds):
        t = time.perf_counter()
        for i in range(n):
            sign.sign(args[i % 16][0], args[i % 16][1])
        bench.results.add(
            sec, "sign one event", "ours", (time.perf_counter() - t) / n * 1e6, "µs", higher_is_better=False
        )
        t = time.perf_counter()
        for i in range(n):
            assert verifier.check(args[i % 16][0], args[i % 16][1], "lms") is None
        bench.results.add(
            sec, "verify one event", "ours", (time.perf_counter() - t) / n * 1e6, "µs", higher_is_better=False
        )
        for label, publisher in (("send_event, signing off", plain), ("send_event, signed", signer)):
            t = time.perf_counter()
            for i in range(n):
                publisher.send(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
            bench.results.add(sec, label + " (3 services, Redis)", "ours", n / (time.perf_counter() - t), "events/s")
            bench.flush()
            bench.declare(["s1", "s2", "s3"])
        for label, conf, items in (("off", off_conf, unsigned), ("enforce", signed_conf, args)):
            delivery.settings = lambda conf=conf: conf  # type: ignore[assignment]  # the bench's settings, not Django's
            t = time.perf_counter()
            for i in range(n):
                delivery.read_event(CERTIFICATE_CREATED, items[i % 16], {}, "s1")
            bench.results.add(sec, f"read_event, signing {label}", "ours", n / (time.perf_counter() - t), "events/s")
        delivery.settings = settings
    consume_rows(bench, keys, plain, signer)


def consume_rows(bench: Harness, keys: object, plain: object, signer: object) -> None:
    """A worker draining the same queue of events, unsigned with signing off, then signed and enforced."""
    import uuid

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY
    from .consume import drain_fabric_queue

    n = bench.n(CONSUME_EVENTS, 100)
    queue = "events.noop"
    blobs = {}
    for label, publisher in (("off", plain), ("enforce", signer)):
        bench.flush()
        bench.declare(["noop"])
        data = bench.payloads()
        for i in range(n):
            publisher.send(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)  # type: ignore[attr-defined]
        assert bench.client.llen(queue) == n
        blobs[label] = bench.client.dump(queue)
    signing_env = {
        "off": {"EVENT_TASKS_SIGNING_MODE": "off"},
        "enforce": keys.env(None, "enforce"),  # type: ignore[attr-defined]  # TestKeys
    }
    for _ in range(bench.rounds):
        for label in ("off", "enforce"):
            bench.restore(queue, blobs[label])
            done = bench.tmp / f"done-{uuid.uuid4().hex[:6]}"
            db = bench.fresh_sqlite("noop")
            env = {"BENCH_DONE_AT": str(n), "BENCH_DONE_FILE": str(done), **signing_env[label]}
            w = bench.fabric_worker("noop", bench.url, db, **env)
            secs = drain_fabric_queue(bench, w, queue, n)
            bench.stop(w)
            if not done.exists():
                raise RuntimeError(f"signing {label}: the handler did not run {n} times; log:\n{w.output()[-3000:]}")
            dead = bench.db_count(db, "SELECT count(*) FROM event_tasks_deadletter")
            assert dead == 0, f"signing {label}: {dead} dead letters"
            row = "consume, no-op handler, " + ("signed, signatures enforced" if label == "enforce" else "signing off")
            bench.results.add("Signed envelopes", row + " (one worker, Redis)", "ours", n / secs, "events/s")
