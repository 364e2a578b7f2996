"""Least privilege on a real RabbitMQ: the grants `events broker-users --apply` makes, tried for real.

A private vhost; users of this module's own (RabbitMQ's users are node-wide: named uniquely and
deleted after); the probe catalog (``prober`` owns every probe type; alpha and beta subscribe).
The release step (``events declare``) runs as the admin ``guest``; everything else as each
service's own user.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import amqp
import pytest
from amqp.exceptions import AccessRefused, PreconditionFailed
from celery import Celery

from event_tasks import catalog
from event_tasks.app import install
from event_tasks.conf import settings as fabric_settings
from event_tasks.send.publisher import Publisher
from event_tasks.testing import wait_until
from tests.brokers import rabbitmq_queue_depths, rabbitmq_vhost, rabbitmqctl
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import Platform

pytestmark = pytest.mark.timeout(180)
SERVICES = ("prober", "alpha", "beta")


class Users:
    """This module's vhost, its service users and their passwords."""

    def __init__(self, vhost_url: str, prefix: str, passwords: Path) -> None:
        self.admin_url = vhost_url
        self.vhost = vhost_url.rsplit("/", 1)[1]
        self.names = {s: f"{prefix}-{s}" for s in SERVICES}
        self.passwords = passwords

    def url(self, service: str) -> str:
        password = (self.passwords / service).read_text().strip()
        return f"amqp://{self.names[service]}:{password}@127.0.0.1:5672/{self.vhost}"

    def channel(self, service: str) -> tuple[amqp.Connection, amqp.Channel]:
        password = (self.passwords / service).read_text().strip()
        conn = amqp.Connection("127.0.0.1:5672", userid=self.names[service], password=password, virtual_host=self.vhost)
        conn.connect()
        channel = conn.channel()
        channel.confirm_select()
        return conn, channel


@pytest.fixture(scope="module", params=["classic", "quorum"])
def users(request: pytest.FixtureRequest, workdir: Path, probe_template_db: Path) -> Iterator[tuple[Users, Platform]]:
    """The grants on classic queues, and on quorum queues (retries through the delay levels)."""
    prefix = f"et-{uuid.uuid4().hex[:8]}"
    with rabbitmq_vhost() as url:
        folder = workdir / f"broker-users-{prefix}"
        passwords = folder / "passwords"
        passwords.mkdir(parents=True)
        for service in SERVICES:
            (passwords / service).write_text(secrets.token_urlsafe(16) + "\n")
        found = Users(url, prefix, passwords)
        mapping = json.dumps(found.names)
        env = {"EVENT_TASKS_BROKER_USERS": mapping, "EVENT_TASKS_QUEUE_TYPE": request.param}
        platform = Platform(url, folder, env=env, template_db=probe_template_db)
        try:
            platform.tooling("events", "declare", "--service", "alpha", "--service", "beta")  # the release step
            out = platform.tooling(
                "events", "broker-users", "--apply", "--password-dir", str(passwords),
                *[a for s in SERVICES for a in ("--service", s)],
            ).stdout  # fmt: skip
            assert out.count("has its permissions") == 3, out
            yield found, platform
        finally:
            platform.stop_all()
            for name in found.names.values():
                try:
                    rabbitmqctl("delete_user", name)
                except RuntimeError:
                    pass  # never created: the command failed before it


def publisher(url: str, service: str) -> Publisher:
    catalog.load("tests.fabric.schemas")
    app = Celery(f"broker-users-{service}", broker=url, set_as_current=False)
    install(app)
    return Publisher(app, service, fabric_settings())


def refused(action: Callable[[amqp.Channel], object], users: Users, service: str) -> BaseException:
    """The channel error RabbitMQ closes ``service``'s channel with while doing ``action``."""
    conn, channel = users.channel(service)
    try:
        with pytest.raises((AccessRefused, PreconditionFailed)) as caught:
            action(channel)
        return caught.value
    finally:
        conn.collect()


def publish(channel: amqp.Channel, exchange: str, routing_key: str, **properties: object) -> None:
    message = amqp.Message(b"[[], {}, {}]", content_type="application/json", **properties)
    channel.basic_publish_confirm(message, exchange=exchange, routing_key=routing_key, confirm_timeout=10)


def test_an_owner_publishes_its_type_to_every_subscriber(users):
    found, _ = users
    before = rabbitmq_queue_depths(found.admin_url)
    event = publisher(found.url("prober"), "prober").send(PROBE_CREATED, {"n": 1})
    assert event.id
    wait_until(
        lambda: all(rabbitmq_queue_depths(found.admin_url).get(f"events.{s}", 0) > before.get(f"events.{s}", 0)
                    for s in ("alpha", "beta")),
        20,
        message="the owner's event in alpha's and beta's queues",
    )  # fmt: skip


def test_a_type_it_does_not_own_is_refused_by_the_broker(users):
    found, _ = users
    error = refused(lambda ch: publish(ch, "events", PROBE_CREATED, user_id=found.names["alpha"]), found, "alpha")
    assert isinstance(error, AccessRefused) and f"topic {PROBE_CREATED!r}" in str(error), error


def test_another_services_queue_cannot_be_read(users):
    found, _ = users
    for read in (lambda ch: ch.basic_get("events.beta"), lambda ch: ch.basic_consume("events.beta", callback=print)):
        error = refused(read, found, "alpha")
        assert isinstance(error, AccessRefused) and "events.beta" in str(error), error


def test_another_services_queue_cannot_be_written(users):
    found, _ = users
    for exchange in ("", "events.beta.retry"):
        error = refused(lambda ch, x=exchange: publish(ch, x, "events.beta"), found, "alpha")
        assert isinstance(error, AccessRefused), error
        assert ("amq.default" if exchange == "" else exchange) in str(error), error


def test_a_forged_user_id_is_refused_by_the_broker(users):
    found, _ = users
    error = refused(lambda ch: publish(ch, "events", PROBE_CREATED, user_id=found.names["beta"]), found, "prober")
    assert isinstance(error, PreconditionFailed) and "user_id" in str(error), error


@pytest.fixture(scope="module")
def alpha(users):
    """alpha's worker, logged in as alpha's own user, checking user_id (EVENT_TASKS_BROKER_USERS)."""
    found, platform = users
    worker = platform.worker("alpha", env={"CELERY_BROKER_URL": found.url("alpha")})
    worker.start()
    return worker


def test_a_worker_with_its_own_user_consumes_retries_and_applies(users, alpha):
    found, platform = users
    worker = alpha
    event = publisher(found.url("prober"), "prober").send(PROBE_CREATED, {"n": 2}, key="fail:alpha:1")
    platform.wait_calls("alpha", event.id, count=2)  # the failed attempt, then its retry
    wait_until(lambda: platform.processed("alpha", event.id), 20, message="alpha applied the retried event")
    log = worker.log()
    # alpha's user may not write to amq.default: the retry went through events.alpha.retry, and it
    # carried alpha's own user_id, which alpha's user_id check accepts
    assert "retry: Retry in" in log and "ACCESS_REFUSED" not in log, log[-3000:]
    assert platform.dead_letters("alpha") == []


def test_an_event_from_a_user_that_is_not_the_owners_is_a_not_owner_dead_letter(users, alpha):
    found, platform = users
    worker = alpha
    forged = publisher(found.admin_url, "prober").send(PROBE_CREATED, {"n": 3})  # guest may write; it owns nothing
    letters = wait_until(
        lambda: [d for d in platform.dead_letters("alpha") if forged.id in (d["task_id"] or "")],
        30,
        message=lambda: f"a dead letter of {forged.id}; log: {worker.log()[-2000:]}",
    )
    assert letters[0]["reason"] == "not_owner"
    assert "'guest'" in letters[0]["detail"] and found.names["prober"] in letters[0]["detail"]
    assert platform.calls("alpha", forged.id) == 0
