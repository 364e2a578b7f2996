"""The delivery decision of one event in one service, without Celery.

:func:`read_event` reads the task's arguments ``(envelope, data)`` into an :class:`~event_tasks.Event`
(:class:`~event_tasks.errors.InvalidEvent` when they are not a readable event); :func:`deliver` runs
the service's handlers for it, each in its own transaction with its duplicate mark, and decides
what happens next (:class:`Outcome`: done, retry after :func:`backoff`, or a dead letter). The
event task (``dispatch``) and ``event_tasks.testing.run_handlers`` both call it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import traceback as tb
from collections.abc import Callable, Mapping, Sequence

from .. import catalog, signing
from ..conf import settings
from ..envelope import Event, read_envelope
from ..errors import EventValidationError, InvalidEvent
from ..handlers import Handler
from ..store import idempotency
from ..store.signatures import count_warning

log = logging.getLogger(__name__)


def backoff(retries: int, base: float, cap: float) -> float:
    """Seconds before retry ``retries + 1``: exponential, with jitter (half fixed, half random).

    Celery's own helper takes whole seconds only; sub-second bases matter in tests.
    """
    ceiling = min(cap, base * (2**retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclasses.dataclass
class Failure:
    handler: Handler
    exception: Exception  # deliver() catches Exception only
    traceback: str
    retryable: bool


@dataclasses.dataclass
class Outcome:
    """What one delivery of an event did, and what happens next.

    ``decision``: ``"done"`` (acknowledge), ``"retry"`` (back to the service's queue after a
    backoff) or ``"dead_letter"`` (``reason`` says why: ``max_retries`` or ``not_retried``).
    """

    event: Event
    attempt: int
    applied: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)
    failures: list[Failure] = dataclasses.field(default_factory=list)
    decision: str = "done"
    reason: str = ""

    @property
    def detail(self) -> str:
        return "; ".join(f"{f.handler.name}: {type(f.exception).__name__}: {f.exception}" for f in self.failures)

    @property
    def traceback(self) -> str:
        return "\n".join(f.traceback for f in self.failures)


def deliver(
    service: str,
    handlers: Sequence[Handler],
    event: Event,
    *,
    retries: int,
    default_max_retries: int,
    on_success: Callable[[list[str], list[str]], None] | None = None,
) -> Outcome:
    """Run ``handlers`` for ``event`` (retry number ``retries``) and decide what happens next.

    ``on_success(applied, duplicates)`` records a successful delivery (the task's result row)
    inside the last handler's transaction, next to its duplicate mark: no commit of its own. It
    is not called when the last handler writes no mark (``deduplicate=False``, or a duplicate).
    """
    outcome = Outcome(event, attempt=retries + 1)
    last = len(handlers) - 1
    for index, handler in enumerate(handlers):
        then = None
        if on_success is not None and index == last and not outcome.failures:

            def then(name: str = handler.name) -> None:
                on_success([*outcome.applied, name], list(outcome.duplicates))

        try:
            applied = idempotency.apply(service, handler, event, then)
        except Exception as exc:  # noqa: BLE001 - a handler's failure must not stop the other handlers
            outcome.failures.append(Failure(handler, exc, tb.format_exc(), handler.retryable(exc)))
            continue
        (outcome.applied if applied else outcome.duplicates).append(handler.name)
    if not outcome.failures:
        return outcome
    if not all(f.retryable for f in outcome.failures):
        outcome.decision, outcome.reason = "dead_letter", "not_retried"
    elif any(retries >= f.handler.retries_allowed(default_max_retries) for f in outcome.failures):
        outcome.decision, outcome.reason = "dead_letter", "max_retries"
    else:
        outcome.decision = "retry"
    return outcome


def read_event(event_type: str, args: tuple[object, ...], kwargs: Mapping[str, object], service: str = "") -> Event:
    """The event in a task's arguments ``(envelope, data)``; :class:`InvalidEvent` saying what is wrong
    (also an ``unsigned``, ``bad_signature`` or ``not_owner`` event when the signing mode enforces)."""
    if kwargs or len(args) != 2:
        raise InvalidEvent(
            "invalid_arguments",
            f"expected the arguments (envelope, data), got {len(args)} positional "
            f"and {sorted(kwargs)} keyword arguments",
        )
    envelope = read_envelope(args[0], expected_type=event_type)
    entry = catalog.get(event_type)
    raw = args[0]
    assert isinstance(raw, Mapping)  # read_envelope refused anything else; its time is the string as it travels
    check_signature(service, raw, args[1], entry.owner)
    try:
        data = entry.decode(args[1])
    except EventValidationError as exc:
        raise InvalidEvent(
            "invalid_payload", f"payload is not a valid {event_type}; bad fields: {exc.describe()}"
        ) from None
    return Event(
        id=envelope["id"],
        type=envelope["type"],
        source=envelope["source"],
        time=envelope["time"],
        key=envelope.get("key"),
        data=data,
    )


def check_signature(service: str, envelope: Mapping[str, object], data: object, owner: str) -> None:
    """Before any handler runs: ``enforce`` raises :class:`InvalidEvent` for an event its owner did not
    sign, ``warn`` logs and counts it (``SignatureWarning``), ``off`` does not look (docs/signing.md)."""
    verifier = signing.verifier(settings())
    if verifier.mode == "off":
        return
    problem = verifier.check(envelope, data, owner)
    if problem is None:
        return
    if verifier.mode == "enforce":
        raise InvalidEvent(problem.reason, problem.detail)
    event_type, source, event_id = (str(envelope.get(f) or "") for f in ("type", "source", "id"))
    log.warning(
        "%s: event %s (%s) would be refused (%s): %s", service, event_id, event_type, problem.reason, problem.detail
    )
    count_warning(service, problem.reason, event_type, source, event_id, problem.detail)
