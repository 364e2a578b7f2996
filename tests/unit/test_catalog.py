"""The event catalog (schemas/): names, owners, schemas, and coverage of every use case."""

from __future__ import annotations

import copy
import importlib
import re
from typing import Any

import pytest

from demo.scenario import STEPS
from event_tasks import catalog
from event_tasks.errors import EventValidationError, UnknownEventType
from event_tasks.handlers import service_handlers
from event_tasks.testing import make_event
from event_tasks.topics import topic_matches
from schemas import catalog as discovery_types
from schemas import content_authoring, ecommerce, enterprise, exams, learning

SERVICES = {"studio", "discovery", "credentials", "lms", "ecommerce", "license_manager", "enterprise_catalog", "exams"}
CONSUMING_SERVICES = SERVICES - {"exams"}
DOMAIN_MODULES = ["content_authoring", "catalog", "learning", "ecommerce", "enterprise", "exams"]
NAME = re.compile(r"^org\.openedx\.[a-z_]+(\.[a-z_]+)+\.v[1-9][0-9]*$")

#: Event types openedx-events defines; the catalog must use exactly these names for them.
OPENEDX_EVENTS_NAMES = {
    "org.openedx.content_authoring.course.created.v1",
    "org.openedx.content_authoring.course.catalog_info.changed.v1",
    "org.openedx.learning.course.enrollment.created.v1",
    "org.openedx.learning.course.enrollment.changed.v1",
    "org.openedx.learning.course.unenrollment.completed.v1",
    "org.openedx.learning.certificate.created.v1",
    "org.openedx.learning.certificate.changed.v1",
    "org.openedx.learning.certificate.revoked.v1",
    "org.openedx.learning.course.persistent_grade_summary.changed.v1",
    "org.openedx.learning.course.passing.status.updated.v1",
    "org.openedx.learning.exam.attempt.submitted.v1",
    "org.openedx.learning.exam.attempt.verified.v1",
    "org.openedx.learning.exam.attempt.rejected.v1",
    "org.openedx.learning.exam.attempt.errored.v1",
    "org.openedx.learning.exam.attempt.reset.v1",
}

#: docs/architecture.md, "Use cases", row by row: producer, consumers, and the event types that carry it.
USE_CASES: dict[int, tuple[str, set[str], list[str]]] = {
    1: ("studio", {"discovery"}, [content_authoring.COURSE_CREATED, content_authoring.COURSE_CATALOG_INFO_CHANGED]),
    2: (
        "discovery",
        {"credentials"},
        [
            discovery_types.CATALOG_COURSE_CREATED,
            discovery_types.CATALOG_COURSE_UPDATED,
            discovery_types.CATALOG_PROGRAM_CREATED,
            discovery_types.CATALOG_PROGRAM_UPDATED,
        ],
    ),
    3: (
        "lms",
        {"credentials"},
        [
            learning.CERTIFICATE_CREATED,
            learning.CERTIFICATE_CHANGED,
            learning.CERTIFICATE_REVOKED,
            learning.PERSISTENT_GRADE_SUMMARY_CHANGED,
            learning.COURSE_PASSING_STATUS_UPDATED,
        ],
    ),
    4: (
        "lms",
        {"ecommerce", "discovery"},
        [
            learning.COURSE_ENROLLMENT_CREATED,
            learning.COURSE_ENROLLMENT_CHANGED,
            ecommerce.ORDER_PLACED,
            ecommerce.ORDER_FULFILLED,
        ],
    ),
    5: (
        "license_manager",
        {"lms", "enterprise_catalog"},
        [
            enterprise.SUBSCRIPTION_PLAN_CREATED,
            enterprise.SUBSCRIPTION_PLAN_EXPIRED,
            enterprise.LICENSE_ASSIGNED,
            enterprise.LICENSE_ACTIVATED,
            enterprise.LICENSE_EXPIRED,
            enterprise.LICENSE_RENEWED,
            enterprise.LICENSE_REVOKED,
        ],
    ),
    6: ("exams", {"lms"}, [exams.EXAM_ATTEMPT_VERIFIED, exams.EXAM_ATTEMPT_REJECTED, exams.EXAM_ATTEMPT_ERRORED]),
    7: ("lms", {"credentials"}, [learning.PROGRAM_INTENT_CHANGED]),
    8: ("discovery", {"lms", "studio", "enterprise_catalog"}, [discovery_types.COURSE_RUN_PUBLISHED]),
    9: ("lms", {"discovery"}, [learning.COURSE_ENROLLMENT_CREATED, learning.COURSE_ENROLLMENT_CHANGED]),
}
#: Row 5 also flows the other way: learners' enterprise enrollment changes, LMS → license manager.
LEARNER_ENTERPRISE_ENROLLMENTS = ("lms", {"license_manager"}, [enterprise.LICENSED_COURSE_ENROLLMENT_CHANGED])


def example(event_type: str) -> dict[str, Any]:
    """A valid payload of ``event_type``: the first one the demo scenario sends."""
    return copy.deepcopy(next(step.data for step in STEPS if step.event_type == event_type))


def project_types() -> list[catalog.EventType]:
    """The catalog of schemas/ (other tests register probe types in the same process)."""
    return [e for e in catalog.all() if e.schema.__module__.startswith("schemas.")]


ALL_TYPES = [e.name for e in project_types()]


def test_catalog_is_not_empty_and_every_type_is_in_a_domain_module():
    assert len(ALL_TYPES) >= 25
    modules = {importlib.import_module(f"schemas.{m}") for m in DOMAIN_MODULES}
    declared = {
        value for module in modules for value in vars(module).values() if isinstance(value, str) and value in ALL_TYPES
    }
    assert declared == set(ALL_TYPES)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_entry_has_name_owner_description_and_schema(name):
    entry = catalog.get(name)
    assert entry.name == name and NAME.match(name), name
    assert entry.owner in SERVICES
    assert entry.description and "\n" not in entry.description and entry.description.endswith(".")
    assert entry.version == 1


def test_get_and_all_agree_and_unknown_type_is_refused():
    assert [catalog.get(n) for n in ALL_TYPES] == project_types()
    assert set(project_types()) <= set(catalog.all())
    with pytest.raises(UnknownEventType):
        catalog.get("org.openedx.learning.certificate.teleported.v1")


def test_open_edx_names_are_used_where_openedx_events_defines_the_event():
    assert set(ALL_TYPES) >= OPENEDX_EVENTS_NAMES


def test_every_type_has_an_example_in_the_demo_scenario():
    assert {step.event_type for step in STEPS} == set(ALL_TYPES)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_schema_accepts_the_example_and_round_trips_it(name):
    data = example(name)
    event = make_event(name, data)
    assert set(event.data) == set(data)
    # What arrives re-encodes to what was sent (datetimes in UTC, decimals as strings).
    _, wire = catalog.get(name).encode(data)
    assert catalog.get(name).decode(wire) == dict(event.data)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_schema_rejects_unknown_fields_at_every_level(name):
    data = example(name)
    with pytest.raises(EventValidationError) as top:
        catalog.get(name).encode({**data, "surprise": 1})
    assert "surprise" in top.value.fields
    root = next(v for v in data.values() if isinstance(v, dict))  # the root object, as in openedx-events
    root["surprise"] = 1
    with pytest.raises(EventValidationError):
        catalog.get(name).encode(data)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_schema_requires_its_root_object(name):
    with pytest.raises(EventValidationError) as err:
        catalog.get(name).encode({})
    assert err.value.fields


@pytest.mark.parametrize(
    ("name", "path", "bad"),
    [
        (learning.COURSE_ENROLLMENT_CREATED, ("enrollment", "course", "course_key"), "DemoX/PY101/2025"),
        (learning.COURSE_ENROLLMENT_CREATED, ("enrollment", "creation_date"), "2025-08-20T10:00:00"),  # naive
        (learning.COURSE_ENROLLMENT_CREATED, ("enrollment", "user", "id"), "11"),
        (learning.CERTIFICATE_CREATED, ("certificate", "current_status"), "awesome"),
        (content_authoring.COURSE_CATALOG_INFO_CHANGED, ("catalog_info", "schedule_data", "pacing"), "fast"),
        (content_authoring.COURSE_CATALOG_INFO_CHANGED, ("catalog_info", "status"), "live"),
        (exams.EXAM_ATTEMPT_VERIFIED, ("exam_attempt", "usage_key"), "final_exam"),
        (ecommerce.ORDER_PLACED, ("order", "total"), "-1.00"),
        (ecommerce.ORDER_PLACED, ("order", "currency"), "dollars"),
        (enterprise.LICENSE_ASSIGNED, ("license", "user_email"), "not-an-email"),
        (learning.PROGRAM_INTENT_CHANGED, ("program_intent", "intent"), "maybe"),
    ],
)
def test_schema_validates_values(name, path, bad):
    data = example(name)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = bad
    with pytest.raises(EventValidationError) as err:
        catalog.get(name).encode(data)
    assert path[0] in err.value.fields


def test_datetimes_load_as_aware_utc():
    data = example(learning.COURSE_ENROLLMENT_CREATED)
    data["enrollment"]["creation_date"] = "2025-08-20T12:00:00+02:00"
    event = make_event(learning.COURSE_ENROLLMENT_CREATED, data)
    created = event.data["enrollment"]["creation_date"]
    assert created.utcoffset().total_seconds() == 0 and created.hour == 10


@pytest.mark.parametrize("row", sorted(USE_CASES))
def test_every_use_case_has_event_types_owned_by_its_producer_and_consumed_by_its_consumers(row):
    producer, consumers, types = USE_CASES[row]
    assert types, row
    for name in types:
        assert catalog.get(name).owner == producer, (row, name)
    for service in consumers:
        consumed = set(service_handlers(service).event_types)
        assert consumed & set(types), f"use case {row}: {service} consumes none of {types}"


def test_learner_enterprise_enrollment_changes_reach_the_license_manager():
    producer, consumers, types = LEARNER_ENTERPRISE_ENROLLMENTS
    for name in types:
        assert catalog.get(name).owner == producer
    for service in consumers:
        assert set(types) <= set(service_handlers(service).event_types)


def test_use_case_9_enrollments_are_taken_by_a_pattern_subscriber():
    """A later consumer subscribes to a pattern: new enrollment types reach it without any change."""
    enrollment_types = USE_CASES[9][2]
    pattern_handlers = [
        h
        for s in CONSUMING_SERVICES
        for h in service_handlers(s).handlers
        if ("#" in h.pattern or "*" in h.pattern) and all(topic_matches(h.pattern, t) for t in enrollment_types)
    ]
    assert pattern_handlers
    assert not any(topic_matches(h.pattern, learning.CERTIFICATE_CREATED) for h in pattern_handlers)


def test_every_consuming_service_has_handlers_and_every_type_is_owned_by_a_known_service():
    for service in CONSUMING_SERVICES:
        assert service_handlers(service).handlers, service
    assert {e.owner for e in project_types()} <= SERVICES


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_domain_module_docstring_names_producers_and_consumers(module):
    doc = importlib.import_module(f"schemas.{module}").__doc__ or ""
    assert "Producer" in doc and "Consumer" in doc
    owners = {e.owner for e in project_types() if e.schema.__module__ == f"schemas.{module}"}
    assert owners and all(f"**{owner}**" in doc for owner in owners), (module, owners)


@pytest.mark.parametrize("service", sorted(CONSUMING_SERVICES))
def test_handlers_module_docstring_names_the_service_queue(service):
    doc = importlib.import_module(f"consumers.{service}.handlers").__doc__ or ""
    assert f"events.{service}" in doc


def test_consumers_ignore_fields_they_do_not_know_at_every_level_while_producers_stay_strict():
    """Adding an optional field within a version is compatible: old consumers read new events."""
    from event_tasks.errors import EventValidationError
    from schemas.learning import CERTIFICATE_CREATED

    entry = catalog.get(CERTIFICATE_CREATED)
    from demo.scenario import STEPS

    data = next(s.data for s in STEPS if s.event_type == CERTIFICATE_CREATED)
    _, wire = entry.encode(data)
    newer = {**wire, "issued_by": "registrar"}
    newer["certificate"] = {
        **wire["certificate"],
        "grade_source": "final",
        "user": {**wire["certificate"]["user"], "pii": {**wire["certificate"]["user"]["pii"], "pronouns": "they"}},
    }
    assert entry.decode(newer) == entry.decode(wire)
    with pytest.raises(EventValidationError, match="issued_by"):
        entry.encode(newer)
    with pytest.raises(EventValidationError, match="certificate"):
        entry.decode({**wire, "certificate": {**wire["certificate"], "mode": None}})  # still validated
