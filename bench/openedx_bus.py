"""The Open edX Redis event bus (openedx-events + edx-event-bus-redis), the third comparator.

Producer (in the bench process): ``RedisEventProducer.send`` of ``CERTIFICATE_CREATED`` with
``CertificateData``: Avro serialization, one ``XADD`` to the topic's stream (``maxlen``
≈10,000). Consumer (``python -m bench.openedx_bus consume …``, its own process and minimal
Django settings): ``RedisEventConsumer.consume_indefinitely`` of one consumer group (one group
per consuming service), a no-op receiver on the signal, or one that records the latency.
"""

from __future__ import annotations

import argparse
import os
import sys

TOPIC = "learning-certificate-lifecycle"
EVENT_KEY_FIELD = "certificate.course.course_key"


def make_producer(url: str):
    """A producer on ``url`` (the bench process has Django set up already)."""
    from django.conf import settings

    settings.EVENT_BUS_REDIS_CONNECTION_URL = url
    from edx_event_bus_redis import create_producer

    producer = create_producer()
    if producer is None:
        raise RuntimeError("edx-event-bus-redis did not create a producer")
    return producer


def sender(producer):
    """``send(i)``: what an Open edX service does per event: metadata, then the producer's ``send``."""
    from openedx_events.learning.signals import CERTIFICATE_CREATED

    from .payload import openedx_certificate

    data = [openedx_certificate(i) for i in range(16)]

    def send(i: int) -> None:
        producer.send(
            signal=CERTIFICATE_CREATED,
            topic=TOPIC,
            event_key_field=EVENT_KEY_FIELD,
            event_data={"certificate": data[i % 16]},
            event_metadata=CERTIFICATE_CREATED.generate_signal_metadata(),
        )

    return send


def consume(url: str, group: str, mode: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[],
        USE_TZ=True,
        SECRET_KEY="bench",
        EVENT_BUS_REDIS_CONNECTION_URL=url,
        EVENT_BUS_REDIS_CONSUMER_POLL_TIMEOUT=1,
    )
    django.setup()
    from edx_event_bus_redis import RedisEventConsumer
    from openedx_events.learning.signals import CERTIFICATE_CREATED

    from bench.services import count, record_latency

    if mode == "latency":

        def receiver(sender=None, metadata=None, **kwargs):
            record_latency(metadata.time.timestamp())
    else:

        def receiver(sender=None, **kwargs):
            count()

    CERTIFICATE_CREATED.connect(receiver, weak=False)
    consumer = RedisEventConsumer(TOPIC, group, f"{group}-1", check_backlog=True)
    print("ready", flush=True)
    consumer.consume_indefinitely()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--url", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--mode", choices=["noop", "latency"], default="noop")
    args = parser.parse_args(argv)
    consume(args.url, args.group, args.mode)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(sys.argv[1:])
