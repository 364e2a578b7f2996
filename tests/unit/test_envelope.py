import datetime as dt

import pytest

from event_tasks.envelope import SPECVERSION, read_envelope
from event_tasks.errors import InvalidEvent

GOOD = {
    "id": "e1",
    "type": "org.openedx.learning.probe.created.v1",
    "source": "lms",
    "time": "2026-01-02T03:04:05.000006Z",
    "specversion": SPECVERSION,
    "key": None,
}


def test_good_envelope_parses_time():
    env = read_envelope(GOOD, expected_type=GOOD["type"])
    assert env["time"] == dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "change,reason,needle",
    [
        ({"id": None}, "invalid_envelope", "missing envelope fields: id"),
        ({"source": ""}, "invalid_envelope", "source"),
        ({"extra": 1}, "invalid_envelope", "unknown envelope fields: extra"),
        ({"time": "yesterday"}, "invalid_envelope", "ISO 8601"),
        ({"time": "2026-01-02T03:04:05"}, "invalid_envelope", "timezone"),
        ({"specversion": "2.0"}, "unsupported_version", "2.0"),
        ({"key": 5}, "invalid_envelope", "key"),
        ({"type": "org.openedx.learning.other.v1"}, "invalid_envelope", "does not match"),
    ],
)
def test_bad_envelopes_say_what_is_wrong(change, reason, needle):
    with pytest.raises(InvalidEvent) as err:
        read_envelope({**GOOD, **change}, expected_type=GOOD["type"])
    assert err.value.reason == reason and needle in err.value.detail


def test_not_an_object():
    with pytest.raises(InvalidEvent, match="not an object"):
        read_envelope([1, 2])
