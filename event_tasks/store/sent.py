"""Marking outbox rows sent after their on-commit publish, in batches, off the sender's path.

The on-commit publish of a row (``outbox.publish_committed``) used to mark it sent at once: one
``UPDATE`` and its own commit per event, on top of the business transaction's commit: on
PostgreSQL and on SQLite in WAL mode that is one more write to the log, and one more round trip
(docs/decisions/0015-outbox-marks-in-batches.md). Now the published ids wait here and are marked
with one ``UPDATE`` per batch:

* on the sender's own thread, right after a publish, once ``BATCH`` ids wait or the oldest has
  waited ``DELAY`` seconds (a busy sender pays one statement per ``BATCH`` events);
* by a daemon thread of its own when the sender goes quiet, for ids older than ``2 × DELAY``
  (its own connection, closed after each batch, so it never keeps one open);
* at interpreter exit (``atexit``), and by :func:`flush` (tests, a management command).

Nothing is lost if the process dies first: the rows keep their claim, whose lease (``outbox.
commit_lease``, at least ``EVENT_TASKS_OUTBOX_GRACE`` + the bounded publish time) is far longer
than ``DELAY``; when it runs out a relay publishes them again, and consumers drop the copies by
event id (the duplicates the outbox already allowed for: a process that died between publishing
and marking). A batch the database refuses is kept and tried again with the next one, up to
``KEEP`` ids (the oldest beyond are left to the relay, with a warning).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import connections

log = logging.getLogger(__name__)
BATCH = 100  # ids marked by one UPDATE on the sender's thread
DELAY = 0.2  # seconds the oldest id waits before the sender's next publish marks it
KEEP = 10_000  # ids kept across failing batches


class SentMarks:
    """Ids published after commit, per database alias, waiting to be marked sent."""

    def __init__(self, mark: Callable[[str, list[str]], int]) -> None:
        self.mark = mark  # outbox.mark_sent_ids: one UPDATE of these ids (chunked)
        self._reset()

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.pending: dict[str, list[str]] = {}
        self.count = 0
        self.oldest = 0.0  # time.monotonic() of the oldest pending id
        self.thread: threading.Thread | None = None

    def add(self, using: str, ids: list[str]) -> None:
        """``ids`` were published: marked now if a batch is due, else soon."""
        now = time.monotonic()
        with self.lock:
            was_empty = not self.count
            if was_empty:
                self.oldest = now
            self.pending.setdefault(using, []).extend(ids)
            self.count += len(ids)
            due = self.count >= BATCH or now - self.oldest >= DELAY
            if not due and self.thread is None:
                self.thread = threading.Thread(target=self._run, name="event-tasks-outbox-marks", daemon=True)
                self.thread.start()
            elif not due and was_empty:
                self.wake.notify()  # the thread sleeps until something waits
        if due:
            self.flush()

    def take(self) -> dict[str, list[str]]:
        with self.lock:
            taken, self.pending, self.count = self.pending, {}, 0
            return taken

    def flush(self, close: bool = False) -> int:
        """Mark every waiting id sent, on this thread's connection(s); returns how many rows were marked."""
        marked = 0
        for using, ids in self.take().items():
            try:
                marked += self.mark(using, ids)
            except Exception as exc:  # noqa: BLE001 - the database is down or locked: kept for the next batch
                self._keep(using, ids, exc)
            finally:
                if close:
                    connections[using].close()
        return marked

    def _keep(self, using: str, ids: list[str], exc: BaseException) -> None:
        with self.lock:
            kept = self.pending.setdefault(using, [])
            kept[:0] = ids
            if not self.count:
                self.oldest = time.monotonic()
            self.count += len(ids)
            if len(kept) > KEEP:
                dropped = len(kept) - KEEP
                del kept[:dropped]
                self.count -= dropped
                log.warning(
                    "outbox: %d published row(s) could not be marked sent (%s); the relay publishes them "
                    "again after their lease and consumers drop the copies",
                    dropped,
                    exc,
                )
        log.info("outbox: marking %d published row(s) sent failed (%s); tried again with the next batch", len(ids), exc)

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.count:
                    self.wake.wait()
                wait = self.oldest + 2 * DELAY - time.monotonic()
                if wait > 0:
                    self.wake.wait(wait)
                    continue
            self.flush(close=True)  # the sender went quiet: its thread did not mark these

    def after_fork(self) -> None:
        """A forked child starts empty: its parent marks its own rows (and the thread did not follow)."""
        self._reset()


_marks: SentMarks | None = None


def marks(mark: Callable[[str, list[str]], int]) -> SentMarks:
    """The process's marks; ``mark`` (``outbox.mark_sent_ids``) marks one alias's ids sent."""
    global _marks
    if _marks is None:
        _marks = SentMarks(mark)
    return _marks


def flush() -> int:
    """Mark every row this process published and has not marked yet (returns how many)."""
    return _marks.flush() if _marks is not None else 0


def _at_exit() -> None:
    if _marks is not None and _marks.count:
        try:
            _marks.flush()
        except Exception:  # at exit: the relay takes over after the lease
            log.warning("outbox: marking the last published rows sent at exit failed", exc_info=True)


def _after_fork() -> None:
    if _marks is not None:
        _marks.after_fork()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork)
