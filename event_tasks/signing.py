"""Signed envelopes: each producing service signs what it sends, each consumer checks the type's owner signed it.

The signature is Ed25519 (``cryptography``) over :func:`signed_bytes`: a domain tag, then the canonical
JSON of ``[id, type, source, time, key, sigkey, sha256(canonical JSON of the data)]``. The data is the
payload as it travels (after the codec dumps it), encoded with sorted keys, no whitespace and ASCII
escapes (:func:`canonical`): the consumer re-encodes what it received the same way, so a retry, a
replay or the relay, which re-serialise the same JSON values, still verify. The envelope carries
``sigkey`` (the key id) and ``sig`` (base64); ``specversion`` is fixed and not covered.

:class:`Verifier` says what is wrong with a received event (``unsigned``, ``bad_signature``,
``not_owner``) or nothing; the worker acts on it by ``EVENT_TASKS_SIGNING_MODE`` (``consume.delivery``).
docs/signing.md, docs/decisions/0017-signed-envelopes.md.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .conf import Settings
from .errors import SigningKeyInvalid

DOMAIN = b"event-tasks/signature/1\n"
SIG_FIELDS = ("sigkey", "sig")
MAX_KEYS_PER_SERVICE = 2
Mode = typing.Literal["off", "warn", "enforce"]
REASONS = ("unsigned", "bad_signature", "not_owner")

_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, check_circular=False).encode


def canonical(value: object) -> bytes:
    """``value`` as canonical JSON bytes: sorted keys, no whitespace, ASCII (``\\uXXXX`` escapes)."""
    return _canonical(value).encode("ascii")


def digest(data: object) -> str:
    """The SHA-256 (hex) of the payload's canonical JSON."""
    return hashlib.sha256(canonical(data)).hexdigest()


def signed_bytes(envelope: Mapping[str, object], data: object, sigkey: str) -> bytes:
    """What the signature covers (``envelope``'s ``time`` as it travels: the ISO 8601 string)."""
    fields = [envelope.get(name) for name in ("id", "type", "source", "time", "key")]
    return DOMAIN + canonical([*fields, sigkey, digest(data)])


def _key_bytes(text: str, setting: str) -> bytes | None:
    """The 32 raw bytes of a base64 key, or None for PEM text."""
    if text.lstrip().startswith("-----BEGIN"):
        return None
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SigningKeyInvalid(setting, "not an Ed25519 key (PEM, or the base64 of 32 raw bytes)")
    return raw


def load_private_key(text: str, setting: str = "EVENT_TASKS_SIGNING_KEY") -> Ed25519PrivateKey:
    raw = _key_bytes(text, setting)
    if raw is not None:
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyInvalid(setting, f"the PEM private key does not load ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyInvalid(setting, f"a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(text: str, setting: str = "EVENT_TASKS_SIGNING_PUBLIC_KEYS") -> Ed25519PublicKey:
    raw = _key_bytes(text, setting)
    if raw is not None:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise SigningKeyInvalid(setting, f"a PEM public key does not load ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyInvalid(setting, f"a {type(key).__name__}, not an Ed25519 public key")
    return key


def generate_key_pair() -> tuple[str, str]:
    """A new ``(private key, public key)``, each the base64 of its 32 raw bytes."""
    private = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private_bytes = private.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public_bytes = private.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private_bytes).decode(), base64.b64encode(public_bytes).decode()


def public_key_of(private_key: str) -> str:
    """The base64 public key of a private key (PEM or base64)."""
    public = load_private_key(private_key).public_key()
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


@dataclasses.dataclass(frozen=True)
class Signer:
    """Signs the envelopes of one producing service."""

    key_id: str
    key: Ed25519PrivateKey

    def sign(self, envelope: Mapping[str, object], data: object) -> dict[str, object]:
        """``envelope`` with ``sigkey`` and ``sig`` (a new dict; ``data`` is the payload as it travels)."""
        signature = self.key.sign(signed_bytes(envelope, data, self.key_id))
        return {**envelope, "sigkey": self.key_id, "sig": base64.b64encode(signature).decode()}


def signer_for(conf: Settings) -> Signer | None:
    """The service's :class:`Signer`, or None when it has no key; :class:`SigningKeyInvalid` if it is unusable."""
    text = conf.signing_key
    if text is None and conf.signing_key_file:
        try:
            text = Path(conf.signing_key_file).read_text()
        except OSError as exc:
            problem = f"cannot read {conf.signing_key_file} ({exc})"
            raise SigningKeyInvalid("EVENT_TASKS_SIGNING_KEY_FILE", problem) from None
    if text is None:
        return None
    if not conf.signing_key_id:
        raise SigningKeyInvalid("EVENT_TASKS_SIGNING_KEY_ID", "a signing key needs its id (e.g. 'lms-2026-12')")
    return Signer(conf.signing_key_id, load_private_key(text))


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why a received event does not pass: ``reason`` is a dead-letter reason."""

    reason: str
    detail: str


@dataclasses.dataclass(frozen=True)
class Verifier:
    """Checks received events against the public keys of each type's owner."""

    mode: Mode
    keys: Mapping[str, tuple[str, Ed25519PublicKey]]  # key id -> (service, public key)
    owners: Mapping[str, frozenset[str]]  # catalog owner -> the services that may sign its types

    def check(self, envelope: Mapping[str, object], data: object, owner: str) -> Problem | None:
        """What is wrong with a received event of a type ``owner`` produces, or None if its owner signed it."""
        sigkey, sig = envelope.get("sigkey"), envelope.get("sig")
        if sigkey is None and sig is None:
            return Problem("unsigned", f"the event carries no signature (its type is owned by {owner!r})")
        if not isinstance(sigkey, str) or not isinstance(sig, str):
            return Problem("bad_signature", "the envelope's sigkey and sig must both be strings")
        known = self.keys.get(sigkey)
        if known is None:
            return Problem("bad_signature", f"signed with key {sigkey!r}, which no EVENT_TASKS_SIGNING_PUBLIC_KEYS has")
        signer, public = known
        try:
            public.verify(base64.b64decode(sig, validate=True), signed_bytes(envelope, data, sigkey))
        except (InvalidSignature, binascii.Error, ValueError):
            return Problem(
                "bad_signature",
                f"the signature of key {sigkey!r} ({signer}) does not verify: the envelope or the payload "
                "changed after signing, or another key signed it",
            )
        allowed = self.owners.get(owner, frozenset((owner,)))
        if signer not in allowed:
            return Problem("not_owner", f"signed by {signer!r} (key {sigkey!r}); its type is owned by {owner!r}")
        if envelope.get("source") != signer:
            return Problem("not_owner", f"signed by {signer!r} (key {sigkey!r}) as source {envelope.get('source')!r}")
        return None


def effective_mode(conf: Settings) -> Mode:
    if conf.signing_mode is not None:
        return conf.signing_mode
    return "warn" if conf.signing_public_keys else "off"


def verifier_for(conf: Settings) -> Verifier:
    """The worker's :class:`Verifier`; :class:`SigningKeyInvalid` for an unusable key or a key id used twice."""
    keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
    for service, entries in (conf.signing_public_keys or {}).items():
        setting = f"EVENT_TASKS_SIGNING_PUBLIC_KEYS[{service!r}]"
        if len(entries) > MAX_KEYS_PER_SERVICE:
            raise SigningKeyInvalid(setting, f"{len(entries)} keys; keep at most {MAX_KEYS_PER_SERVICE} (rotation)")
        for key_id, text in entries.items():
            if key_id in keys:
                raise SigningKeyInvalid(setting, f"key id {key_id!r} is also {keys[key_id][0]!r}'s: ids must be unique")
            keys[key_id] = (service, load_public_key(text, f"{setting}[{key_id!r}]"))
    owners = {owner: frozenset(services) for owner, services in (conf.signing_owners or {}).items()}
    mode = effective_mode(conf)
    if mode != "off" and not keys:
        raise SigningKeyInvalid("EVENT_TASKS_SIGNING_MODE", f"{mode!r} needs EVENT_TASKS_SIGNING_PUBLIC_KEYS")
    return Verifier(mode, keys, owners)


_signer: tuple[Settings, Signer | None] | None = None
_verifier: tuple[Settings, Verifier] | None = None


def signer(conf: Settings) -> Signer | None:
    """:func:`signer_for` ``conf``, built once per settings object (tests clear the settings cache)."""
    global _signer
    if _signer is None or _signer[0] is not conf:
        _signer = (conf, signer_for(conf))
    return _signer[1]


def verifier(conf: Settings) -> Verifier:
    """:func:`verifier_for` ``conf``, built once per settings object."""
    global _verifier
    if _verifier is None or _verifier[0] is not conf:
        _verifier = (conf, verifier_for(conf))
    return _verifier[1]
