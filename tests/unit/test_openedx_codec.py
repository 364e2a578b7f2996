"""The openedx backend's compiled ``to_dict`` / ``from_dict`` (``event_tasks.openedx.codec``) give what
openedx-events' own ``AvroSignalSerializer.to_dict`` / ``AvroSignalDeserializer.from_dict`` give, on
generated data of every signal the backend carries, and hand what they do not cover to them."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import attr
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from opaque_keys.edx.keys import CourseKey
from openedx_events.learning.data import CertificateData, CourseData, UserData, UserPersonalData
from openedx_events.learning.signals import CERTIFICATE_CREATED

from event_tasks.openedx.codec import (
    DataDeserializer,
    DataSerializer,
    deserializer,
    from_payload,
    metadata_to_dict,
    serializer,
    to_payload,
)

from .test_openedx import SIGNALS, values


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda s: s.event_type)
def test_compiled_to_dict_and_from_dict_are_openedx_events_own(signal):
    ours_out, ours_in = DataSerializer(signal), DataDeserializer(signal)
    theirs_out, theirs_in = serializer(signal), deserializer(signal)

    @hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.fixed_dictionaries({k: values(t) for k, t in signal.init_data.items()}))
    def same(data):
        payload = ours_out(data)
        assert payload == theirs_out.to_dict(data)
        assert json.loads(json.dumps(payload)) == payload  # JSON-ready as it is
        assert ours_in(payload) == theirs_in.from_dict(payload)
        assert ours_in(payload) == ours_in(payload)  # twice: the cached parses give equal objects

    same()


def certificate(**changes):
    course = CourseData(course_key=CourseKey.from_string("course-v1:a+b+c"))
    fields = {
        "user": UserData(id=1, is_active=True, pii=UserPersonalData(username="u", email="u@x.org", name="U")),
        "course": course,
        "mode": "verified",
        "grade": "0.9",
        "current_status": "downloadable",
        "download_url": "https://x.org/c",
        "name": "U",
        **changes,
    }
    return CertificateData(**fields)


class Text(str):
    """A str subclass: json turns it into a plain str, so the compiled path leaves it to openedx-events."""


def test_what_the_plan_does_not_cover_goes_to_openedx_events():
    ours = DataSerializer(CERTIFICATE_CREATED)
    theirs = serializer(CERTIFICATE_CREATED)
    for data in (
        {"certificate": certificate(mode=Text("verified"))},
        {"certificate": certificate(grade=Text("x"))},
        {"certificate": "not a certificate"},
    ):
        got = ours(data)
        assert got == theirs.to_dict(data)
        assert [type(v) for v in got.values()] == [type(v) for v in theirs.to_dict(data).values()]
    broken = certificate()
    object.__setattr__(broken, "mode", None)  # no default: openedx-events refuses None, and so does the backend
    with pytest.raises(Exception, match="None cannot be handled"):
        theirs.to_dict({"certificate": broken})
    with pytest.raises(Exception, match="None cannot be handled"):
        ours({"certificate": broken})


def test_the_metadata_is_to_json_data():
    metadata = CERTIFICATE_CREATED.generate_signal_metadata(time=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    expected = metadata.to_json_data()
    expected["sourcelib"] = list(expected["sourcelib"])
    assert metadata_to_dict(metadata) == expected
    assert list(metadata_to_dict(metadata)) == list(expected)
    odd = attr.evolve(metadata)
    object.__setattr__(odd, "id", str(uuid.uuid4()))  # not a UUID any more: openedx-events' own conversion
    expected = odd.to_json_data()
    expected["sourcelib"] = list(expected["sourcelib"])
    assert metadata_to_dict(odd) == expected


def test_payload_round_trip_with_the_metadata():
    metadata = CERTIFICATE_CREATED.generate_signal_metadata()
    data = {"certificate": certificate()}
    got_metadata, got = from_payload(
        CERTIFICATE_CREATED, json.loads(json.dumps(to_payload(CERTIFICATE_CREATED, data, metadata)))
    )
    assert got_metadata == metadata
    assert got == data
