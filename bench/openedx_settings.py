"""The bench's Open edX service on event-tasks (bench/openedx_backend.py): the test settings plus what
docs/openedx.md tells a service to change, and a no-op receiver of CERTIFICATE_CREATED."""

from config.settings.test import *  # noqa: F403
from config.settings.test import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "openedx_events", "event_tasks.openedx", "bench.openedx_app"]
EVENT_BUS_PRODUCER = "event_tasks.openedx.create_producer"
EVENT_BUS_CONSUMER = "event_tasks.openedx.EventTasksConsumer"
EVENT_TASKS_SCHEMAS_PACKAGE = "event_tasks.openedx.catalog"
EVENT_TASKS_OPENEDX_SIGNALS = ["org.openedx.learning.certificate.created.v1"]
