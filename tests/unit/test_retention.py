"""Retention (issue 9.8): ``events prune`` removes old duplicate marks, redelivery counts, event task
results, handled dead letters and sent outbox rows, in batches, and keeps the rest; it refuses to
start when duplicate marks would be kept shorter than a copy can be redelivered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from event_tasks import conf
from event_tasks.errors import RetentionTooShort
from event_tasks.models import DeadLetter, OutboxEvent, ProcessedEvent, Redelivery
from event_tasks.store import retention

pytestmark = pytest.mark.django_db
NOW = timezone.now()
OLD = NOW - dt.timedelta(days=400)
RECENT = NOW - dt.timedelta(days=1)


@pytest.fixture
def service(settings):
    settings.EVENT_TASKS_SERVICE = "prober"
    conf.settings.cache_clear()
    return conf.settings()


def rows(service_conf):
    """Old and new rows of every kind; returns the primary keys that must survive."""
    keep: dict[str, set] = {name: set() for name in ("marks", "redeliveries", "letters", "outbox", "results")}
    for i, when in enumerate([OLD, OLD, OLD, RECENT]):
        mark = ProcessedEvent.objects.create(event_id=f"e{i}", handler="h", service="prober", event_type="t")
        ProcessedEvent.objects.filter(pk=mark.pk).update(processed_at=when)  # auto_now_add: set afterwards
        again = Redelivery.objects.create(task_id=f"e{i}:prober", retries=0, count=1)
        Redelivery.objects.filter(pk=again.pk).update(last_at=when)
        if when is RECENT:
            keep["marks"].add(mark.pk)
            keep["redeliveries"].add(again.pk)
    replayed_long_ago = DeadLetter.objects.create(service="prober", reason="max_retries", replayed_at=OLD)
    keep["letters"] |= {
        DeadLetter.objects.create(service="prober", reason="max_retries", replayed_at=RECENT).pk,  # handled lately
        DeadLetter.objects.create(service="prober", reason="max_retries").pk,  # never handled
    }
    DeadLetter.objects.filter(pk__in=keep["letters"] | {replayed_long_ago.pk}).update(created_at=OLD)
    OutboxEvent.objects.create(event_id="sent-old", event_type="t", body="[]", sent_at=OLD)
    keep["outbox"] |= {
        OutboxEvent.objects.create(event_id="unsent-old", event_type="t", body="[]").pk,
        OutboxEvent.objects.create(event_id="sent-new", event_type="t", body="[]", sent_at=NOW).pk,
    }
    OutboxEvent.objects.update(created_at=OLD)
    for task_id, when, stays in [
        ("e0:prober", OLD, False),
        ("e1:prober", RECENT, True),
        ("e0:gamma", OLD, True),  # another service's copy: not ours
        (str(uuid.uuid4()), OLD, True),
    ]:  # the host's own task: the host's
        result = TaskResult.objects.create(task_id=task_id, status="SUCCESS", result='{"data": "personal"}')
        TaskResult.objects.filter(pk=result.pk).update(date_done=when)
        if stays:
            keep["results"].add(result.pk)
    return keep


def survivors() -> dict[str, set]:
    return {
        "marks": set(ProcessedEvent.objects.values_list("pk", flat=True)),
        "redeliveries": set(Redelivery.objects.values_list("pk", flat=True)),
        "letters": set(DeadLetter.objects.values_list("pk", flat=True)),
        "outbox": set(OutboxEvent.objects.values_list("pk", flat=True)),
        "results": set(TaskResult.objects.values_list("pk", flat=True)),
    }


def test_prune_removes_the_old_rows_only(service):
    keep = rows(service)
    before = survivors()
    dry = retention.prune(dry_run=True)
    assert survivors() == before  # a dry run deletes nothing
    pruned = retention.prune()
    assert (
        pruned.counts
        == dry.counts
        == {"duplicate_marks": 3, "redelivery_counts": 3, "dead_letters": 1, "outbox": 1, "task_results": 1}
    )
    assert survivors() == keep
    assert retention.prune().total == 0  # nothing left to go


def test_prune_deletes_in_batches(service, settings):
    rows(service)
    settings.EVENT_TASKS_PRUNE_BATCH = 2
    conf.settings.cache_clear()
    with CaptureQueriesContext(connection) as queries:
        assert retention.prune().counts["duplicate_marks"] == 3
    deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("DELETE") and "event_tasks_processedevent" in q["sql"]
    ]
    assert len(deletes) == 2  # 2 + 1 rows: two short statements


def test_the_command_prunes_and_reports(service, capsys):
    rows(service)
    call_command("events", "prune", "--dry-run")
    assert "would delete 3 duplicate marks" in capsys.readouterr().out
    assert ProcessedEvent.objects.count() == 4
    call_command("events", "prune")
    out = capsys.readouterr().out
    assert "deleted 3 duplicate marks, 3 redelivery counts, 1 dead letters, 1 outbox, 1 task results" in out
    assert ProcessedEvent.objects.count() == 1


def test_duplicate_marks_kept_shorter_than_a_redelivery_can_come_are_refused(service, settings):
    rows(service)
    settings.EVENT_TASKS_KEEP_PROCESSED_DAYS = 0.1  # 2.4 h; a lost delivery comes back for 4 h
    conf.settings.cache_clear()
    with pytest.raises(RetentionTooShort, match="EVENT_TASKS_KEEP_PROCESSED_DAYS=0.1 keeps duplicate marks") as err:
        retention.prune()
    assert "EVENT_TASKS_MAX_REDELIVERIES=3" in str(err.value) and "Nothing was pruned" in str(err.value)
    with pytest.raises(CommandError, match="at least 0.1[0-9] days"):
        call_command("events", "prune", "--dry-run")
    assert ProcessedEvent.objects.count() == 4


def test_the_window_grows_with_the_settings_it_depends_on(service):
    base, _ = retention.redelivery_window(service)
    longer_visibility, _ = retention.redelivery_window(service, visibility_timeout=7200)
    more_redeliveries, _ = retention.redelivery_window(dataclasses.replace(service, max_redeliveries=10))
    more_retries, _ = retention.redelivery_window(dataclasses.replace(service, max_retries=50))
    assert base < min(longer_visibility, more_redeliveries, more_retries)
    retention.check(dataclasses.replace(service, keep_processed_days=base / 86400 + 0.01))  # just enough: accepted
    with pytest.raises(RetentionTooShort):
        retention.check(dataclasses.replace(service, keep_processed_days=base / 86400 - 0.01))


def test_the_prune_task_is_only_added_when_the_host_asks(service):
    from celery import Celery

    from event_tasks import maintenance

    app = Celery("host", set_as_current=False)
    app.conf.task_always_eager = True  # unit test: the task's body runs here, on this test's database
    assert maintenance.PRUNE_TASK not in app.tasks
    task = maintenance.add_prune_task(app)
    assert app.tasks[maintenance.PRUNE_TASK] is task
    assert maintenance.beat_entry(600, queue="maintenance.prober") == {
        "task": maintenance.PRUNE_TASK,
        "schedule": 600,
        "options": {"queue": "maintenance.prober"},
    }
    rows(service)
    assert task.delay().get()["duplicate_marks"] == 3
