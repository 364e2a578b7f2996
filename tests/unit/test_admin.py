"""The admin pages every service has: dead letters (with a replay action), outbox, processed events."""

import json

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.urls import reverse

from event_tasks.app import install
from event_tasks.models import DeadLetter, OutboxEvent, ProcessedEvent

pytestmark = pytest.mark.django_db
TYPE = "org.openedx.learning.probe.created.v1"


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def memory_app():
    app = Celery("admin-tests", broker="memory://", set_as_current=False)
    install(app)
    return app


def letter(**extra):
    envelope = {
        "id": "ev-1",
        "type": TYPE,
        "source": "prober",
        "time": "2026-01-01T00:00:00Z",
        "specversion": "1.0",
        "key": None,
    }
    values = dict(
        service="alpha",
        event_id="ev-1",
        event_type=TYPE,
        reason="max_retries",
        detail="boom",
        raw=json.dumps({"args": [envelope, {"n": 1}], "kwargs": {}}),
    )
    values.update(extra)
    return DeadLetter.objects.create(**values)


def test_changelists_render(admin_client):
    letter()
    OutboxEvent.objects.create(event_id="o-1", event_type=TYPE, body="[]")
    ProcessedEvent.objects.create(event_id="p-1", handler="h", service="alpha", event_type=TYPE)
    for model in ("deadletter", "outboxevent", "processedevent"):
        response = admin_client.get(reverse(f"admin:event_tasks_{model}_changelist"))
        assert response.status_code == 200, model
    assert b"ev-1" in admin_client.get(reverse("admin:event_tasks_deadletter_changelist")).content


def test_replay_action_sends_to_the_service_queue_and_counts(admin_client, memory_app):
    good = letter()
    broken = letter(event_id="ev-2", reason="undecodable", raw="base64:gAQ=")
    with memory_app.connection_for_write() as conn, conn.SimpleQueue("events.alpha") as queue:
        response = admin_client.post(
            reverse("admin:event_tasks_deadletter_changelist"),
            {"action": "replay", "_selected_action": [good.pk, broken.pk]},
            follow=True,
        )
        text = response.content.decode()
        assert f"#{good.pk} replayed to events.alpha" in text
        assert "holds no readable event" in text
        message = queue.get(timeout=1)
        assert message.headers["id"] == "ev-1:alpha" and message.headers["task"] == TYPE
        message.ack()
    good.refresh_from_db()
    assert good.replays == 1 and good.replayed_at is not None


def test_the_outbox_admin_shows_rows_that_fail_on_their_own(admin_client):
    from django.utils import timezone

    OutboxEvent.objects.create(event_id="o-ok", event_type=TYPE, body="[]", sent_at=timezone.now())
    OutboxEvent.objects.create(
        event_id="o-poison",
        event_type=TYPE,
        body="not json",
        attempts=3,
        last_error="ValueError: outbox row #2: body is not JSON",
        next_attempt_at=timezone.now(),
    )
    page = admin_client.get(reverse("admin:event_tasks_outboxevent_changelist"), {"delivery": "failing"})
    text = page.content.decode()
    assert page.status_code == 200 and "o-poison" in text and "o-ok" not in text
    assert "body is not JSON" in text  # the last error, in the list
