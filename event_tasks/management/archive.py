"""``events backfill`` and ``events archive status``: the faces of ``ops.backfill`` and
``ops.archive_status`` (docs/archive.md); ``events prune`` trims the Redis archive here too."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..brokers.archive import redis_key, redis_of, trim_redis
from ..brokers.topology import is_redis
from ..conf import settings
from ..ops import archive_status
from ..ops import backfill as backfilling

if TYPE_CHECKING:
    from celery import Celery
    from django.core.management.base import OutputWrapper


def backfill(
    app: Celery,
    stdout: OutputWrapper,
    stderr: OutputWrapper,
    *,
    backfill_service: str,
    since: str,
    rate: str = "500/s",
    pattern: str | None = None,
    dry_run: bool = False,
    **_: object,
) -> None:
    def err(text: str) -> None:
        stderr.write(text, ending="")
        stderr.flush()

    summary = backfilling.backfill(
        app,
        backfill_service,
        backfilling.parse_since(since),
        pattern=pattern,
        rate=backfilling.parse_rate(rate),
        dry_run=dry_run,
        err=err,
        tty=stderr.isatty(),
    )
    stdout.write(str(summary))


def status(app: Celery, write: Callable[[str], object], *, json: bool = False, **_: object) -> None:
    found = archive_status.collect(app)
    write(_dumps(found) if json else archive_status.render(found))


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def trim(app: Celery, write: Callable[[str], object]) -> None:
    """Redis: drop the archive's entries past ``EVENT_TASKS_ARCHIVE_DAYS`` (RabbitMQ's stream ages out by itself)."""
    conf = settings()
    with app.connection_for_write() as connection:
        if not is_redis(connection):
            return
        client, key = redis_of(connection), redis_key(connection, conf)
        write(f"trimmed {trim_redis(client, key, conf)} archived events past {conf.archive_days:g} days")
