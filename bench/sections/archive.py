"""The archive (``EVENT_TASKS_ARCHIVE_DAYS``): what keeping every sent event costs per send.

``Publisher.send`` to 3 subscribed queues on the private Redis with the archive off and on (the
fan-out script then also appends the event once to the stream ``events.archive``, trimmed by
``MINID ~``), in events/s and µs per send, the script's time inside Redis (``INFO commandstats``:
the broker's share, without the client's noise), and the archive's bytes per event (``MEMORY USAGE``).
"""

from __future__ import annotations

import dataclasses
import time

from ..common import Harness

NAME = "archive"
TITLES = ("The archive",)
EVENTS = 5000


def describe(bench: Harness) -> None:
    bench.results.section(
        "The archive",
        f"`Publisher.send` of a certificate event to 3 subscribed queues on the private Redis, {bench.rounds} "
        f"runs per figure, {bench.n(EVENTS)} events per run, with `EVENT_TASKS_ARCHIVE_DAYS` unset and 7 "
        "(one XADD to `events.archive` in the same script call): events/s and µs per send as the sender sees them, "
        "the script's own time in Redis (`INFO commandstats`), and the archive's Redis memory per event.",
    )


def run(bench: Harness) -> None:
    import redis
    from celery import Celery

    from event_tasks.conf import settings
    from event_tasks.send.publisher import Publisher

    from ..payload import CERTIFICATE_CREATED, COURSE_KEY

    sec = "The archive"
    n = bench.n(EVENTS)
    data = bench.payloads()
    app = Celery("bench-archive", broker=bench.url, set_as_current=False)
    confs = (
        ("off", dataclasses.replace(settings(), archive_days=None)),
        ("on", dataclasses.replace(settings(), archive_days=7.0)),
    )
    publishers = {label: Publisher(app, "lms", conf) for label, conf in confs}
    client = redis.Redis.from_url(bench.url)
    for _ in range(bench.rounds):
        for label, publisher in publishers.items():
            bench.flush()
            bench.declare(["s1", "s2", "s3"])
            client.config_resetstat()
            t = time.perf_counter()
            for i in range(n):
                publisher.send(CERTIFICATE_CREATED, data[i % 16], key=COURSE_KEY)
            elapsed = time.perf_counter() - t
            row = f"send_event, archive {label} (3 services, Redis)"
            bench.results.add(sec, row, "ours", n / elapsed, "events/s")
            bench.results.add(sec, row + ", per send", "ours", elapsed / n * 1e6, "µs", higher_is_better=False)
            # Redis's own time in the script per call: the send's share the broker spends, without the client's noise
            script = client.info("commandstats").get("cmdstat_evalsha", {})
            bench.results.add(
                sec,
                f"fan-out script in Redis, archive {label}, per send",
                "ours",
                float(script.get("usec_per_call", 0.0)),
                "µs",
                higher_is_better=False,
            )
            if label == "on":
                used = client.memory_usage("events.archive", samples=0) or 0
                bench.results.add(sec, "archive memory per event", "ours", used / n, "bytes", higher_is_better=False)
    bench.flush()
