"""Retention: the fabric's rows that would otherwise grow for ever, pruned in small batches.

Who owns what: this module decides what is old enough to go and deletes it (``python manage.py
events prune [--dry-run]``, or the task ``maintenance.add_prune_task`` registers on the host's app
when the host asks, for its own beat schedule). Nothing here runs by itself.

| rows | kept | setting |
|---|---|---|
| duplicate marks (``ProcessedEvent``), redelivery counts | ``EVENT_TASKS_KEEP_PROCESSED_DAYS`` after applied / last seen | refused below the redelivery window |
| task results of event tasks (django-celery-results; they hold payloads) | ``EVENT_TASKS_KEEP_RESULTS_DAYS`` after done | only ``<event id>:<this service>`` rows; the host's own results are the host's |
| dead letters | until replayed or discarded, then ``EVENT_TASKS_KEEP_DEADLETTERS_DAYS`` | unhandled ones stay |
| sent outbox rows | ``EVENT_TASKS_OUTBOX_RETENTION`` seconds after sent | unsent rows stay |

A duplicate mark pruned while a copy of its event can still arrive lets that copy run its
handlers again; :func:`check` refuses to start (``RetentionTooShort``) when
``EVENT_TASKS_KEEP_PROCESSED_DAYS`` is shorter than :func:`redelivery_window`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.apps import apps
from django.db import router
from django.db.models import Model, Q
from django.utils import timezone

from ..conf import Settings, settings
from ..errors import RetentionTooShort
from ..models import DeadLetter, OutboxEvent, ProcessedEvent, Redelivery

log = logging.getLogger(__name__)
DAY = 86400.0
DEFAULT_VISIBILITY_TIMEOUT = 3600.0  # kombu's Redis default


def redelivery_window(conf: Settings, visibility_timeout: float | None = None) -> tuple[float, str]:
    """Seconds after a first delivery during which another copy of the same event can still come
    back to this service, and how that figure is made up.

    * a delivery whose worker died comes back after the Redis visibility timeout (or RabbitMQ's
      consumer timeout, or the hard time limit), up to ``EVENT_TASKS_MAX_REDELIVERIES`` times;
    * a failing handler's delivery is retried up to ``EVENT_TASKS_MAX_RETRIES`` times, each after
      at most ``EVENT_TASKS_RETRY_BACKOFF_MAX`` (the handlers that applied it skip it by their mark);
    * the outbox publishes a row again when its holder's lease ran out (``EVENT_TASKS_OUTBOX_LEASE``)
      or after a failed attempt's backoff (``EVENT_TASKS_OUTBOX_BACKOFF_MAX``).
    """
    vt = visibility_timeout or conf.visibility_timeout or DEFAULT_VISIBILITY_TIMEOUT
    comeback = max(vt, conf.rabbitmq_consumer_timeout, conf.handler_time_limit)
    redelivered = comeback * (conf.max_redeliveries + 1)
    retried = conf.retry_backoff_max * conf.max_retries
    republished = conf.outbox_lease + conf.outbox_backoff_max + conf.outbox_grace
    why = (
        f"{comeback:.0f} s until a lost delivery returns × {conf.max_redeliveries + 1} deliveries "
        f"(EVENT_TASKS_MAX_REDELIVERIES={conf.max_redeliveries}) + {conf.max_retries} retries × "
        f"{conf.retry_backoff_max:.0f} s (EVENT_TASKS_RETRY_BACKOFF_MAX) + outbox re-publish "
        f"{republished:.0f} s (lease, backoff max, grace)"
    )
    return redelivered + retried + republished, why


def check(conf: Settings | None = None, visibility_timeout: float | None = None) -> None:
    """Refuse (``RetentionTooShort``) to prune duplicate marks younger than the redelivery window."""
    conf = conf or settings()
    window, why = redelivery_window(conf, visibility_timeout)
    if conf.keep_processed_days * DAY < window:
        raise RetentionTooShort("EVENT_TASKS_KEEP_PROCESSED_DAYS", conf.keep_processed_days, window, why)


@dataclasses.dataclass
class Pruned:
    """What one prune removed (or, with ``dry_run``, would remove), per kind of row."""

    dry_run: bool = False
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, **self.counts}


def prune(
    *,
    dry_run: bool = False,
    conf: Settings | None = None,
    now: dt.datetime | None = None,
    visibility_timeout: float | None = None,
) -> Pruned:
    """Delete what the retention settings say may go, in batches of ``EVENT_TASKS_PRUNE_BATCH``.

    Raises :class:`~event_tasks.errors.RetentionTooShort` before deleting anything when duplicate
    marks would be kept shorter than a copy can be redelivered.
    """
    conf = conf or settings()
    check(conf, visibility_timeout)
    now = now or timezone.now()
    service = conf.require_service()
    result = Pruned(dry_run=dry_run)
    processed_cutoff = now - dt.timedelta(days=conf.keep_processed_days)
    plans: list[tuple[str, type[Model], Q]] = [
        ("duplicate_marks", ProcessedEvent, Q(processed_at__lt=processed_cutoff)),
        ("redelivery_counts", Redelivery, Q(last_at__lt=processed_cutoff)),
        ("dead_letters", DeadLetter, Q(replayed_at__lt=now - dt.timedelta(days=conf.keep_deadletters_days))),
        ("outbox", OutboxEvent, Q(sent_at__lt=now - dt.timedelta(seconds=conf.outbox_retention))),
    ]
    if apps.is_installed("django_celery_results"):
        task_result = apps.get_model("django_celery_results", "TaskResult")
        plans.append(
            (
                "task_results",
                task_result,
                Q(date_done__lt=now - dt.timedelta(days=conf.keep_results_days), task_id__endswith=f":{service}"),
            )
        )
    for name, model, condition in plans:
        using = conf.database or router.db_for_write(model)
        if dry_run:
            result.counts[name] = model._default_manager.using(using).filter(condition).count()
        else:
            result.counts[name] = delete_in_batches(model, condition, using, conf.prune_batch)
    log.info("events prune%s: %s", " (dry run)" if dry_run else "", result.counts)
    return result


def delete_in_batches(model: type[Model], condition: Q, using: str, batch: int) -> int:
    """Delete matching rows a batch of primary keys at a time: short statements, short locks."""
    manager = model._default_manager.using(using)
    deleted = 0
    while True:
        pks = list(manager.filter(condition).order_by("pk").values_list("pk", flat=True)[:batch])
        if not pks:
            return deleted
        count, _ = manager.filter(pk__in=pks).delete()
        deleted += count
        if len(pks) < batch:
            return deleted


def prune_outbox(using: str, retention: float, batch: int) -> int:
    """Sent outbox rows older than ``retention`` seconds (the relay calls this every minute)."""
    cutoff = timezone.now() - dt.timedelta(seconds=retention)
    return delete_in_batches(OutboxEvent, Q(sent_at__lt=cutoff), using, batch)
