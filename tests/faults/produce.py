"""The fault suite's producer: ``python -m tests.faults.produce COUNT OUT_FILE [RATE [HOLD [HOLD_COMMITTED]]]``.

Sends probe events ``{"n": 0 … COUNT-1}`` through the public ``send_event`` as service ``prober``:
every third inside ``transaction.atomic()`` (the outbox), the rest directly. It may be SIGKILLed at
any moment and started again with the same OUT_FILE: it resumes after the last ``n`` it finished.

OUT_FILE is its journal, one line per step, flushed before the next step (``<step> <n> <id>``):

* ``begin <n> direct|outbox`` — about to send ``n`` (a kill after this and before the next line
  leaves ``n`` in doubt: a direct send may have gone out under an id nobody knows; an outbox send
  whose transaction had not committed cannot have);
* ``unconfirmed <n> <id>`` — a direct send refused with ``PublishError`` (broker down); it may or
  may not have gone out; ``n`` is sent again as a new event;
* ``open <n> <id>`` — inside the transaction, the outbox row written, not committed yet;
* ``committed <n> <id>`` — only at HOLD_COMMITTED, see below;
* ``direct <n> <id>`` / ``outbox <n> <id>`` — confirmed by the broker / committed.

With ``FAULT_ID_PREFIX`` set, direct sends carry the producer's own id, ``<prefix>-<n>``
(``send_event(..., id=…)``): a send refused or cut off by a kill and sent again is then the same
event, which consumers suppress as a duplicate. Without it every send gets a new id.

HOLD and HOLD_COMMITTED (``-1``: none) are outbox ``n`` where the producer stops until it is
killed: at HOLD inside the open transaction (the event must never arrive); at HOLD_COMMITTED just
after the commit, in an on-commit hook of its own registered before ``send_event``'s, so the
fabric's publish on commit never runs (the committed row is the relay's to send).
"""

from __future__ import annotations

import os
import sys
import time

import django


def resume_after(out_path: str) -> int:
    """The last ``n`` this journal finished (direct or outbox line), -1 when none."""
    last = -1
    if os.path.exists(out_path):
        with open(out_path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 3 and parts[0] in ("direct", "outbox"):
                    last = max(last, int(parts[1]))
    return last


def main(count: int, out_path: str, rate: float, hold: int, hold_committed: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from django.db import transaction

    from event_tasks import send_event
    from event_tasks.errors import PublishError
    from tests.fabric.schemas.probe import PROBE_CREATED

    prefix = os.environ.get("FAULT_ID_PREFIX")
    first = resume_after(out_path) + 1
    started = time.monotonic()
    with open(out_path, "a") as out:

        def note(*parts: object) -> None:
            out.write(" ".join(map(str, parts)) + "\n")
            out.flush()

        for i in range(first, count):
            if i % 3 == 2:
                note("begin", i, "outbox")
                with transaction.atomic():
                    sent: list[str] = []
                    if i == hold_committed:
                        transaction.on_commit(lambda: (note("committed", i, sent[0]), time.sleep(3600)))
                    event = send_event(PROBE_CREATED, {"n": i})
                    sent.append(event.id)
                    note("open", i, event.id)
                    if i == hold:
                        time.sleep(3600)  # killed here: this transaction never commits
                note("outbox", i, event.id)
            else:
                note("begin", i, "direct")
                while True:
                    try:
                        event = send_event(PROBE_CREATED, {"n": i}, id=f"{prefix}-{i}" if prefix else None)
                        break
                    except PublishError as exc:
                        note("unconfirmed", i, exc.event_id)
                        print(f"send {i} refused: {exc.cause!r}", flush=True)  # the producer's log says why
                        time.sleep(0.2)
                note("direct", i, event.id)
            ahead = (i + 1 - first) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


if __name__ == "__main__":
    args = sys.argv[1:] + ["250", "-1", "-1"][len(sys.argv) - 3 :]
    main(int(args[0]), args[1], float(args[2]), int(args[3]), int(args[4]))
