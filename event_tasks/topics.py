"""Topic patterns, with AMQP semantics: ``*`` is one word, ``#`` is zero or more words.

The same rules run in Python (catalog checks) and in the Redis publish script, and match
what RabbitMQ's topic exchange does.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(p: tuple[str, ...], k: tuple[str, ...]) -> bool:
    if not p:
        return not k
    head, rest = p[0], p[1:]
    if head == "#":
        return any(_match(rest, k[i:]) for i in range(len(k) + 1))
    if not k:
        return False
    return (head == "*" or head == k[0]) and _match(rest, k[1:])
