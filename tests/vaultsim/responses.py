"""Reply values and the JSON shapes Vault wraps around them.

Owns the response envelope, the error-body forms (see api-facts.md section 0) and the
timestamp format. Knows nothing of HTTP sockets; server.py turns a Reply into bytes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

PERMISSION_DENIED = "1 error occurred:\n\t* permission denied\n\n"
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"


@dataclass
class Request:
    """One logical request after HTTP parsing and namespace resolution.

    `operation` is read/list/update/delete/patch (create is decided by the core from the
    handler's existence check); `path` is relative to `namespace` ("" or "a/b/").
    """

    method: str
    operation: str
    path: str
    data: dict
    query: dict[str, str]
    token: str = ""
    namespace: str = ""
    content_type: str = ""
    size: int = 0


@dataclass
class Reply:
    """One HTTP answer: status, JSON body (None = empty body) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def envelope(
    data: Any = None,
    *,
    status: int = 200,
    warnings: list[str] | None = None,
    auth: dict | None = None,
    mount_type: str = "kv",
    lease_duration: int = 0,
    top_level: bool = False,
) -> Reply:
    """A logical response; `top_level` also copies `data` keys to the top (sys/mounts...)."""
    body: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": None,
        "warnings": warnings,
        "auth": auth,
        "mount_type": mount_type,
    }
    if top_level and isinstance(data, dict):
        body = {**data, **body}
    return Reply(status, body)


def errors(status: int, *messages: str) -> Reply:
    """An `{"errors": [...]}` body; no messages gives the empty list Vault uses for 404."""
    return Reply(status, {"errors": list(messages)})


def no_content() -> Reply:
    """204 with an empty body: a handler that returned nothing."""
    return Reply(204, None)


def not_found() -> Reply:
    """Plain 404 `{"errors":[]}` for a missing read or an empty LIST."""
    return errors(404)


def bad_request(message: str) -> Reply:
    """A backend error response: 400 with the message unwrapped."""
    return errors(400, message)


def permission_denied() -> Reply:
    """403 for a policy denial (the multierror 1-error form)."""
    return errors(403, PERMISSION_DENIED)


def invalid_token() -> Reply:
    """403 for an unknown or revoked token (the 2-errors form)."""
    return errors(403, INVALID_TOKEN)


def unsupported_operation() -> Reply:
    """405 for an operation a path does not support."""
    return errors(405, "unsupported operation")


def no_handler(path: str) -> Reply:
    """404 when no mount serves the path."""
    return errors(404, f'no handler for route "{path}". route entry not found.')


def rfc3339(ns: int | None = None) -> str:
    """RFC 3339 UTC with up to 9 fractional digits, trailing zeros trimmed (Go RFC3339Nano)."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def parse_duration(text: Any) -> int | None:
    """Seconds of a Go-style duration ("30s", "1h30m", "768h") or plain integer seconds."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return int(text)
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text[i : i + 2] == "ms" else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        return None
    return int(total)
