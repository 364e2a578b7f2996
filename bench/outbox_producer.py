"""The producer side of the outbox rows, run as a service's process (``EVENT_TASKS_SERVICE=lms``,
its own ``DATABASE_URL``): ``python -m bench.outbox_producer --events N``.

Measures, in this order, events/s of

* ``direct``: ``send_event`` outside a transaction (straight to the broker);
* ``atomic``: ``with transaction.atomic(): send_event(...)``, one event per transaction: the
  outbox row is written with the transaction and published right after commit (then marked sent);
* ``plain_on_commit``: plain Celery's usual idiom, ``transaction.on_commit(lambda: send_task(...))``
  in a transaction (no outbox: an event is lost if the broker is down at commit);

then leaves ``N`` outbox rows pending (sent inside transactions while the broker "is down": a
transport that refuses every publish), for ``python manage.py events relay`` to publish.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--pending", type=int, default=1000, help="outbox rows to leave for the relay")
    parser.add_argument("--batch", type=int, default=100, help="events per send_events call")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import django

    django.setup()
    from celery import Celery
    from django.db import transaction
    from kombu import Exchange

    import event_tasks
    from bench.payload import CERTIFICATE_CREATED, COURSE_KEY, certificate, envelope
    from event_tasks import send_event
    from event_tasks.conf import settings
    from event_tasks.send.publisher import Publisher, default_publisher

    logging.getLogger("event_tasks").setLevel(logging.ERROR)
    n = args.events
    data = [certificate(i) for i in range(16)]
    out: dict[str, float | int] = {}

    default_publisher()
    send_event(CERTIFICATE_CREATED, data[0], key=COURSE_KEY)  # connect, load the script
    with transaction.atomic():
        send_event(CERTIFICATE_CREATED, data[0], key=COURSE_KEY)  # first outbox write (warm)

    start = time.perf_counter()
    for i in range(n):
        send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
    out["direct"] = n / (time.perf_counter() - start)

    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            send_event(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
    out["atomic"] = n / (time.perf_counter() - start)

    send_events = getattr(event_tasks, "send_events", None)
    if send_events is not None:
        with transaction.atomic():
            send_events([(CERTIFICATE_CREATED, data[0], COURSE_KEY)])  # warm
        start = time.perf_counter()
        for offset in range(0, n, args.batch):
            with transaction.atomic():
                send_events(
                    [
                        (CERTIFICATE_CREATED, data[i % 16], COURSE_KEY)
                        for i in range(offset, min(n, offset + args.batch))
                    ]
                )
        out["atomic_batch"] = n / (time.perf_counter() - start)
        out["atomic_batch_warm"] = 1

    plain = Celery("plain-producer", broker=os.environ["CELERY_BROKER_URL"], set_as_current=False)
    plain.conf.task_serializer = "json"
    exchange = Exchange("events", type="topic", durable=True)
    with plain.producer_or_acquire() as producer:

        def publish(i: int) -> None:
            plain.send_task(
                CERTIFICATE_CREATED,
                args=[envelope(i), data[i % 16]],
                exchange=exchange,
                routing_key=CERTIFICATE_CREATED,
                declare=[exchange],
                producer=producer,
            )

        publish(0)
        start = time.perf_counter()
        for i in range(n):
            with transaction.atomic():
                transaction.on_commit(lambda i=i: publish(i))
        out["plain_on_commit"] = n / (time.perf_counter() - start)

    class Down:
        """A broker that refuses every publish (the outbox keeps the rows for the relay)."""

        errors = (ConnectionError,)

        def publish(self, *args: object) -> None:
            raise ConnectionError("bench: the broker is down")

        publish_to = publish
        publish_many = publish

        def close(self) -> None:
            pass

    down = Publisher(None, "lms", settings(), transport=Down())
    pending = args.pending
    if hasattr(down, "send_many"):  # one insert per transaction of 100 rows (the rows are what matters)
        for offset in range(0, pending, 100):
            with transaction.atomic():
                down.send_many(
                    [(CERTIFICATE_CREATED, data[i % 16], COURSE_KEY) for i in range(offset, min(pending, offset + 100))]
                )
    else:
        for i in range(pending):
            with transaction.atomic():
                down.send(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
    out["pending"] = pending
    print(json.dumps(out))


if __name__ == "__main__":
    main()
