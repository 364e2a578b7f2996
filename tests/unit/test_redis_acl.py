"""The Redis ACL plan (event_tasks/brokers/redis/acl.py): which keys, commands and channels each
service's user gets, for the probe catalog and for the demo's; the line ``redis-cli`` reads; the
refusals. tests/integration/test_redis_acl.py applies the plan on a real Redis."""

from __future__ import annotations

import dataclasses
import fnmatch

import pytest

from event_tasks import catalog, handlers
from event_tasks.brokers.redis import acl
from event_tasks.conf import settings
from event_tasks.errors import ConfigurationError
from tests.fabric.schemas.probe import PROBE_CREATED
from tests.integration.fabric import probe_handlers

PROBE_SERVICES = ("alpha", "beta", "delta", "epsilon", "eta", "gamma", "zeta")
DANGEROUS = {"+@all", "+@dangerous", "+@admin", "+flushall", "+flushdb", "+config", "+keys", "+debug", "+acl"}
DANGEROUS |= {"+shutdown", "+monitor", "+scan", "+sort", "+config|get", "+@keyspace", "+@write", "+@read"}


def probe_conf(**changes: object):
    return dataclasses.replace(settings(), schemas_package="tests.fabric.schemas", **changes)


def probe_consumers() -> dict[str, list[str]]:
    return {s: probe_handlers(s).event_types for s in PROBE_SERVICES}


def by_name(users: list[acl.AclUser]) -> dict[str, acl.AclUser]:
    return {u.name: u for u in users}


def selectors(user: acl.AclUser) -> list[tuple[set[str], set[str]]]:
    """Each selector of ``user`` as (patterns, commands); the root rules as the first."""
    root = [r for r in user.rules if not r.startswith("(")]
    parts = [(set(), set(root))] + [(set(), set(r[1:-1].split(" "))) for r in user.rules if r.startswith("(")]
    out = []
    for _, tokens in parts:
        patterns = {t for t in tokens if t[0] in "~%&"}
        out.append((patterns, tokens - patterns))
    return out


def allowed(user: acl.AclUser, command: str, key: str, mode: str = "RW") -> bool:
    """Whether one selector allows ``command`` on ``key`` with that access, as Redis decides it
    (a key pattern: ``~`` read and write, ``%R~`` read, ``%W~`` write; globs as fnmatch reads them)."""
    for patterns, commands in selectors(user):
        if "+" + command not in commands:
            continue
        for pattern in patterns:
            kind, _, glob = pattern.partition("~")
            grants = {"": "RW", "%R": "R", "%W": "W", "%RW": "RW"}.get(kind)
            if grants and set(mode) <= set(grants) and fnmatch.fnmatchcase(key, glob):
                return True
    return False


def test_a_producer_pushes_only_into_its_subscribers_queues_and_reads_only_the_binding_set():
    users = by_name(acl.plan(["prober"], probe_conf(), consumers=probe_consumers()))
    prober = users["events-prober"]
    for service in PROBE_SERVICES:  # prober owns every probe type: each probe service takes one
        assert allowed(prober, "lpush", f"events.{service}", "W")
        assert not allowed(prober, "lpush", f"events.{service}", "R")
        for command in ("lrange", "rpop", "brpop", "del", "llen", "blmove"):
            assert not allowed(prober, command, f"events.{service}", "R"), command
    assert allowed(prober, "lpush", "events.tail.1234", "W")  # a running `events tail` gets copies too
    assert not allowed(prober, "lpush", "events.prober", "W")  # nobody's queue: prober has no handlers
    assert not allowed(prober, "lpush", "celery", "W")
    assert allowed(prober, "evalsha", "_kombu.binding.events")
    assert allowed(prober, "smembers", "_kombu.binding.events", "R")
    assert not allowed(prober, "sadd", "_kombu.binding.events", "W")
    assert not allowed(prober, "srem", "_kombu.binding.events", "W")
    assert allowed(prober, "hset", "_event_tasks.routes.events")
    assert "+publish" not in prober.rules  # no worker: no task events, no control
    assert not any("pidbox" in r for r in prober.rules)


def test_a_producer_of_types_nobody_takes_pushes_into_no_service_queue():
    users = by_name(acl.plan(["prober"], probe_conf(), consumers={"alpha": []}))
    (push,) = [r for r in users["events-prober"].rules if "+lpush" in r]
    assert push == "(%W~events.tail.* +lpush)"


def test_a_consumer_reads_and_writes_its_own_queue_keys_only():
    alpha = by_name(acl.plan(["alpha"], probe_conf(), consumers=probe_consumers()))["events-alpha"]
    own = ["events.alpha", "events.alpha\x06\x163", "events.alpha\x06\x16inflight", "events.alpha\x06\x16inflight_seen"]
    own += ["unacked:events.alpha", "unacked_index:events.alpha", "unacked_mutex:events.alpha"]
    for key in own:
        assert allowed(alpha, "evalsha", key), key  # the take and sweep scripts
    assert allowed(alpha, "blmove", "events.alpha") and allowed(alpha, "rpop", "events.alpha")
    assert allowed(alpha, "hset", "unacked:events.alpha") and allowed(alpha, "zadd", "unacked_index:events.alpha")
    assert allowed(alpha, "set", "unacked_mutex:events.alpha")
    for other in (
        "events.beta",
        "events.alphabet",
        "events.alpha_two",
        "unacked:events.beta",
        "events.beta\x06\x16inflight",
    ):
        for command in ("lrange", "rpop", "brpop", "blmove", "lpush", "del", "hset", "evalsha"):
            assert not allowed(alpha, command, other, "W") and not allowed(alpha, command, other, "R"), (command, other)
    assert allowed(alpha, "sadd", "_kombu.binding.events")  # Celery declares its bindings at every start
    assert not allowed(alpha, "srem", "_kombu.binding.events", "W")  # pruning is the release step's
    assert not allowed(alpha, "del", "_kombu.binding.events", "W")
    assert allowed(alpha, "del", "_event_tasks.routes.events")
    assert allowed(alpha, "lpush", "8ecc84b9.reply.celery.pidbox", "W")
    assert not allowed(alpha, "lrange", "8ecc84b9.reply.celery.pidbox", "R")  # replies to the admin: write-only
    assert allowed(alpha, "llen", "alpha-b5b555@vm.celery.pidbox")


def test_a_consumer_subscribes_to_control_commands_and_publishes_only_task_events():
    alpha = by_name(acl.plan(["alpha"], probe_conf(), consumers=probe_consumers(), db=3))["events-alpha"]
    root_patterns, root_commands = selectors(alpha)[0]
    assert root_patterns == {"&/3.celeryev/*"} and "+publish" in root_commands
    control = [(p, c) for p, c in selectors(alpha) if "&/3.celery.pidbox" in p]
    assert control == [({"&/3.celery.pidbox"}, {"+psubscribe", "+punsubscribe"})]  # never +publish there


def test_a_service_both_producing_and_consuming_gets_both_and_each_rule_once():
    consumers = {**probe_consumers(), "prober": [PROBE_CREATED]}  # prober takes a type of its own
    (prober,) = acl.plan(["prober"], probe_conf(), consumers=consumers)
    assert len(prober.rules) == len(set(prober.rules))
    assert allowed(prober, "blmove", "events.prober")  # its own queue, read and write
    assert allowed(prober, "lpush", "events.alpha", "W")  # its subscribers', write only
    assert not allowed(prober, "rpop", "events.alpha", "R")
    assert "&/0.celery.pidbox" in " ".join(prober.rules)


@pytest.mark.parametrize("services", [["prober"], ["alpha"], ["alpha", "prober"]])
def test_no_user_gets_a_dangerous_command_or_every_key(services):
    for user in acl.plan(services, probe_conf(), consumers=probe_consumers()):
        tokens = {t for rule in user.rules for t in rule.strip("()").split(" ")}
        assert not tokens & DANGEROUS, tokens & DANGEROUS
        assert not {"~*", "&*", "allkeys", "allchannels", "allcommands", "%R~*", "%W~*"} & tokens


def test_names_and_patterns_follow_the_settings():
    conf = probe_conf(queue_prefix="ev.", exchange="fabric")
    users = by_name(acl.plan(["alpha", "prober"], conf, consumers=probe_consumers()))
    assert set(users) == {"events-alpha", "events-prober"}
    assert allowed(users["events-alpha"], "blmove", "ev.alpha")
    assert allowed(users["events-alpha"], "sadd", "_kombu.binding.fabric")
    assert allowed(users["events-prober"], "lpush", "ev.beta", "W")
    assert allowed(users["events-prober"], "smembers", "_kombu.binding.fabric", "R")
    assert not allowed(users["events-prober"], "lpush", "events.beta", "W")


def test_a_service_with_no_role_and_a_bad_name_are_one_line_errors():
    with pytest.raises(ConfigurationError, match="neither owns an event type nor has handlers"):
        acl.plan(["nobody"], probe_conf(), consumers=probe_consumers())
    with pytest.raises(ConfigurationError):
        acl.plan(["Not A Service"], probe_conf(), consumers=probe_consumers())


def test_the_demo_catalog_producers_push_where_the_handlers_subscribe():
    conf = settings()
    subscribed = acl.subscriptions()  # this process installs every demo service's handlers
    assert subscribed, "no consuming services discovered"
    owners = {e.owner for e in catalog.all()}
    users = by_name(acl.plan(sorted(owners | set(subscribed)), conf))
    for event in catalog.all():
        producer = users[f"events-{event.owner}"]
        takers = [s for s, types in subscribed.items() if event.name in types]
        for service in takers:
            assert allowed(producer, "lpush", conf.queue_name(service), "W"), (event.name, service)
    for service in subscribed:
        assert allowed(users[f"events-{service}"], "blmove", conf.queue_name(service))
    for owner in owners - set(subscribed):  # a producer only: no queue of its own
        assert not allowed(users[f"events-{owner}"], "blmove", conf.queue_name(owner))
    everyone = set(handlers.consuming_services())
    for name, user in users.items():  # nobody may push into a queue whose service takes none of its types
        service = name.removeprefix("events-")
        own_types = {e.name for e in catalog.all() if e.owner == service}
        for other in everyone - {service}:
            if not own_types & set(subscribed[other]):
                assert not allowed(user, "lpush", conf.queue_name(other), "W"), (name, other)


def test_the_redis_cli_line_quotes_selectors_and_escapes_the_separator():
    alpha = acl.plan(["alpha"], probe_conf(), consumers=probe_consumers())[0]
    line = acl.rules_text(alpha)
    assert line.startswith('ACL SETUSER events-alpha reset on "><password>" +ping ')
    assert '"(~events.alpha ~events.alpha\\x06\\x16* ~unacked:events.alpha ' in line
    assert "\x06" not in line and "\n" not in line
    assert acl.rules_text(alpha, "s3cr et").count('">s3cr et"') == 1
    assert acl.quoted('a"b\\') == '"a\\"b\\\\"'


def test_apply_needs_a_password_for_every_user_before_it_changes_anything():
    calls: list[tuple[object, ...]] = []

    class Client:
        def execute_command(self, *args: object) -> None:
            calls.append(args)

    users = acl.plan(["alpha", "prober"], probe_conf(), consumers=probe_consumers())
    with pytest.raises(ConfigurationError, match="events-prober"):
        acl.apply(Client(), users, {"events-alpha": "a"})  # type: ignore[arg-type]  # a stand-in client
    assert calls == []
    acl.apply(Client(), users, {"events-alpha": "a", "events-prober": "p"})  # type: ignore[arg-type]  # as above
    assert [c[:6] for c in calls] == [
        ("ACL", "SETUSER", "events-alpha", "reset", "on", ">a"),
        ("ACL", "SETUSER", "events-prober", "reset", "on", ">p"),
    ]
    assert calls[0][6:] == users[0].rules


def test_the_admin_user_has_every_key_and_no_dangerous_command():
    assert acl.admin().rules == ("~*", "&*", "+@all", "-@dangerous", "+info")


def test_host_queues_are_the_consumers_own_and_named_after_each_service():
    users = acl.plan(
        ["alpha", "beta"], probe_conf(), consumers=probe_consumers(), host_queues=["maintenance.{service}"]
    )
    alpha, beta = users
    assert allowed(alpha, "brpop", "maintenance.alpha") and allowed(alpha, "llen", "maintenance.alpha\x06\x163")
    assert allowed(alpha, "sadd", "_kombu.binding.maintenance.alpha")
    assert not allowed(alpha, "brpop", "maintenance.beta") and allowed(beta, "brpop", "maintenance.beta")
    (prober,) = acl.plan(["prober"], probe_conf(), consumers=probe_consumers(), host_queues=["maintenance.{service}"])
    assert not allowed(prober, "brpop", "maintenance.prober")  # no worker, no host queue
