"""The openedx-events backend (``event_tasks.openedx``) next to edx-event-bus-redis: send and consume
of the same signal on the bench's private Redis. The measuring is ``bench.openedx_backend``, run as a
process of its own (its Django settings name the openedx catalog, which cannot be combined with the
bench's ``schemas``); this section starts it on the bench's Redis and records its runs."""

from __future__ import annotations

import json
import subprocess

from ..common import ROOT, Harness

NAME = "openedx"
TITLES = ("openedx-events backend on Redis",)
EVENTS = 2000
SEND_ROW = "openedx-events backend send (`producer.send`, one thread)"
CONSUME_ROW = "openedx-events backend consume (duplicate suppression on), one `-P solo` process"


def describe(bench: Harness) -> None:
    bench.results.section(
        "openedx-events backend on Redis",
        f"An Open edX service's own calls: `EventTasksProducer.send` (`EVENT_BUS_PRODUCER = "
        f'"event_tasks.openedx.create_producer"`) and its worker re-emitting the signal to a no-op receiver, '
        f"beside edx-event-bus-redis' `RedisEventProducer.send` and `RedisEventConsumer`; "
        f"`CERTIFICATE_CREATED`, {bench.n(EVENTS)} events per run, {bench.rounds} runs per figure "
        "(`bench/openedx_backend.py`).",
    )


def run(bench: Harness) -> None:
    from ..workers import PY

    sec = "openedx-events backend on Redis"
    n = bench.n(EVENTS, 100)
    bench.flush()
    command = [PY, "-m", "bench.openedx_backend", "--events", str(n), "--rounds", str(bench.rounds)]
    out = subprocess.run(
        [*command, "--url", bench.url, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    bench.flush()
    if out.returncode != 0:
        raise RuntimeError(f"bench.openedx_backend failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for row, key in ((SEND_ROW, "send"), (CONSUME_ROW, "consume")):
        for system, label in (("ours", "event-tasks"), ("openedx", "edx-event-bus-redis")):
            for value in figures[key][label]:
                bench.results.add(sec, row, system, value, "events/s", events=n)
    r = bench.results.row(sec, CONSUME_ROW, "events/s")
    r.figures["ours"].note = (
        "`celery -A config.celery_app worker -Q events.oeconsumer -P solo` (`bench/openedx_settings.py`: "
        "`event_tasks.openedx` re-emitting the signal, duplicate suppression on, SQLite); the run fails "
        "unless the receiver ran for every event with one duplicate mark each and no dead letter"
    )
    r.figures[
        "openedx"
    ].note = (
        "`RedisEventConsumer.consume_indefinitely`, a no-op receiver: the Open edX bus has no duplicate suppression"
    )
    s = bench.results.row(sec, SEND_ROW, "events/s")
    s.figures["ours"].note = (
        "`event_tasks.openedx.create_producer().send(...)`: the payload validated against the catalog, "
        "one copy to the one subscribed queue"
    )
    s.figures["openedx"].note = "`edx_event_bus_redis.create_producer().send(...)`: Avro, one `XADD`"
    bench.results.note(
        sec,
        "Both rows come from one `python -m bench.openedx_backend` process "
        f"(`{' '.join(['python', *command[1:]])}` on the bench's private Redis); per event in that process, the "
        f"worker's decoding + validation (`read_event`) and the re-emitting handler to a no-op receiver took "
        f"{figures['handler_us']:.0f} µs.",
    )
