"""Acting on dead letters: put an event back on its service's queue (operators, the admin).

Replay sends the event to that dead letter's service queue only, with its original id; the
consumers' duplicate suppression makes a second replay a no-op. The delivery's failed task
result is forgotten: the replayed delivery starts afresh (the dead letter keeps the failure).
"""

from __future__ import annotations

import logging

from django.db.models import F
from django.utils import timezone

from ..brokers.message import encode_body
from ..conf import settings
from ..models import DeadLetter
from ..send.publisher import Publisher, default_publisher, the_app
from ..store.deadletters import replayable_args

log = logging.getLogger(__name__)


def replay(letter: DeadLetter, publisher: Publisher | None = None) -> str:
    """Put the event back on this dead letter's service queue only, with its original id."""
    envelope, data = replayable_args(letter)
    body, argsrepr = encode_body(envelope, data)
    if publisher is None:
        # A tooling process (no EVENT_TASKS_SERVICE) may replay any service's dead letters.
        publisher = default_publisher() if settings().service else Publisher(the_app(), letter.service)
    queue = publisher.publish_to(letter.service, envelope["type"], envelope["id"], body, argsrepr)
    if letter.task_id:
        # The replayed delivery starts afresh; the dead letter keeps the failure and its traceback.
        assert publisher.app is not None  # a publisher built without an app has no result backend to forget in
        publisher.app.backend.forget(letter.task_id)
    DeadLetter.objects.filter(pk=letter.pk).update(replays=F("replays") + 1, replayed_at=timezone.now())
    log.info("replayed dead letter #%s (%s %s) to %s", letter.pk, envelope["type"], envelope["id"], queue)
    return queue
