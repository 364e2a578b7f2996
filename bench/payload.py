"""The one event every system in the benchmark carries: a course certificate was created.

Ours is the product catalog's ``org.openedx.learning.certificate.created.v1``; openedx-events
has the same type (``CERTIFICATE_CREATED``, data ``CertificateData``) with the same fields, so
the Open edX Redis event bus sends the equivalent event.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"
COURSE_KEY = "course-v1:edX+DemoX+2026"
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
END = dt.datetime(2026, 6, 30, tzinfo=dt.UTC)


def certificate(i: int = 0) -> dict[str, Any]:
    """Our payload (JSON-ready), as a producer hands it to ``send_event``."""
    return {
        "certificate": {
            "user": {
                "id": 1000 + i,
                "is_active": True,
                "pii": {"username": f"learner{i}", "email": f"learner{i}@example.com", "name": f"Learner {i}"},
            },
            "course": {
                "course_key": COURSE_KEY,
                "display_name": "Demo course",
                "start": START.isoformat(),
                "end": END.isoformat(),
            },
            "mode": "verified",
            "grade": "0.92",
            "current_status": "downloadable",
            "previous_status": "",
            "download_url": f"https://lms.example.com/certificates/learner{i}-DemoX",
            "name": f"Learner {i}",
        }
    }


def envelope(i: int, source: str = "lms") -> dict[str, Any]:
    """The envelope plain Celery / kombu carry (the same one ours builds: id, type, source, time …)."""
    now = dt.datetime.now(dt.UTC)
    return {
        "id": str(uuid.uuid4()),
        "type": CERTIFICATE_CREATED,
        "source": source,
        "time": now.isoformat().replace("+00:00", "Z"),
        "specversion": "1.0",
        "key": COURSE_KEY,
    }


def celery_body(i: int) -> str:
    """A protocol-2 task body ``[args, kwargs, embed]`` with ``(envelope, data)`` as the arguments."""
    return json.dumps(
        [[envelope(i), certificate(i)], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )


def openedx_certificate(i: int = 0):
    """openedx-events' ``CertificateData`` with the same values."""
    from opaque_keys.edx.keys import CourseKey
    from openedx_events.learning.data import CertificateData, CourseData, UserData, UserPersonalData

    return CertificateData(
        user=UserData(
            id=1000 + i,
            is_active=True,
            pii=UserPersonalData(username=f"learner{i}", email=f"learner{i}@example.com", name=f"Learner {i}"),
        ),
        course=CourseData(
            course_key=CourseKey.from_string(COURSE_KEY), display_name="Demo course", start=START, end=END
        ),
        mode="verified",
        grade="0.92",
        download_url=f"https://lms.example.com/certificates/learner{i}-DemoX",
        name=f"Learner {i}",
        current_status="downloadable",
        previous_status="",
    )


def task_headers(task: str, task_id: str) -> dict[str, Any]:
    """Celery's protocol 2 headers of a task message, as plain kombu publishes them in the bench."""
    return {
        "lang": "py",
        "task": task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": "",
        "kwargsrepr": "{}",
        "origin": "bench",
    }
