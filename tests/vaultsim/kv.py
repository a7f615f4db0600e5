"""The KV secrets engine, version 1 (passthrough), and helpers shared with version 2.

Owns a v1 mount's stored keys and the behaviour of every path below the mount
(api-facts.md section 2). Knows nothing of tokens, ACLs or HTTP; the core checks
permissions first and holds the lock while calling in. Version 2 lives in kv2.py.
"""

from __future__ import annotations

from typing import Any, Iterable

from .responses import (
    Reply,
    Request,
    bad_request,
    envelope,
    no_content,
    not_found,
    parse_duration,
    unsupported_operation,
)

V1_DEFAULT_LEASE = 2764800  # 768h, the system default TTL


def list_children(keys: Iterable[str], folder: str) -> Reply:
    """Direct children of `folder` ("" or "a/b/"), sub-folders with "/", sorted; 404 if none."""
    children = set()
    for key in keys:
        if key.startswith(folder):
            rest = key[len(folder):]
            head, sep, _ = rest.partition("/")
            children.add(head + sep)
    children.discard("")
    if not children:
        return not_found()
    return envelope({"keys": sorted(children)})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, null removes a member."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class KVv1:
    """KV version 1: one JSON object per key, replaced whole on write."""

    version = 1

    def __init__(self) -> None:
        self.keys: dict[str, dict] = {}

    def exists(self, rest: str) -> bool | None:
        """Existence check deciding create vs update."""
        return rest in self.keys

    def handle(self, req: Request, rest: str) -> Reply:
        """Serve `req` for the key or folder `rest`."""
        if req.operation == "list":
            return list_children(self.keys, rest)
        if req.operation == "read":
            if rest not in self.keys:
                return not_found()
            data = self.keys[rest]
            lease = parse_duration(data.get("ttl", data.get("lease", ""))) or V1_DEFAULT_LEASE
            return envelope(data, lease_duration=lease)
        if req.operation in ("create", "update"):
            if not req.data:
                return bad_request("missing data fields")
            self.keys[rest] = req.data
            return no_content()
        if req.operation == "delete":
            self.keys.pop(rest, None)
            return no_content()
        return unsupported_operation()
