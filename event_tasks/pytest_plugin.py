"""pytest fixtures for services built on event-tasks (registered through the ``pytest11`` entry
point, so a project that installs event-tasks has them without any import):

* ``captured_events``: :func:`event_tasks.testing.capture_events` for the test's duration;
* ``event_worker``: a factory that starts one service's real Celery worker (a subprocess, the
  same command a Procfile runs) against a broker URL, and stops it after the test::

      def test_lms_gets_it(event_worker, tmp_path):
          worker = event_worker("lms", broker_url="redis://127.0.0.1:6379/3",
                                env={"DATABASE_URL": f"sqlite:///{tmp_path}/lms.sqlite3"})
          ...  # send_event(...), then wait_until(...) something the handler wrote

  The Celery app is the ``event_tasks_celery_app`` ini option (default: the
  ``EVENT_TASKS_CELERY_APP`` setting's module, else ``config.celery_app``).

Nothing here imports Django or Celery until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from event_tasks.testing import CapturedEvents, ServiceWorker


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "event_tasks_celery_app",
        "the `celery -A` argument of the service's worker (for the event_worker fixture)",
        default="",
    )


@pytest.fixture
def captured_events() -> Iterator[CapturedEvents]:
    from event_tasks.testing import capture_events

    with capture_events() as captured:
        yield captured


def _default_app(config: pytest.Config) -> str:
    value = config.getini("event_tasks_celery_app")
    if value:
        return str(value)
    try:
        from event_tasks.conf import settings

        path = settings().celery_app
    except Exception:  # noqa: BLE001 - Django not configured: fall back to the common layout
        path = None
    return path.split(":", 1)[0] if path else "config.celery_app"


@pytest.fixture
def event_worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ServiceWorker]]:
    from event_tasks.testing import ServiceWorker

    started: list[ServiceWorker] = []

    def start(
        service: str,
        *,
        broker_url: str,
        env: Mapping[str, str] | None = None,
        app: str | None = None,
        pool: str = "solo",
        concurrency: int = 1,
        extra_queues: tuple[str, ...] = (),
        cwd: str | None = None,
        timeout: float = 60.0,
    ) -> ServiceWorker:
        worker = ServiceWorker(
            service,
            env={"CELERY_BROKER_URL": broker_url, **(env or {})},
            log_dir=str(tmp_path),
            app=app or _default_app(request.config),
            pool=pool,
            concurrency=concurrency,
            extra_queues=extra_queues,
            cwd=cwd,
        )
        started.append(worker)
        worker.start(timeout=timeout)
        return worker

    yield start
    for worker in started:
        worker.stop()
