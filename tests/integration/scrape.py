"""Reading HTTP endpoints in tests: a GET with optional basic auth, and one Prometheus sample."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request


def get(url: str, auth: str | None = None) -> tuple[int, str]:
    """``(status, body)`` of a GET; status 0 when nothing listens."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels match (a value ending in ``*`` matches a prefix)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(have.get(k, "").startswith(v[:-1]) if v.endswith("*") else have.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total
