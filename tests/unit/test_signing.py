"""Signed envelopes without a broker: the canonical encoding, signing, verifying, rotation, the modes."""

from __future__ import annotations

import dataclasses
import json

import pytest
from django.test import override_settings

from event_tasks import conf, signing
from event_tasks.brokers.message import encode_body
from event_tasks.consume.delivery import read_event
from event_tasks.envelope import read_envelope
from event_tasks.errors import InvalidEvent, SigningKeyInvalid
from event_tasks.models import SignatureWarning
from event_tasks.send.publisher import Publisher
from event_tasks.testing import _Recorder, make_test_keys
from tests.fabric.schemas.probe import PROBE_CREATED

TYPE = "org.openedx.learning.certificate.created.v1"  # owned by lms in the demo catalog
OWNER = "lms"
KEYS = make_test_keys("lms", "lms_next", "credentials")
ENVELOPE = {
    "id": "e-1",
    "type": TYPE,
    "source": "lms",
    "time": "2026-12-02T10:00:00.000001Z",
    "specversion": "1.0",
    "key": "course-v1:x",
}
DATA = {"b": [1, 2.5, "é"], "a": {"z": None, "y": True}}


def verifier(mode: str = "enforce", **public: dict[str, str]) -> signing.Verifier:
    keys = public or KEYS.public_keys()
    return signing.verifier_for(conf.Settings(signing_public_keys=keys, signing_mode=mode))  # type: ignore[arg-type]  # mode: one of the Literal values


def test_canonical_json_sorts_keys_drops_whitespace_and_escapes_non_ascii():
    assert signing.canonical(DATA) == b'{"a":{"y":true,"z":null},"b":[1,2.5,"\\u00e9"]}'
    assert signing.canonical(json.loads(json.dumps(DATA, indent=2))) == signing.canonical(DATA)


def test_a_signed_envelope_verifies_after_a_json_round_trip_of_the_wire_body():
    signed = KEYS.sign("lms", ENVELOPE, DATA)
    assert signed["sigkey"] == "lms-test" and isinstance(signed["sig"], str)
    body, _ = encode_body(signed, DATA)
    (envelope, data), _, _ = json.loads(body)
    assert read_envelope(envelope)["sig"] == signed["sig"]  # the fields are known to the envelope reader
    assert verifier().check(envelope, data, OWNER) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e, d: ({k: v for k, v in e.items() if k not in ("sig", "sigkey")}, d), "unsigned"),
        (lambda e, d: (e, {**d, "b": [1, 2.5, "e"]}), "bad_signature"),  # tampered payload
        (lambda e, d: ({**e, "key": "course-v1:y"}, d), "bad_signature"),
        (lambda e, d: ({**e, "time": "2026-12-02T10:00:01Z"}, d), "bad_signature"),
        (lambda e, d: ({**e, "id": "e-2"}, d), "bad_signature"),
        (lambda e, d: ({**e, "sig": "not base64!"}, d), "bad_signature"),
        (lambda e, d: ({**e, "sigkey": "lms-removed"}, d), "bad_signature"),
        (lambda e, d: ({**e, "sig": None}, d), "bad_signature"),
    ],
)
def test_what_is_refused_and_why(change, reason):
    envelope, data = change(KEYS.sign("lms", ENVELOPE, DATA), DATA)
    problem = verifier().check(envelope, data, OWNER)
    assert problem is not None and problem.reason == reason, problem


def test_a_key_of_another_service_is_not_the_owner():
    forged = KEYS.sign("credentials", {**ENVELOPE, "source": "credentials"}, DATA)
    problem = verifier().check(forged, DATA, OWNER)
    assert problem is not None and problem.reason == "not_owner" and "'credentials'" in problem.detail
    posing = KEYS.sign("credentials", ENVELOPE, DATA)  # signed by credentials, claiming source lms
    assert verifier().check(posing, DATA, OWNER).reason == "not_owner"  # type: ignore[union-attr]


def test_rotation_two_keys_of_one_service_are_accepted_and_a_removed_one_is_not():
    old, new = KEYS.public["lms"], KEYS.public["lms_next"]
    both = verifier(lms={"lms-test": old, "lms_next-test": new})
    by_old = KEYS.sign("lms", ENVELOPE, DATA)
    by_new = KEYS.sign("lms_next", ENVELOPE, DATA)
    assert both.check(by_old, DATA, OWNER) is None and both.check(by_new, DATA, OWNER) is None
    only_new = verifier(lms={"lms_next-test": new})
    assert only_new.check(by_new, DATA, OWNER) is None
    assert only_new.check(by_old, DATA, OWNER).reason == "bad_signature"  # type: ignore[union-attr]


def test_a_repository_owner_maps_to_the_services_that_sign_its_types():
    settings = conf.Settings(
        signing_public_keys=KEYS.public_keys(),
        signing_owners={"openedx/edx-platform": ("lms", "cms")},
        signing_mode="enforce",
    )
    signed = KEYS.sign("lms", ENVELOPE, DATA)
    assert signing.verifier_for(settings).check(signed, DATA, "openedx/edx-platform") is None
    assert signing.verifier_for(settings).check(signed, DATA, "openedx/other").reason == "not_owner"  # type: ignore[union-attr]


def test_settings_mistakes_are_one_line_errors():
    private, public = signing.generate_key_pair()
    with pytest.raises(SigningKeyInvalid, match="EVENT_TASKS_SIGNING_KEY_ID"):
        signing.signer_for(conf.Settings(signing_key=private))
    with pytest.raises(SigningKeyInvalid, match="not an Ed25519 key"):
        signing.signer_for(conf.Settings(signing_key="c2hvcnQ=", signing_key_id="x"))
    with pytest.raises(SigningKeyInvalid, match="at most 2"):
        verifier(lms={"a": public, "b": public, "c": public})
    with pytest.raises(SigningKeyInvalid, match="must be unique"):
        verifier(lms={"a": public}, cms={"a": public})
    with pytest.raises(SigningKeyInvalid, match="needs EVENT_TASKS_SIGNING_PUBLIC_KEYS"):
        signing.verifier_for(conf.Settings(signing_mode="enforce"))
    with pytest.raises(SigningKeyInvalid, match="cannot read"):
        signing.signer_for(conf.Settings(signing_key_file="/nonexistent/key", signing_key_id="x"))


def test_pem_keys_load_too(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "lms.pem").write_text(pem)
    signer = signing.signer_for(conf.Settings(signing_key_file=str(tmp_path / "lms.pem"), signing_key_id="pem-1"))
    assert signer is not None
    check = verifier(lms={"pem-1": public.decode()})
    assert check.check(signer.sign(ENVELOPE, DATA), DATA, OWNER) is None


def test_the_default_mode_is_off_without_public_keys_and_warn_with_them():
    assert signing.effective_mode(conf.Settings()) == "off"
    assert signing.effective_mode(conf.Settings(signing_public_keys=KEYS.public_keys())) == "warn"
    assert signing.effective_mode(conf.Settings(signing_public_keys=KEYS.public_keys(), signing_mode="off")) == "off"


def test_the_publisher_signs_what_it_prepares():
    keys = make_test_keys("prober")
    settings = dataclasses.replace(conf.settings(), **{k.lower()[12:]: v for k, v in keys.settings("prober").items()})
    publisher = Publisher(None, "prober", settings, transport=_Recorder())
    _, prepared = publisher.prepare(PROBE_CREATED, {"n": 3, "note": "é"}, key="k")
    (envelope, wire), _, _ = json.loads(prepared.body)
    assert envelope["sigkey"] == "prober-test"
    assert signing.verifier_for(settings).check(envelope, wire, "prober") is None


def _args(envelope, data):
    return tuple(json.loads(encode_body(envelope, data)[0])[0])


@pytest.mark.django_db
def test_read_event_enforces_warns_or_ignores_by_mode():
    data = {"n": 1, "note": ""}
    probe = {**ENVELOPE, "type": PROBE_CREATED, "source": "prober"}
    keys = make_test_keys("prober", "alpha")
    unsigned = _args(probe, data)
    forged = _args(keys.sign("alpha", {**probe, "source": "alpha"}, data), data)
    signed = _args(keys.sign("prober", probe, data), data)
    with override_settings(**keys.settings(None, "enforce")):
        conf.settings.cache_clear()
        assert read_event(PROBE_CREATED, signed, {}, "beta").id == "e-1"
        with pytest.raises(InvalidEvent) as refused:
            read_event(PROBE_CREATED, unsigned, {}, "beta")
        assert refused.value.reason == "unsigned"
        with pytest.raises(InvalidEvent) as refused:
            read_event(PROBE_CREATED, forged, {}, "beta")
        assert refused.value.reason == "not_owner"
    with override_settings(**keys.settings(None, "warn")):
        conf.settings.cache_clear()
        for _ in range(2):
            assert read_event(PROBE_CREATED, unsigned, {}, "beta").id == "e-1"  # run anyway ...
        read_event(PROBE_CREATED, forged, {}, "beta")
        read_event(PROBE_CREATED, signed, {}, "beta")
    counted = {(w.reason, w.source): w.count for w in SignatureWarning.objects.filter(service="beta")}
    assert counted == {("unsigned", "prober"): 2, ("not_owner", "alpha"): 1}  # ... and counted
    with override_settings(EVENT_TASKS_SIGNING_MODE="off"):
        conf.settings.cache_clear()
        assert read_event(PROBE_CREATED, forged, {}, "beta").id == "e-1"
    conf.settings.cache_clear()
