"""Data of the four signals the integration tests send (openedx-events' attrs classes)."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC


def signals_and_data(n: int = 0) -> list[tuple[object, dict[str, object]]]:
    from opaque_keys.edx.keys import CourseKey, UsageKey
    from openedx_events.content_authoring.data import CourseCatalogData, CourseScheduleData
    from openedx_events.content_authoring.signals import COURSE_CATALOG_INFO_CHANGED
    from openedx_events.learning.data import (
        CertificateData,
        CourseData,
        CourseEnrollmentData,
        ExamAttemptData,
        UserData,
        UserPersonalData,
    )
    from openedx_events.learning.signals import CERTIFICATE_CREATED, COURSE_ENROLLMENT_CHANGED, EXAM_ATTEMPT_SUBMITTED

    course = CourseKey.from_string(f"course-v1:edX+DemoX+2026_{n}")
    learner = UserData(
        id=1000 + n,
        is_active=True,
        pii=UserPersonalData(username=f"learner{n}", email=f"learner{n}@example.com", name="Lé Arner"),
    )
    staff = UserData(id=7, is_active=False, pii=UserPersonalData(username="staff", email="s@example.com", name="S"))
    course_data = CourseData(
        course_key=course, display_name="Demo course", start=dt.datetime(2026, 1, 5, tzinfo=UTC), end=None
    )
    return [
        (
            CERTIFICATE_CREATED,
            {
                "certificate": CertificateData(
                    user=learner,
                    course=course_data,
                    mode="verified",
                    grade="0.92",
                    current_status="downloadable",
                    download_url="https://lms.example.com/cert/1",
                    name="Lé Arner",
                    previous_status="",
                )
            },
        ),
        (
            COURSE_CATALOG_INFO_CHANGED,
            {
                "catalog_info": CourseCatalogData(
                    course_key=course,
                    name="Demo course",
                    hidden=True,
                    schedule_data=CourseScheduleData(
                        start=dt.datetime(2026, 1, 5, 9, 30, 0, 123456, tzinfo=UTC),
                        pacing="instructor",
                        end=dt.datetime(2026, 6, 30, tzinfo=UTC),
                    ),
                )
            },
        ),
        (
            COURSE_ENROLLMENT_CHANGED,
            {
                "enrollment": CourseEnrollmentData(
                    user=learner,
                    course=course_data,
                    mode="audit",
                    is_active=True,
                    creation_date=dt.datetime(2026, 2, 1, 12, 0, tzinfo=UTC),
                    created_by=staff,
                )
            },
        ),
        (
            EXAM_ATTEMPT_SUBMITTED,
            {
                "exam_attempt": ExamAttemptData(
                    student_user=learner,
                    course_key=course,
                    exam_type="proctored",
                    usage_key=UsageKey.from_string(f"block-v1:edX+DemoX+2026_{n}+type@sequential+block@exam1"),
                )
            },
        ),
    ]
