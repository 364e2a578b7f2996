"""``events keys generate|public``: Ed25519 key pairs for signed envelopes (docs/signing.md).

``generate --service lms [--out DIR]`` makes a new key pair: with ``--out``, ``DIR/lms.key`` (the
private key, readable by its owner only) and ``DIR/lms.pub``; without, both printed, with the settings
that use them. ``public`` prints the public key of this service's configured private key (what the
consumers' ``EVENT_TASKS_SIGNING_PUBLIC_KEYS`` need). No broker, no database.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from ..conf import settings
from ..signing import generate_key_pair, public_key_of, signer_for


def add_parser(sub: Any) -> None:  # Any: argparse's _SubParsersAction (a private class)
    """The ``keys`` subcommand on ``events``' subparsers."""
    keys = sub.add_parser("keys", help="an Ed25519 key pair for signed envelopes, or this service's public key")
    keys.add_argument("keys_action", choices=["generate", "public"])
    keys.add_argument("--out", help="generate: write <service>.key and <service>.pub into this directory")
    keys.add_argument("--key-service", dest="key_service", help="generate: the service (default: EVENT_TASKS_SERVICE)")


def run(action: str, write: Callable[[str], object], *, service: str | None = None, out: str | None = None) -> None:
    conf = settings()
    if action == "public":
        signer = signer_for(conf)
        if signer is None:
            raise CommandError("this service has no EVENT_TASKS_SIGNING_KEY (or _KEY_FILE): nothing to show")
        text = conf.signing_key or Path(conf.signing_key_file or "").read_text()
        write(f"{conf.service}: {{{signer.key_id!r}: {public_key_of(text)!r}}}")
        return
    name = service or conf.service
    if not name:
        raise CommandError("events keys generate: name the service (--key-service lms, or EVENT_TASKS_SERVICE)")
    private, public = generate_key_pair()
    key_id = f"{name}-{dt.datetime.now(dt.UTC):%Y-%m-%d}"
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(private + "\n")
        (folder / f"{name}.pub").write_text(public + "\n")
        write(f"wrote {path} (private: keep it secret) and {folder / (name + '.pub')}")
    else:
        write(f"EVENT_TASKS_SIGNING_KEY = {private!r}  # secret: put it in the service's secret store")
    write(f"EVENT_TASKS_SIGNING_KEY_ID = {key_id!r}")
    write(f"consumers: EVENT_TASKS_SIGNING_PUBLIC_KEYS[{name!r}] = {{{key_id!r}: {public!r}}}")
