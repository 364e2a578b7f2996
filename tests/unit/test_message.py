"""The Redis message template: each copy is a complete kombu message with its own ids."""

import base64
import json

from event_tasks.brokers.message import QUEUE_SLOT, SERVICE_SLOT, RedisMessageTemplate, encode_body


def fill(template, service, queue):
    return json.loads(template.replace(SERVICE_SLOT, service).replace(QUEUE_SLOT, queue))


def test_template_gives_per_service_ids_and_routing():
    env = {
        "id": "E",
        "type": "org.openedx.learning.probe.created.v1",
        "source": "lms",
        "time": "2026-01-01T00:00:00Z",
        "specversion": "1.0",
        "key": None,
    }
    data = {"n": 1, "text": 'control \x01 \x02 characters and "quotes"'}
    body, argsrepr = encode_body(env, data)
    template = RedisMessageTemplate().render(env["type"], "E", body, argsrepr)
    assert template.count(SERVICE_SLOT) == 3 and template.count(QUEUE_SLOT) == 1
    a = fill(template, "alpha", "events.alpha")
    b = fill(template, "beta", "events.beta")
    assert a["headers"]["id"] == "E:alpha" and b["headers"]["id"] == "E:beta"
    assert a["properties"]["correlation_id"] == "E:alpha"
    assert a["properties"]["delivery_tag"] != b["properties"]["delivery_tag"]
    assert a["properties"]["delivery_info"] == {"exchange": "", "routing_key": "events.alpha"}
    assert a["headers"]["task"] == env["type"] and a["headers"]["root_id"] == "E"
    assert a["content-type"] == "application/json" and a["headers"]["retries"] == 0
    args, kwargs, embed = json.loads(base64.b64decode(a["body"]))
    assert args == [env, data] and kwargs == {} and embed["chord"] is None
    assert json.loads(a["headers"]["argsrepr"]) == args


def test_long_arguments_are_cut_in_argsrepr_only():
    env = {"id": "E"}
    body, argsrepr = encode_body(env, {"blob": "x" * 5000})
    assert len(argsrepr) == 1024 and argsrepr.endswith("...")
    assert len(json.loads(body)[0][1]["blob"]) == 5000


def test_pieces_are_the_message_cut_at_its_slots():
    """What the publish script joins (pieces and slots) is the rendered message, slot for slot."""
    env = {"id": "E\x01", "type": "org.openedx.learning.probe.created.v1"}
    body, argsrepr = encode_body(env, {"text": "\x01\x02"})
    template = RedisMessageTemplate()
    pieces = template.pieces(env["type"], "E\x01", body, argsrepr)
    assert len(pieces) == len(template.SLOTS) + 1
    assert not any(SERVICE_SLOT in p or QUEUE_SLOT in p for p in pieces)  # JSON escapes control characters
    rendered = template.render(env["type"], "E\x01", body, argsrepr)
    assert "".join(p + s for p, s in zip(pieces, template.SLOTS)) + pieces[-1] == rendered
    assert fill(rendered, "alpha", "events.alpha")["headers"]["id"] == "E\x01:alpha"


def test_a_batch_on_a_broker_without_confirms_goes_out_whole():
    """``send_events`` on kombu's ``memory://`` (no publisher confirms): every message is published
    on the producer the batch holds (it used to take the producer's lock again and hang)."""
    import threading

    from kombu import Connection, Queue

    from event_tasks.brokers.message import Prepared
    from event_tasks.brokers.rabbitmq.fanout import KombuFanout
    from event_tasks.conf import Settings

    fanout = KombuFanout("memory://", {}, Settings())
    queue = Queue("events.probe", exchange=fanout.exchange, routing_key="#")
    with Connection("memory://") as conn:
        queue(conn.default_channel).declare()
        batch = [Prepared("org.example.thing.v1", f"id-{i}", "[[{}, {}], {}, {}]", "()") for i in range(3)]
        done = threading.Event()
        result: list[object] = []
        worker = threading.Thread(target=lambda: (result.append(fanout.publish_many(batch)), done.set()), daemon=True)
        worker.start()
        assert done.wait(10), "publish_many hung"
        assert result == [[None, None, None]]
        got = [queue(conn.default_channel).get(no_ack=True) for _ in range(3)]
        assert [m.headers["id"] for m in got if m is not None] == ["id-0", "id-1", "id-2"]
    fanout.close()


def test_a_retry_on_quorum_queues_goes_through_the_delay_levels_to_its_own_queue_only():
    from event_tasks.brokers.rabbitmq.delays import FIRST_LEVEL, delivery_binding
    from event_tasks.consume.lost import route_back

    classic = route_back("events.lms", 2.5, broker_delays=False)
    assert classic == {
        "queue": "events.lms",
        "exchange": "",
        "routing_key": "events.lms",
        "exchange_type": "direct",
        "countdown": 2.5,
    }
    quorum = route_back("events.lms", 2.5, broker_delays=True)
    assert quorum["exchange"] == FIRST_LEVEL and quorum["countdown"] == 0
    bits, rest = quorum["routing_key"].split(".")[:28], quorum["routing_key"].split(".")[28:]
    assert int("".join(bits), 2) == 3 and rest == ["events", "lms"]  # 2.5 s rounds up to 3
    assert route_back("events.lms", 0.2, broker_delays=True)["routing_key"].split(".")[27] == "1"  # at least 1 s
    # The binding matches exactly 28 words and the queue's name: not a longer name ending the same way.
    pattern = delivery_binding("events.lms").routing_key.split(".")
    assert len(pattern) == 30 and pattern[:28] == ["*"] * 28 and pattern[28:] == ["events", "lms"]
