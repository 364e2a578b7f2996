"""The demo scenario: one story that drives every use case (docs/architecture.md, "Use cases"), in causal order.

Each :class:`Step` is one event a producing service sends (``send_event(event_type, data,
key=key)`` from a process whose ``EVENT_TASKS_SERVICE`` is ``producer``). :data:`EXPECTED` is,
for each consuming service, the counts its ``summary()["counts"]`` must report once every step
has been processed, in any order: the handlers keep the latest state by event time.

The story: Studio creates two course runs and edits one (use case 1); discovery publishes the
two courses and a program that grows to contain both (2), and Publisher publishes the runs, then
republishes one with a lower price (8). Ada, Grace and Alan enroll, buy seats and unenroll
(4, 9). Acme's subscription plan gives out three licenses: one is activated and renewed into the
next plan, one is revoked, one expires with the plan (5). The exams service verifies Ada's final,
rejects Grace's, and errors Ada's midterm, which staff had reset once (6). Ada earns a
certificate that is then regraded; Grace earns one that is revoked after her rejected exam (3).
Both say they pursue the program (7).

All data is JSON (times as ISO 8601 strings in UTC); every payload passes its schema.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from schemas.catalog import (
    CATALOG_COURSE_CREATED,
    CATALOG_COURSE_UPDATED,
    CATALOG_PROGRAM_CREATED,
    CATALOG_PROGRAM_UPDATED,
    COURSE_RUN_PUBLISHED,
)
from schemas.content_authoring import COURSE_CATALOG_INFO_CHANGED, COURSE_CREATED
from schemas.ecommerce import ORDER_FULFILLED, ORDER_PLACED
from schemas.enterprise import (
    LICENSE_ACTIVATED,
    LICENSE_ASSIGNED,
    LICENSE_EXPIRED,
    LICENSE_RENEWED,
    LICENSE_REVOKED,
    LICENSED_COURSE_ENROLLMENT_CHANGED,
    SUBSCRIPTION_PLAN_CREATED,
    SUBSCRIPTION_PLAN_EXPIRED,
)
from schemas.exams import (
    EXAM_ATTEMPT_ERRORED,
    EXAM_ATTEMPT_REJECTED,
    EXAM_ATTEMPT_RESET,
    EXAM_ATTEMPT_SUBMITTED,
    EXAM_ATTEMPT_VERIFIED,
)
from schemas.learning import (
    CERTIFICATE_CHANGED,
    CERTIFICATE_CREATED,
    CERTIFICATE_REVOKED,
    COURSE_ENROLLMENT_CHANGED,
    COURSE_ENROLLMENT_CREATED,
    COURSE_PASSING_STATUS_UPDATED,
    COURSE_UNENROLLMENT_COMPLETED,
    PERSISTENT_GRADE_SUMMARY_CHANGED,
    PROGRAM_INTENT_CHANGED,
)

__all__ = ["EXPECTED", "STEPS", "Step"]

Data = dict[str, Any]


class Step(NamedTuple):
    """One event of the story: who sends it, its type, its payload and its key."""

    producer: str
    event_type: str
    data: Data
    key: str | None


# --- the cast ---------------------------------------------------------------------------------
PY_RUN = "course-v1:DemoX+PY101+2025_T1"
PY_NEXT_RUN = "course-v1:DemoX+PY101+2025_T3"
DS_RUN = "course-v1:DemoX+DS201+2025_T1"
PY_COURSE, DS_COURSE = "DemoX+PY101", "DemoX+DS201"
PY_COURSE_UUID = "0b5c3a62-3f0e-4c39-9d3b-4c1a4d8f5a01"
DS_COURSE_UUID = "0b5c3a62-3f0e-4c39-9d3b-4c1a4d8f5a02"
PY_RUN_UUID = "5d1e7c44-8a52-4f6e-9a0e-2b7f0c1d9e01"
DS_RUN_UUID = "5d1e7c44-8a52-4f6e-9a0e-2b7f0c1d9e02"
PROGRAM_UUID = "9a7f2b10-6c1d-4e3b-8f5a-1c2d3e4f5a60"
PROGRAM = {"uuid": PROGRAM_UUID, "title": "Applied Data Skills", "program_type": "Professional Certificate"}
PY_FINAL = "block-v1:DemoX+PY101+2025_T1+type@sequential+block@final_exam"
DS_MIDTERM = "block-v1:DemoX+DS201+2025_T1+type@sequential+block@midterm"

ACME = "3c6f1e2d-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
ACME_CATALOG = "4d7a2f3e-8b9c-4dae-9f10-2b3c4d5e6f70"
PLAN_2025 = "6e8b3a4f-9cad-4ebf-a021-3c4d5e6f7081"
PLAN_2026 = "6e8b3a4f-9cad-4ebf-a021-3c4d5e6f7082"
ADA_LICENSE = "7f9c4b5a-adbe-4fc0-b132-4d5e6f708191"
ALAN_LICENSE = "7f9c4b5a-adbe-4fc0-b132-4d5e6f708192"
GRACE_LICENSE = "7f9c4b5a-adbe-4fc0-b132-4d5e6f708193"
ADA_DS_LICENSED = "8a0d5c6b-becf-40d1-8243-5e6f708192a1"
ALAN_PY_LICENSED = "8a0d5c6b-becf-40d1-8243-5e6f708192a2"

ADA, GRACE, ALAN = 11, 12, 13
_PEOPLE = {ADA: ("ada", "Ada Lovelace"), GRACE: ("grace", "Grace Hopper"), ALAN: ("alan", "Alan Turing")}
_TITLES = {PY_RUN: "Python for Everyone", DS_RUN: "Data Science Foundations"}


def user(user_id: int) -> Data:
    username, name = _PEOPLE[user_id]
    return {
        "id": user_id,
        "is_active": True,
        "pii": {"username": username, "email": f"{username}@example.com", "name": name},
    }


def course(key: str) -> Data:
    return {
        "course_key": key,
        "display_name": _TITLES[key],
        "start": "2025-09-01T00:00:00Z",
        "end": "2025-12-15T00:00:00Z",
    }


# --- payload builders (one per kind of record) -------------------------------------------------
def studio_catalog_info(key: str, *, end: str, status: str, pacing: str = "instructor") -> Data:
    return {
        "catalog_info": {
            "course_key": key,
            "name": _TITLES[key],
            "status": status,
            "hidden": False,
            "invitation_only": False,
            "schedule_data": {
                "start": "2025-09-01T00:00:00Z",
                "end": end,
                "pacing": pacing,
                "enrollment_start": "2025-06-01T00:00:00Z",
                "enrollment_end": "2025-09-15T00:00:00Z",
            },
        }
    }


def catalog_course(uuid: str, key: str, title: str, runs: list[Data]) -> Data:
    return {
        "course": {
            "uuid": uuid,
            "key": key,
            "title": title,
            "short_description": f"{title}, from DemoX.",
            "course_runs": runs,
        }
    }


def catalog_run(
    key: str, status: str, start: str = "2025-09-01T00:00:00Z", pacing_type: str = "instructor_paced"
) -> Data:
    return {"key": key, "start": start, "end": None, "pacing_type": pacing_type, "status": status}


def program(status: str, courses: list[tuple[str, str]]) -> Data:
    return {
        "program": {
            **PROGRAM,
            "status": status,
            "marketing_slug": "applied-data-skills",
            "courses": [{"uuid": uuid, "key": key} for uuid, key in courses],
        }
    }


def published_run(
    key: str,
    uuid: str,
    course_key: str,
    *,
    verified_price: str,
    enrollment_end: str,
    pacing_type: str = "instructor_paced",
) -> Data:
    return {
        "course_run": {
            "key": key,
            "uuid": uuid,
            "course_key": course_key,
            "title": _TITLES[key],
            "start": "2025-09-01T00:00:00Z",
            "end": "2025-12-15T00:00:00Z",
            "enrollment_start": "2025-06-01T00:00:00Z",
            "enrollment_end": enrollment_end,
            "pacing_type": pacing_type,
            "marketing_url": f"https://www.example.com/course/{course_key.lower().replace('+', '-')}",
            "seats": [
                {"type": "audit", "price": "0.00", "currency": "USD", "upgrade_deadline": None},
                {
                    "type": "verified",
                    "price": verified_price,
                    "currency": "USD",
                    "upgrade_deadline": "2025-11-15T00:00:00Z",
                },
            ],
        }
    }


def enrollment(user_id: int, key: str, mode: str, *, active: bool = True) -> Data:
    return {
        "enrollment": {
            "user": user(user_id),
            "course": course(key),
            "mode": mode,
            "is_active": active,
            "creation_date": "2025-08-20T10:00:00Z",
            "created_by": None,
        }
    }


def order(number: str, user_id: int, key: str, price: str) -> Data:
    """A one-seat order: the verified mode of ``key``."""
    return {
        "order_number": number,
        "user": user(user_id),
        "currency": "USD",
        "total": price,
        "date_placed": "2025-08-21T09:30:00Z",
        "lines": [{"sku": f"SKU-{key.split(':')[1]}-verified", "course_key": key, "mode": "verified", "price": price}],
    }


def plan(uuid: str, title: str, start: str, expiration: str) -> Data:
    return {
        "subscription_plan": {
            "uuid": uuid,
            "title": title,
            "enterprise_customer_uuid": ACME,
            "enterprise_catalog_uuid": ACME_CATALOG,
            "start_date": start,
            "expiration_date": expiration,
            "num_licenses": 50,
        }
    }


def license_(
    uuid: str,
    user_id: int,
    plan_uuid: str,
    *,
    activated: bool = False,
    revoked: bool = False,
    expiration: str = "2025-12-31T23:59:59Z",
) -> Data:
    username = _PEOPLE[user_id][0]
    return {
        "license": {
            "uuid": uuid,
            "subscription_plan_uuid": plan_uuid,
            "enterprise_customer_uuid": ACME,
            "user_email": f"{username}@example.com",
            "lms_user_id": user_id if activated else None,
            "assigned_date": "2025-01-10T00:00:00Z",
            "activation_date": "2025-01-12T00:00:00Z" if activated else None,
            "revoked_date": "2025-03-01T00:00:00Z" if revoked else None,
            "expiration_date": expiration,
        }
    }


def licensed_enrollment(
    uuid: str, ece_id: int, user_id: int, license_uuid: str, key: str, *, revoked: bool = False
) -> Data:
    return {
        "licensed_course_enrollment": {
            "uuid": uuid,
            "created": "2025-02-01T00:00:00Z",
            "modified": "2025-03-01T00:00:00Z" if revoked else "2025-02-01T00:00:00Z",
            "is_revoked": revoked,
            "license_uuid": license_uuid,
            "enterprise_course_enrollment": {
                "id": ece_id,
                "created": "2025-02-01T00:00:00Z",
                "modified": "2025-03-01T00:00:00Z" if revoked else "2025-02-01T00:00:00Z",
                "enterprise_customer_user": {
                    "id": 100 + user_id,
                    "enterprise_customer_uuid": ACME,
                    "user_id": user_id,
                    "active": True,
                },
                "course_id": key,
                "saved_for_later": False,
                "source_slug": "enterprise-learner-portal",
                "unenrolled": revoked,
                "unenrolled_at": "2025-03-01T00:00:00Z" if revoked else None,
            },
        }
    }


def exam(user_id: int, key: str, usage_key: str) -> Data:
    return {
        "exam_attempt": {
            "student_user": user(user_id),
            "course_key": key,
            "usage_key": usage_key,
            "exam_type": "proctored",
            "requesting_user": None,
        }
    }


def grade(user_id: int, key: str, percent: float, letter: str, passed: str | None) -> Data:
    return {
        "grade": {
            "user_id": user_id,
            "course": course(key),
            "course_edited_timestamp": "2025-08-01T00:00:00Z",
            "course_version": "v42",
            "grading_policy_hash": "policy-7f3a",
            "percent_grade": percent,
            "letter_grade": letter,
            "passed_timestamp": passed,
        }
    }


def passing(user_id: int, key: str, is_passing: bool) -> Data:
    return {"course_passing_status": {"is_passing": is_passing, "course": course(key), "user": user(user_id)}}


def certificate(user_id: int, key: str, *, grade_: str, status: str, previous: str = "") -> Data:
    username = _PEOPLE[user_id][0]
    return {
        "certificate": {
            "user": user(user_id),
            "course": course(key),
            "mode": "verified",
            "grade": grade_,
            "current_status": status,
            "previous_status": previous,
            "download_url": f"https://lms.example.com/certificates/{username}-{key.split('+')[1]}",
            "name": _PEOPLE[user_id][1],
        }
    }


def intent(user_id: int, what: str) -> Data:
    return {"program_intent": {"user": user(user_id), "program": PROGRAM, "intent": what}}


ADA_ORDER = order("EDX-100001", ADA, PY_RUN, "39.00")
GRACE_ORDER = order("EDX-100002", GRACE, PY_RUN, "39.00")

# --- the story ---------------------------------------------------------------------------------
STEPS: list[Step] = [
    # 1. Studio creates two runs and edits one; discovery lists them.
    Step("studio", COURSE_CREATED, {"course": {"course_key": PY_RUN}}, PY_RUN),
    Step(
        "studio",
        COURSE_CATALOG_INFO_CHANGED,
        studio_catalog_info(PY_RUN, end="2025-12-01T00:00:00Z", status="unpublished"),
        PY_RUN,
    ),
    Step("studio", COURSE_CREATED, {"course": {"course_key": DS_RUN}}, DS_RUN),
    Step(
        "studio",
        COURSE_CATALOG_INFO_CHANGED,
        studio_catalog_info(DS_RUN, end="2025-12-15T00:00:00Z", status="published", pacing="self"),
        DS_RUN,
    ),
    Step(
        "studio",
        COURSE_CATALOG_INFO_CHANGED,
        studio_catalog_info(PY_RUN, end="2025-12-15T00:00:00Z", status="published"),
        PY_RUN,
    ),
    # 2. Discovery publishes the courses and a program that grows to hold both; credentials mirrors them.
    Step(
        "discovery",
        CATALOG_COURSE_CREATED,
        catalog_course(PY_COURSE_UUID, PY_COURSE, "Python for Everyone", [catalog_run(PY_RUN, "unpublished")]),
        PY_COURSE,
    ),
    Step(
        "discovery",
        CATALOG_COURSE_CREATED,
        catalog_course(
            DS_COURSE_UUID,
            DS_COURSE,
            "Data Science Foundations",
            [catalog_run(DS_RUN, "published", pacing_type="self_paced")],
        ),
        DS_COURSE,
    ),
    Step("discovery", CATALOG_PROGRAM_CREATED, program("unpublished", [(PY_COURSE_UUID, PY_COURSE)]), PROGRAM_UUID),
    Step(
        "discovery",
        CATALOG_PROGRAM_UPDATED,
        program("active", [(PY_COURSE_UUID, PY_COURSE), (DS_COURSE_UUID, DS_COURSE)]),
        PROGRAM_UUID,
    ),
    Step(
        "discovery",
        CATALOG_COURSE_UPDATED,
        catalog_course(
            PY_COURSE_UUID,
            PY_COURSE,
            "Python for Everyone",
            [catalog_run(PY_RUN, "published"), catalog_run(PY_NEXT_RUN, "unpublished", "2026-01-10T00:00:00Z")],
        ),
        PY_COURSE,
    ),
    # 8. Publisher publishes both runs, then republishes one with a lower price and a later close.
    Step(
        "discovery",
        COURSE_RUN_PUBLISHED,
        published_run(PY_RUN, PY_RUN_UUID, PY_COURSE, verified_price="49.00", enrollment_end="2025-09-15T00:00:00Z"),
        PY_RUN,
    ),
    Step(
        "discovery",
        COURSE_RUN_PUBLISHED,
        published_run(
            DS_RUN,
            DS_RUN_UUID,
            DS_COURSE,
            verified_price="99.00",
            enrollment_end="2025-09-15T00:00:00Z",
            pacing_type="self_paced",
        ),
        DS_RUN,
    ),
    Step(
        "discovery",
        COURSE_RUN_PUBLISHED,
        published_run(PY_RUN, PY_RUN_UUID, PY_COURSE, verified_price="39.00", enrollment_end="2025-10-01T00:00:00Z"),
        PY_RUN,
    ),
    # 4 and 9. Learners enroll, buy verified seats, and one unenrolls.
    Step("lms", COURSE_ENROLLMENT_CREATED, enrollment(ADA, PY_RUN, "audit"), PY_RUN),
    Step("lms", COURSE_ENROLLMENT_CREATED, enrollment(ALAN, DS_RUN, "audit"), DS_RUN),
    Step("lms", ORDER_PLACED, {"order": ADA_ORDER}, ADA_ORDER["order_number"]),
    Step("lms", COURSE_ENROLLMENT_CHANGED, enrollment(ADA, PY_RUN, "verified"), PY_RUN),
    Step(
        "lms", ORDER_FULFILLED, {"order": ADA_ORDER, "fulfilled_at": "2025-08-21T09:31:00Z"}, ADA_ORDER["order_number"]
    ),
    Step("lms", ORDER_PLACED, {"order": GRACE_ORDER}, GRACE_ORDER["order_number"]),
    Step("lms", COURSE_ENROLLMENT_CREATED, enrollment(GRACE, PY_RUN, "verified"), PY_RUN),
    Step(
        "lms",
        ORDER_FULFILLED,
        {"order": GRACE_ORDER, "fulfilled_at": "2025-08-21T09:40:00Z"},
        GRACE_ORDER["order_number"],
    ),
    Step("lms", COURSE_ENROLLMENT_CHANGED, enrollment(ALAN, DS_RUN, "audit", active=False), DS_RUN),
    Step("lms", COURSE_UNENROLLMENT_COMPLETED, enrollment(ALAN, DS_RUN, "audit", active=False), DS_RUN),
    # 5. Acme's plan; licenses assigned and activated; licensed enrollments; a revocation,
    #    a renewal into next year's plan, and the old plan expiring with its unused license.
    Step(
        "license_manager",
        SUBSCRIPTION_PLAN_CREATED,
        plan(PLAN_2025, "Acme 2025", "2025-01-01T00:00:00Z", "2025-12-31T23:59:59Z"),
        PLAN_2025,
    ),
    Step("license_manager", LICENSE_ASSIGNED, license_(ADA_LICENSE, ADA, PLAN_2025), ADA_LICENSE),
    Step("license_manager", LICENSE_ASSIGNED, license_(ALAN_LICENSE, ALAN, PLAN_2025), ALAN_LICENSE),
    Step("license_manager", LICENSE_ASSIGNED, license_(GRACE_LICENSE, GRACE, PLAN_2025), GRACE_LICENSE),
    Step("license_manager", LICENSE_ACTIVATED, license_(ADA_LICENSE, ADA, PLAN_2025, activated=True), ADA_LICENSE),
    Step("license_manager", LICENSE_ACTIVATED, license_(ALAN_LICENSE, ALAN, PLAN_2025, activated=True), ALAN_LICENSE),
    Step("lms", COURSE_ENROLLMENT_CREATED, enrollment(ADA, DS_RUN, "verified"), DS_RUN),
    Step(
        "lms",
        LICENSED_COURSE_ENROLLMENT_CHANGED,
        licensed_enrollment(ADA_DS_LICENSED, 501, ADA, ADA_LICENSE, DS_RUN),
        DS_RUN,
    ),
    Step("lms", COURSE_ENROLLMENT_CREATED, enrollment(ALAN, PY_RUN, "verified"), PY_RUN),
    Step(
        "lms",
        LICENSED_COURSE_ENROLLMENT_CHANGED,
        licensed_enrollment(ALAN_PY_LICENSED, 502, ALAN, ALAN_LICENSE, PY_RUN),
        PY_RUN,
    ),
    Step(
        "license_manager",
        LICENSE_REVOKED,
        license_(ALAN_LICENSE, ALAN, PLAN_2025, activated=True, revoked=True),
        ALAN_LICENSE,
    ),
    Step(
        "lms",
        LICENSED_COURSE_ENROLLMENT_CHANGED,
        licensed_enrollment(ALAN_PY_LICENSED, 502, ALAN, ALAN_LICENSE, PY_RUN, revoked=True),
        PY_RUN,
    ),
    Step("lms", COURSE_ENROLLMENT_CHANGED, enrollment(ALAN, PY_RUN, "verified", active=False), PY_RUN),
    Step(
        "license_manager",
        SUBSCRIPTION_PLAN_CREATED,
        plan(PLAN_2026, "Acme 2026", "2026-01-01T00:00:00Z", "2026-12-31T23:59:59Z"),
        PLAN_2026,
    ),
    Step(
        "license_manager",
        LICENSE_RENEWED,
        license_(ADA_LICENSE, ADA, PLAN_2026, activated=True, expiration="2026-12-31T23:59:59Z"),
        ADA_LICENSE,
    ),
    Step(
        "license_manager",
        SUBSCRIPTION_PLAN_EXPIRED,
        plan(PLAN_2025, "Acme 2025", "2025-01-01T00:00:00Z", "2025-12-31T23:59:59Z"),
        PLAN_2025,
    ),
    Step("license_manager", LICENSE_EXPIRED, license_(GRACE_LICENSE, GRACE, PLAN_2025), GRACE_LICENSE),
    # 6. The exams service reviews three attempts: verified, rejected, errored (Ada's midterm was
    #    reset by staff once before she retook it).
    Step("exams", EXAM_ATTEMPT_SUBMITTED, exam(ADA, PY_RUN, PY_FINAL), PY_RUN),
    Step("exams", EXAM_ATTEMPT_SUBMITTED, exam(GRACE, PY_RUN, PY_FINAL), PY_RUN),
    Step("exams", EXAM_ATTEMPT_SUBMITTED, exam(ADA, DS_RUN, DS_MIDTERM), DS_RUN),
    Step("exams", EXAM_ATTEMPT_RESET, exam(ADA, DS_RUN, DS_MIDTERM), DS_RUN),
    Step("exams", EXAM_ATTEMPT_SUBMITTED, exam(ADA, DS_RUN, DS_MIDTERM), DS_RUN),
    Step("exams", EXAM_ATTEMPT_VERIFIED, exam(ADA, PY_RUN, PY_FINAL), PY_RUN),
    Step("exams", EXAM_ATTEMPT_REJECTED, exam(GRACE, PY_RUN, PY_FINAL), PY_RUN),
    Step("exams", EXAM_ATTEMPT_ERRORED, exam(ADA, DS_RUN, DS_MIDTERM), DS_RUN),
    # 3. Grades, passing status and certificates: Ada's is regraded, Grace's revoked.
    Step("lms", PERSISTENT_GRADE_SUMMARY_CHANGED, grade(ADA, PY_RUN, 0.92, "A", "2025-12-10T12:00:00Z"), PY_RUN),
    Step("lms", COURSE_PASSING_STATUS_UPDATED, passing(ADA, PY_RUN, True), PY_RUN),
    Step("lms", CERTIFICATE_CREATED, certificate(ADA, PY_RUN, grade_="0.92", status="downloadable"), PY_RUN),
    Step("lms", PERSISTENT_GRADE_SUMMARY_CHANGED, grade(GRACE, PY_RUN, 0.85, "B", "2025-12-10T12:00:00Z"), PY_RUN),
    Step("lms", COURSE_PASSING_STATUS_UPDATED, passing(GRACE, PY_RUN, True), PY_RUN),
    Step("lms", CERTIFICATE_CREATED, certificate(GRACE, PY_RUN, grade_="0.85", status="downloadable"), PY_RUN),
    Step("lms", PERSISTENT_GRADE_SUMMARY_CHANGED, grade(ADA, PY_RUN, 0.95, "A", "2025-12-10T12:00:00Z"), PY_RUN),
    Step(
        "lms",
        CERTIFICATE_CHANGED,
        certificate(ADA, PY_RUN, grade_="0.95", status="downloadable", previous="downloadable"),
        PY_RUN,
    ),
    Step("lms", PERSISTENT_GRADE_SUMMARY_CHANGED, grade(GRACE, PY_RUN, 0.55, "", None), PY_RUN),
    Step("lms", COURSE_PASSING_STATUS_UPDATED, passing(GRACE, PY_RUN, False), PY_RUN),
    Step(
        "lms",
        CERTIFICATE_REVOKED,
        certificate(GRACE, PY_RUN, grade_="0.55", status="unavailable", previous="downloadable"),
        PY_RUN,
    ),
    # 7. Program intent: Ada pursues the program; Grace considers it, then commits.
    Step("lms", PROGRAM_INTENT_CHANGED, intent(ADA, "intends_to_pursue"), PROGRAM_UUID),
    Step("lms", PROGRAM_INTENT_CHANGED, intent(GRACE, "considering"), PROGRAM_UUID),
    Step("lms", PROGRAM_INTENT_CHANGED, intent(GRACE, "intends_to_pursue"), PROGRAM_UUID),
]

#: Per consuming service: what ``summary()["counts"]`` reports after every step was processed.
EXPECTED: dict[str, dict[str, int]] = {
    "discovery": {
        "course_runs": 2,  # PY and DS runs, from Studio
        "enrollments": 5,  # Ada PY, Ada DS, Grace PY, Alan DS, Alan PY
        "active_enrollments": 3,  # Alan left DS, and PY when his license was revoked
    },
    "credentials": {
        "certificates": 2,  # Ada's and Grace's PY certificates
        "awarded_certificates": 1,  # Grace's was revoked
        "grades": 2,
        "passing_grades": 1,  # Ada
        "program_intents": 2,  # Ada, Grace (Grace changed hers)
        "catalog_courses": 2,
        "catalog_course_runs": 3,  # PY T1 and T3, DS T1
        "catalog_programs": 1,
        "program_courses": 2,  # the program grew from PY to PY + DS
    },
    "lms": {
        "exam_outcomes": 3,  # Ada's final (verified), Grace's final (rejected), Ada's midterm (error)
        "exam_outcomes_blocking_certificates": 1,  # Grace's rejected final
        "licenses": 3,
        "activated_licenses": 1,  # Ada's, renewed; Alan's revoked; Grace's expired unused
        "published_course_runs": 2,
        "course_modes": 4,  # audit + verified for each run
    },
    "ecommerce": {
        "orders": 2,
        "fulfilled_orders": 2,
        "order_lines": 2,
        "enrollments": 5,
        "active_enrollments": 3,
    },
    "license_manager": {
        "licensed_enrollments": 2,  # Ada DS, Alan PY
        "active_licensed_enrollments": 1,  # Alan's ended with his license
    },
    "enterprise_catalog": {
        "subscription_catalogs": 2,  # Acme 2025 and 2026
        "active_subscription_catalogs": 1,
        "content_metadata": 2,
    },
    "studio": {
        "published_schedules": 2,
    },
}
