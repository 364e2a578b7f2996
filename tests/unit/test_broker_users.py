"""Least privilege on RabbitMQ without a broker: the regexes of each service's user, the user_id
check of the intake, the retry route, and what `events broker-users` prints and runs."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import stat
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from event_tasks.brokers.rabbitmq.delays import delayed_routing_key
from event_tasks.brokers.rabbitmq.users import NOTHING, alternation, grants, grants_for
from event_tasks.conf import Settings, settings
from event_tasks.consume.lost import route_back
from event_tasks.consume.senders import SenderCheck
from event_tasks.management import broker_users
from tests.fabric.schemas.probe import PROBE_CREATED, PROBE_UPDATED

CONF = Settings()
URL = "amqp://guest:guest@127.0.0.1:5672/platform"


def matches(regex: str, name: str) -> bool:
    return re.search(regex, name) is not None


def test_an_alternation_is_anchored_and_escaped():
    regex = alternation(["a.b.v1", "org.x.*"])
    assert matches(regex, "a.b.v1") and matches(regex, "org.x.*")
    assert not matches(regex, "a.b.v10") and not matches(regex, "xa.b.v1") and not matches(regex, "aXb.v1")
    assert not matches(regex, "org.x.created")  # a pattern is a literal binding key here, not a topic match
    assert alternation([]) == NOTHING
    assert not any(matches(NOTHING, s) for s in ("", "events", "a.b.v1"))


def test_a_service_writes_only_its_own_types_and_its_own_way_back():
    lms = grants_for("lms", ["org.openedx.learning.course.created.v1"], ["org.openedx.#"], CONF)
    (events,) = lms.topics
    assert events.exchange == "events"
    assert matches(events.write, "org.openedx.learning.course.created.v1")
    assert not matches(events.write, "org.openedx.learning.certificate.created.v1")
    assert matches(events.read, "org.openedx.#") and not matches(events.read, "#")
    for name in ("events", "events.lms.retry", "events.lms", "celeryev", "reply.celery.pidbox", "lms@h.celery.pidbox"):
        assert matches(lms.write, name), name
    for name in ("amq.default", "", "events.cms", "events.cms.retry", "events.lmsx", "celery.pidbox", "celery"):
        assert not matches(lms.write, name), name
    for name in ("events.lms", "events.lms.parked", "events", "celery.pidbox", "celeryev.1234", "h.celery.pidbox"):
        assert matches(lms.read, name), name
    for name in ("events.cms", "events.cms.parked", "events.lms.x", "amq.default"):
        assert not matches(lms.read, name), name
    assert not matches(lms.configure, "events.cms") and matches(lms.configure, "events.lms.retry")


def test_a_service_that_owns_nothing_writes_no_type():
    (events,) = grants_for("alpha", [], [PROBE_CREATED], CONF).topics
    assert events.write == NOTHING and matches(events.read, PROBE_CREATED)


def test_quorum_retries_take_only_routing_keys_ending_in_the_own_queue():
    lms = grants_for("lms", [], [], dataclasses.replace(CONF, queue_type="quorum"))
    delayed = {t.exchange: t for t in lms.topics if t.exchange.startswith("celery_delayed")}
    assert len(delayed) == 29  # the 28 levels and celery_delayed_delivery
    first = delayed["celery_delayed_27"]
    assert matches(first.write, delayed_routing_key("events.lms", 30))
    assert not matches(first.write, delayed_routing_key("events.cms", 30))
    assert not matches(first.write, delayed_routing_key("events.lms", 30) + ".x")
    assert matches(lms.write, "celery_delayed_27") and matches(lms.read, "celery_delayed_delivery")


def test_grants_cover_owners_and_subscribers_and_map_owners_to_services():
    conf = dataclasses.replace(CONF, signing_owners={"openedx/edx-platform": ("lms", "cms")})
    found = grants({"a.b.v1": "openedx/edx-platform", "c.d.v1": "credentials"}, {"discovery": ["a.b.v1"]}, conf)
    by = {g.service: g for g in found}
    assert sorted(by) == ["cms", "credentials", "discovery", "lms"]
    assert by["lms"].owns == by["cms"].owns == ("a.b.v1",) and by["credentials"].owns == ("c.d.v1",)
    assert by["discovery"].owns == () and by["discovery"].subscribes == ("a.b.v1",)
    mapped = grants({}, {"lms": []}, dataclasses.replace(CONF, broker_users={"lms": "svc-lms"}))
    assert mapped[0].user == "svc-lms"


def test_the_user_id_check_takes_the_owners_user_and_the_own_user_only():
    conf = dataclasses.replace(CONF, broker_users={"prober": "u-prober", "alpha": "u-alpha", "beta": "u-beta"})
    check = SenderCheck.of("alpha", conf)
    assert check is not None
    assert check.problem(PROBE_CREATED, "u-prober") is None  # the owner's
    assert check.problem(PROBE_CREATED, "u-alpha") is None  # its own retries and sent-back copies
    detail = check.problem(PROBE_CREATED, "u-beta")
    assert detail is not None and "'u-beta'" in detail and "u-prober" in detail and "'prober'" in detail
    assert "no user_id" in (check.problem(PROBE_UPDATED, None) or "")
    assert check.problem(PROBE_CREATED, b"u-prober") is not None
    assert SenderCheck.of("alpha", CONF) is None  # unset: no check


def test_retries_go_back_through_the_services_own_exchange():
    back = route_back("events.lms", 2.0, False, "events.lms.retry")
    assert (back["exchange"], back["routing_key"], back["countdown"]) == ("events.lms.retry", "events.lms", 2.0)
    assert route_back("events.lms", 2.0, False)["exchange"] == ""  # Redis: kombu's default exchange
    assert route_back("events.lms", 2.0, True, "events.lms.retry")["exchange"] == "celery_delayed_27"


def test_the_command_prints_rabbitmqctl_lines_for_the_vhost_of_the_url():
    lines: list[str] = []
    broker_users.run(URL, CONF, lines.append, services=["lms"], password_dir="/run/secrets/rmq")
    text = "\n".join(lines)
    assert "rabbitmqctl add_user lms < /run/secrets/rmq/lms" in text
    assert "rabbitmqctl set_permissions -p platform lms '^(" in text
    topic = next(line for line in lines if "set_topic_permissions" in line)
    assert topic.startswith("rabbitmqctl set_topic_permissions -p platform lms events '^(")
    assert "org\\.openedx\\.learning\\.certificate\\.created\\.v1" in topic  # the demo's lms owns it
    plain: list[str] = []
    broker_users.run(URL.replace("/platform", "/"), CONF, plain.append, services=["credentials"])
    assert "rabbitmqctl add_user credentials '<password>'" in plain and "-p / credentials" in "\n".join(plain)


def test_an_unknown_service_is_one_line_and_exit_2():
    with pytest.raises(CommandError) as caught:
        broker_users.run(URL, CONF, print, services=["nobody_here"])
    assert (
        caught.value.returncode == 2 and "no service nobody_here" in str(caught.value) and "\n" not in str(caught.value)
    )
    with pytest.raises(CommandError, match="not a service name|UPPER|service"):
        broker_users.run(URL, CONF, print, services=["UPPER"])


def test_on_redis_it_prints_an_acl_line_per_service_and_the_admins(tmp_path: Path):
    out: list[str] = []
    conf = settings()  # the demo's catalog, whose services this process sees
    broker_users.run("redis://127.0.0.1:6379/3", conf, out.append, services=["credentials", "lms"])
    setusers = [line for line in out if line.startswith("ACL SETUSER")]
    assert [line.split()[2] for line in setusers] == ["events-credentials", "events-lms", "events-admin"]
    assert all(' reset on "><password>" ' in line for line in setusers)  # a placeholder, no password
    assert any("/3.celery.pidbox" in line for line in setusers)  # the URL's database names Celery's channels
    with pytest.raises(CommandError, match="--password-dir") as caught:
        broker_users.run("redis://127.0.0.1:6379/0", conf, print, services=["credentials"], do_apply=True)
    assert caught.value.returncode == 2 and "\n" not in str(caught.value)
    with pytest.raises(CommandError, match="cannot read the password of events-credentials") as caught:
        broker_users.run(
            "redis://127.0.0.1:6379/0", conf, print, services=["credentials"], do_apply=True, password_dir=str(tmp_path)
        )
    assert caught.value.returncode == 2


def test_apply_reads_passwords_from_files_and_never_puts_them_on_argv(tmp_path: Path):
    log = tmp_path / "calls"
    ctl = tmp_path / "rabbitmqctl"
    ctl.write_text(f'#!/bin/sh\necho "ARGS $*" >> {log}\ncat >> {log}\n')
    ctl.chmod(ctl.stat().st_mode | stat.S_IEXEC)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    with pytest.raises(CommandError, match="cannot read the password of lms"):
        broker_users.run(URL, CONF, print, services=["lms"], password_dir=str(secrets), do_apply=True, ctl=str(ctl))
    assert not log.exists()  # nothing ran before every password was read
    (secrets / "lms").write_text("s3cret-pw\n")
    out: list[str] = []
    broker_users.run(URL, CONF, out.append, services=["lms"], password_dir=str(secrets), do_apply=True, ctl=str(ctl))
    args, stdin = log.read_text().split("\n", 1)
    assert args == "ARGS import_definitions --format json"  # one call, the definitions on stdin
    assert "s3cret-pw" not in stdin  # not even there: only its salted hash
    imported = json.loads(stdin)
    (user,) = imported["users"]
    raw = base64.b64decode(user["password_hash"])
    assert user["name"] == "lms" and user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert raw[4:] == hashlib.sha256(raw[:4] + b"s3cret-pw").digest()
    (perm,) = imported["permissions"]
    assert perm["vhost"] == "platform" and matches(perm["write"], "events.lms.retry")
    assert [t["exchange"] for t in imported["topic_permissions"]] == ["events"]
    assert out == ["lms: user 'lms' has its permissions on vhost 'platform'"]
    with pytest.raises(CommandError, match="--password-dir"):
        broker_users.run(URL, CONF, print, services=["lms"], do_apply=True, ctl=str(ctl))
    with pytest.raises(CommandError, match="is not on the PATH"):
        broker_users.run(URL, CONF, print, services=["lms"], password_dir=str(secrets), do_apply=True, ctl="/nope/ctl")


def test_a_host_queue_of_the_worker_is_granted_by_name():
    lms = grants_for("lms", [], [], CONF, host_queues=["maintenance.{service}"])
    for regex in (lms.configure, lms.write, lms.read):
        assert matches(regex, "maintenance.lms") and not matches(regex, "maintenance.cms")
    lines: list[str] = []
    broker_users.run(URL, CONF, lines.append, services=["lms"], host_queues=["maintenance.{service}"])
    assert "maintenance\\.lms" in "\n".join(lines)


def test_apply_refuses_to_turn_its_own_admin_into_a_service_user(tmp_path: Path):
    conf = dataclasses.replace(CONF, broker_users={"lms": "guest"})
    with pytest.raises(CommandError, match="'guest' is the user of the broker URL") as caught:
        broker_users.run(URL, conf, print, services=["lms"], password_dir=str(tmp_path), do_apply=True, ctl="/bin/true")
    assert caught.value.returncode == 2
