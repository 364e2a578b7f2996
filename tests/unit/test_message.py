"""The Redis message template: each copy is a complete kombu message with its own ids."""
import base64
import json

from event_tasks.message import RedisMessageTemplate, encode_body


def assemble(pieces, service, queue):
    out = []
    for i, piece in enumerate(pieces):
        out.append(piece if i % 2 == 0 else (service if piece == "s" else queue))
    return json.loads("".join(out))


def test_pieces_give_per_service_ids_and_routing():
    env = {"id": "E", "type": "org.openedx.learning.probe.created.v1", "source": "lms",
           "time": "2026-01-01T00:00:00Z", "specversion": "1.0", "key": None}
    body, argsrepr = encode_body(env, {"n": 1, "text": "\u2063 sneaky markers \u2063"})
    pieces = RedisMessageTemplate().pieces(env["type"], "E", body, argsrepr)
    a = assemble(pieces, "alpha", "events.alpha")
    b = assemble(pieces, "beta", "events.beta")
    assert a["headers"]["id"] == "E:alpha" and b["headers"]["id"] == "E:beta"
    assert a["properties"]["delivery_tag"] != b["properties"]["delivery_tag"]
    assert a["properties"]["delivery_info"] == {"exchange": "", "routing_key": "events.alpha"}
    assert a["headers"]["task"] == env["type"] and a["content-type"] == "application/json"
    args, kwargs, embed = json.loads(base64.b64decode(a["body"]))
    assert args == [env, {"n": 1, "text": "\u2063 sneaky markers \u2063"}] and kwargs == {}
    assert json.loads(a["headers"]["argsrepr"]) == args


def test_long_arguments_are_cut_in_argsrepr_only():
    env = {"id": "E"}
    body, argsrepr = encode_body(env, {"blob": "x" * 5000})
    assert len(argsrepr) == 1024 and argsrepr.endswith("...")
    assert len(json.loads(body)[0][1]["blob"]) == 5000
