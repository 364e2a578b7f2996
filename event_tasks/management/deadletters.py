"""``events deadletters list|show|replay|discard``: act on this service's dead letters.

Ids that match no dead letter are reported after the others were acted on (exit 1), never
passed over in silence.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.core.management.base import CommandError

from event_tasks.conf import settings
from event_tasks.ops.replay import replay
from event_tasks.store import deadletters


def run(
    action: str,
    ids: list[int],
    write: Callable[[str], object],
    *,
    limit: int = 50,
    all: bool = False,  # noqa: A002 - the command's --all
    service: str | None = None,
    event_type: str | None = None,
    reason: str | None = None,
    older_than: float | None = None,
    newer_than: float | None = None,
    **_: object,
) -> None:
    if action in ("replay", "discard") and not ids and not all:
        raise CommandError(f"{action} needs dead letter ids, or --all with filters")
    letters = deadletters.select(
        ids=ids, service=service, event_type=event_type, reason=reason, older_than=older_than, newer_than=newer_than
    )
    if action == "list":
        for letter in letters[:limit]:
            write(
                f"#{letter.pk} {letter.created_at:%Y-%m-%d %H:%M:%S} {letter.service} "
                f"{letter.event_type or '?'} {letter.event_id} [{letter.reason}] "
                f"attempts={letter.attempts} replays={letter.replays}: {letter.detail[:160]}"
            )
    elif action == "show":
        for letter in letters if ids else letters[:limit]:
            write(json.dumps(deadletters.as_dict(letter), indent=2, sort_keys=True))
    elif action == "replay":
        for letter in letters:
            queue = replay(letter)
            write(f"replayed #{letter.pk} ({letter.event_type} {letter.event_id}) to {queue}")
    else:
        count = len(letters)
        deadletters.discard(letters)
        write(f"discarded {count} dead letter(s)")
    found = {letter.pk for letter in letters}
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    if missing:
        raise CommandError(not_found(missing, service, event_type, reason, older_than, newer_than), returncode=1)


def not_found(
    missing: list[int],
    service: str | None,
    event_type: str | None,
    reason: str | None,
    older_than: float | None,
    newer_than: float | None,
) -> str:
    """``no dead letter with id 1 in service lms`` (and the filters that were given)."""
    which = f"id {missing[0]}" if len(missing) == 1 else "ids " + ", ".join(map(str, missing))
    where = service or settings().service
    text = f"no dead letter with {which} " + (f"in service {where}" if where else "in this database")
    filters = [
        f"{flag} {value}"
        for flag, value in (
            ("--type", event_type),
            ("--reason", reason),
            ("--older-than", older_than),
            ("--newer-than", newer_than),
        )
        if value is not None
    ]
    return text + (f" matching {' '.join(filters)}" if filters else "")
