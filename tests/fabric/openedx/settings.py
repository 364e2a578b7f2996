"""What an Open edX service changes to move its event bus to event-tasks (docs/openedx.md), on top of
this repository's test settings. TEST_OPENEDX_RAISE names an event type whose receiver raises."""

from config.settings.test import *  # noqa: F403
from config.settings.test import INSTALLED_APPS, env

# (a process without EVENT_TASKS_SERVICE installs every app of the package already)
INSTALLED_APPS = [
    *INSTALLED_APPS,
    "openedx_events",
    "event_tasks.openedx",
    *(["tests.fabric.openedx.receivers"] if "tests.fabric.openedx.receivers" not in INSTALLED_APPS else []),
]

EVENT_BUS_PRODUCER = "event_tasks.openedx.create_producer"
EVENT_BUS_CONSUMER = "event_tasks.openedx.EventTasksConsumer"
EVENT_TASKS_SCHEMAS_PACKAGE = "event_tasks.openedx.catalog"
EVENT_TASKS_OPENEDX_SIGNALS = [
    "org.openedx.learning.certificate.created.v1",
    "org.openedx.content_authoring.course.catalog_info.changed.v1",
    "org.openedx.learning.course.enrollment.changed.v1",
    "org.openedx.learning.exam.attempt.#",
]
# Unchanged from the Redis or Kafka bus: which signals go out, on which topic, keyed by what.
EVENT_BUS_PRODUCER_CONFIG = {
    "org.openedx.learning.certificate.created.v1": {
        "learning-certificate-lifecycle": {"event_key_field": "certificate.course.course_key", "enabled": True}
    },
    "org.openedx.content_authoring.course.catalog_info.changed.v1": {
        "course-catalog-info-changed": {"event_key_field": "catalog_info.course_key", "enabled": True}
    },
    "org.openedx.learning.course.enrollment.changed.v1": {
        "course-enrollment-lifecycle": {"event_key_field": "enrollment.course.course_key", "enabled": True}
    },
    "org.openedx.learning.exam.attempt.submitted.v1": {
        "learning-exam-attempt-lifecycle": {"event_key_field": "exam_attempt.course_key", "enabled": True}
    },
}
# Signed envelopes (docs/signing.md): the openedx-events catalog names a repository as each type's owner;
# the services that sign for it (here lms also stands in for edx-exams, the exam attempts' owner).
EVENT_TASKS_SIGNING_OWNERS = {"openedx/edx-platform": ["lms", "cms"], "edx/edx-exams": ["lms"]}
EVENTS_SERVICE_NAME = env("EVENT_TASKS_SERVICE")
TEST_OPENEDX_RAISE = env("TEST_OPENEDX_RAISE")
