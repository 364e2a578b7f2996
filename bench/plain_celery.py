"""Plain Celery, the comparator: a no-op task on the same broker, pool and event payload.

``celery -A bench.plain_celery worker -Q <BENCH_PLAIN_QUEUE> -P solo`` consumes a queue bound
to the same topic exchange ``events`` by the event type, so a producer's ``send_task`` reaches
it the way it reaches the fabric's queues. The task is named after the event type and takes
``(envelope, data)``, the arguments the fabric's messages carry. No Django, no result backend;
the Celery settings that matter for consuming are set like the fabric's workers: JSON only,
late acks, requeue on a lost worker, prefetch multiplier 4 (config/settings/base.py).
``BENCH_MODE=latency`` records ``now - envelope.time`` per task instead of doing nothing.
"""

from __future__ import annotations

import datetime as dt
import os

from celery import Celery
from kombu import Exchange, Queue

from bench.services import count, record_latency

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"
QUEUE = os.environ.get("BENCH_PLAIN_QUEUE", "events.plain")
MODE = os.environ.get("BENCH_MODE", "noop")

app = Celery("plain", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"), set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    task_queues=[
        Queue(QUEUE, Exchange("events", type="topic", durable=True), routing_key=CERTIFICATE_CREATED, durable=True)
    ],
)


@app.task(name=CERTIFICATE_CREATED)
def certificate_created(envelope, data):
    if MODE == "latency":
        record_latency(dt.datetime.fromisoformat(envelope["time"].replace("Z", "+00:00")).timestamp())
    else:
        count()
