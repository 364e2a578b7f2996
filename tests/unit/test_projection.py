"""``consumers.projection.apply_latest``: the latest-state rule the reference consumers share."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError
from django.db.models.query import QuerySet

from consumers.credentials.models import CatalogCourse
from consumers.projection import apply_latest
from demo.scenario import PY_COURSE, PY_COURSE_UUID, catalog_course
from event_tasks.testing import make_event
from schemas.catalog import CATALOG_COURSE_UPDATED

from .projection_helpers import at

pytestmark = pytest.mark.django_db


def event(seconds: float):
    return make_event(CATALOG_COURSE_UPDATED, catalog_course(PY_COURSE_UUID, PY_COURSE, "Python", []), time=at(seconds))


def write(seconds: float, title: str, course_uuid: str = PY_COURSE_UUID, key: str = PY_COURSE):
    return apply_latest(
        CatalogCourse, event(seconds), lookup={"uuid": course_uuid}, values={"key": key, "title": title}
    )


def test_creates_then_applies_newer_and_same_time_events_and_ignores_older_ones():
    row, applied = write(2, "first")
    assert applied and row.last_event_time == at(2)
    assert write(2, "same time again")[1]  # a redelivery re-applies (same values in practice)
    assert not write(1, "older")[1]
    assert write(3, "newer")[1]
    row = CatalogCourse.objects.get()
    assert (row.title, row.last_event_time) == ("newer", at(3))


def test_losing_an_insert_race_updates_the_row_the_winner_created(monkeypatch):
    write(1, "winner")
    real_first = QuerySet.first
    misses = iter([True])

    def first_misses_once(self):  # the row appears between our lookup and our insert
        return None if next(misses, False) else real_first(self)

    monkeypatch.setattr(QuerySet, "first", first_misses_once)
    row, applied = write(2, "loser, but newer")
    assert applied and CatalogCourse.objects.get().title == "loser, but newer"


def test_an_insert_refused_by_another_unique_constraint_is_not_taken_for_a_race():
    write(1, "original")
    with pytest.raises(IntegrityError):
        write(2, "same key, other uuid", course_uuid=str(uuid.uuid4()))
