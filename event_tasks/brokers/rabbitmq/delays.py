"""Retry delays on RabbitMQ quorum queues: the broker holds a retry until its time, not the worker.

A quorum queue takes no global QoS, so a worker cannot raise its prefetch while it holds retries
with an ETA: held retries would fill the window and stall the queue. With
``EVENT_TASKS_QUEUE_TYPE = "quorum"`` a retry goes through Celery's native delayed delivery
instead: 28 topic exchanges and quorum queues ``celery_delayed_<level>`` (kombu declares them; a
level holds a message 2**level seconds when its bit of the routing key is 1) that pass the message
on to ``celery_delayed_delivery`` once its delay is over. The routing key is the delay in binary,
one bit per word, then the service's queue name; each service queue is bound to
``celery_delayed_delivery`` by exactly 28 single-word wildcards and its own name, so a retry comes
back to the queue of the service that failed and to no other (Celery's own binding of a queue,
``#.<key>``, would also match longer keys ending in the same words).
"""

from __future__ import annotations

import math

from kombu import Connection, Exchange, binding
from kombu.transport.native_delayed_delivery import (
    CELERY_DELAYED_DELIVERY_EXCHANGE,
    MAX_LEVEL,
    MAX_NUMBER_OF_BITS_TO_USE,
    calculate_routing_key,
    declare_native_delayed_delivery_exchanges_and_queues,
    level_name,
)

FIRST_LEVEL = level_name(MAX_LEVEL)  # where every delayed message starts
LONGEST = 2**MAX_NUMBER_OF_BITS_TO_USE - 1  # seconds (~8.5 years)


def delay_exchange() -> Exchange:
    return Exchange(FIRST_LEVEL, type="topic", durable=True)


def delivery_exchange() -> Exchange:
    return Exchange(CELERY_DELAYED_DELIVERY_EXCHANGE, type="topic", durable=True)


def delayed_routing_key(queue_name: str, countdown: float) -> str:
    """The routing key that brings a message to ``queue_name`` after ``countdown`` seconds (rounded up, >= 1)."""
    seconds = min(LONGEST, max(1, math.ceil(countdown)))
    return calculate_routing_key(seconds, queue_name)


def delivery_binding(queue_name: str) -> binding:
    """The binding of a service queue on ``celery_delayed_delivery``: its own delayed messages only."""
    return binding(delivery_exchange(), routing_key="*." * MAX_NUMBER_OF_BITS_TO_USE + queue_name)


def declare_delays(connection: Connection) -> None:
    """Declare the delay levels as quorum queues (idempotent; what Celery's worker also declares).

    On a connection of its own, closed after: kombu's declaration opens a channel it never closes."""
    with connection.clone() as own:
        declare_native_delayed_delivery_exchanges_and_queues(own, "quorum")
