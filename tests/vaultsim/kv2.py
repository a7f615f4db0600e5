"""The KV secrets engine, version 2 (versioned keys).

Owns a v2 mount's keys, versions, metadata and config, and the behaviour of every path
below the mount (api-facts.md section 1). Knows nothing of tokens, ACLs or HTTP; the
core checks permissions first and holds the lock while calling in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .kv import list_children, merge_patch
from .responses import (
    Reply,
    Request,
    bad_request,
    envelope,
    no_content,
    not_found,
    parse_duration,
    rfc3339,
    unsupported_operation,
)

DEFAULT_MAX_VERSIONS = 10
V2_ROOTS = ("data", "metadata", "delete", "undelete", "destroy", "subkeys")
HINTS = {"read": "get", "update": "put", "create": "put", "patch": "patch", "list": "list", "delete": "delete"}


@dataclass
class Version:
    """One version of a v2 key; `deletion_ns` None means no deletion time set."""

    data: Any
    created_time: str
    deletion_ns: int | None = None
    destroyed: bool = False

    @property
    def deletion_time(self) -> str:
        return "" if self.deletion_ns is None else rfc3339(self.deletion_ns)

    def gone(self, now_ns: int) -> bool:
        """Soft-deleted (deletion time reached) or destroyed."""
        return self.destroyed or (self.deletion_ns is not None and self.deletion_ns <= now_ns)


@dataclass
class Entry:
    """The metadata of one v2 key plus its versions."""

    created_time: str
    updated_time: str
    versions: dict[int, Version] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"
    custom_metadata: dict | None = None

    def version_meta(self, number: int) -> dict:
        ver = self.versions[number]
        return {
            "created_time": ver.created_time,
            "custom_metadata": self.custom_metadata,
            "deletion_time": ver.deletion_time,
            "destroyed": ver.destroyed,
            "version": number,
        }


class KVv2:
    """KV version 2: versioned keys with metadata, CAS, soft delete and destroy."""

    version = 2

    def __init__(self) -> None:
        self.keys: dict[str, Entry] = {}
        self.config = {"max_versions": 0, "cas_required": False, "delete_version_after": "0s"}

    def exists(self, rest: str) -> bool | None:
        """Existence check: data/ and metadata/ paths exist when the key has metadata."""
        kind, _, key = rest.partition("/")
        if kind in ("data", "metadata"):
            return key in self.keys
        return None

    def handle(self, req: Request, rest: str) -> Reply:
        """Route `rest` (path below the mount) to the v2 handler for it."""
        kind, slash, key = rest.partition("/")
        op = req.operation
        if rest == "config":
            return self._config(req)
        if kind not in V2_ROOTS or (slash and key.endswith("/") and op != "list"):
            return self._invalid(op)
        if not slash and op != "list":
            return envelope(
                None, status=404,
                warnings=["Non-listing operations on the root of a K/V v2 mount are not supported."],
            )
        if op == "list":
            if kind != "metadata":
                return unsupported_operation()
            return list_children(self._listed_keys(req), key)
        handler = getattr(self, f"_{kind}_{'write' if op == 'create' else op}", None)
        if handler is None:
            return unsupported_operation()
        return handler(req, key)

    def _listed_keys(self, req: Request) -> Iterable[str]:
        if str(req.data.get("exclude_deleted", "")).lower() not in ("1", "t", "true"):
            return self.keys
        now = time.time_ns()
        return [k for k, e in self.keys.items()
                if not (e.current_version in e.versions and e.versions[e.current_version].deletion_ns is not None
                        and e.versions[e.current_version].deletion_ns <= now)]

    @staticmethod
    def _invalid(op: str) -> Reply:
        hint = HINTS.get(op, op)
        return envelope(None, status=404, warnings=[
            "Invalid path for a versioned K/V secrets engine. See the API docs for the "
            "appropriate API endpoints to use. If using the Vault CLI, use "
            f"'vault kv {hint}' for this operation."
        ])

    # --- config -----------------------------------------------------------------------
    def _config(self, req: Request) -> Reply:
        if req.operation == "read":
            return envelope(dict(self.config))
        if req.operation not in ("create", "update"):
            return unsupported_operation()
        problem = _apply_settings(self.config, req.data)
        return bad_request(problem) if problem else no_content()

    # --- data ---------------------------------------------------------------------------
    def _data_read(self, req: Request, key: str) -> Reply:
        try:
            number = int(req.data.get("version") or 0)
        except (TypeError, ValueError):
            return bad_request("error parsing version parameter")
        entry = self.keys.get(key)
        if entry is None or entry.current_version == 0:
            return not_found()
        number = number or entry.current_version
        ver = entry.versions.get(number)
        if ver is None:
            return not_found()
        meta = entry.version_meta(number)
        if ver.gone(time.time_ns()):
            return envelope({"data": None, "metadata": meta}, status=404)
        return envelope({"data": ver.data, "metadata": meta})

    def _data_update(self, req: Request, key: str) -> Reply:
        if not key:
            return bad_request("missing path")
        data = req.data.get("data")
        if data is None:
            return bad_request("no data provided")
        problem = self._check_cas(req, self.keys.get(key))
        if problem:
            return bad_request(problem)
        return self._new_version(key, data)

    _data_write = _data_update

    def _data_patch(self, req: Request, key: str) -> Reply:
        entry = self.keys.get(key)
        now = time.time_ns()
        if entry is None or entry.current_version not in entry.versions:
            return Reply(404, None)
        current = entry.versions[entry.current_version]
        if current.gone(now):
            return Reply(404, None)
        patch = req.data.get("data")
        if patch is None:
            return bad_request("no data provided")
        problem = self._check_cas(req, entry)
        if problem:
            return bad_request(problem)
        return self._new_version(key, merge_patch(current.data, patch))

    def _data_delete(self, req: Request, key: str) -> Reply:
        entry = self.keys.get(key)
        now = time.time_ns()
        ver = entry.versions.get(entry.current_version) if entry else None
        if ver is not None and not ver.gone(now):
            ver.deletion_ns = now
        return no_content()

    def _check_cas(self, req: Request, entry: Entry | None) -> str:
        options = req.data.get("options") or {}
        current = entry.current_version if entry else 0
        required = self.config["cas_required"] or bool(entry and entry.cas_required)
        if not isinstance(options, dict) or "cas" not in options:
            return "check-and-set parameter required for this call" if required else ""
        cas = options["cas"]
        try:
            if isinstance(cas, bool) or (isinstance(cas, float) and not cas.is_integer()):
                raise ValueError
            cas = int(cas)
        except (TypeError, ValueError):
            return "error parsing check-and-set parameter"
        if cas != current:
            return "check-and-set parameter did not match the current version"
        return ""

    def _new_version(self, key: str, data: Any) -> Reply:
        now = time.time_ns()
        stamp = rfc3339(now)
        entry = self.keys.get(key)
        if entry is None:
            entry = self.keys[key] = Entry(created_time=stamp, updated_time=stamp)
        entry.current_version += 1
        after = parse_duration(entry.delete_version_after) or parse_duration(
            self.config["delete_version_after"]) or 0
        deletion = now + after * 1_000_000_000 if after > 0 else None
        entry.versions[entry.current_version] = Version(data, stamp, deletion)
        entry.updated_time = stamp
        self._prune(entry)
        return envelope(entry.version_meta(entry.current_version))

    def _prune(self, entry: Entry) -> None:
        limit = entry.max_versions or self.config["max_versions"] or DEFAULT_MAX_VERSIONS
        last_doomed = entry.current_version - limit
        if last_doomed <= 0:
            return
        for number in range(entry.oldest_version, last_doomed + 1):
            entry.versions.pop(number, None)
        entry.oldest_version = max(entry.oldest_version, last_doomed + 1)

    # --- delete / undelete / destroy ---------------------------------------------------
    def _versions(self, req: Request, key: str) -> tuple[Entry | None, list[int] | Reply]:
        raw = req.data.get("versions")
        if isinstance(raw, str):
            raw = [v for v in raw.split(",") if v.strip()]
        if not raw or not isinstance(raw, list):
            return None, bad_request("No version number provided")
        try:
            numbers = [int(v) for v in raw]
        except (TypeError, ValueError):
            return None, bad_request("error parsing versions parameter")
        return self.keys.get(key), numbers

    def _delete_update(self, req: Request, key: str) -> Reply:
        entry, numbers = self._versions(req, key)
        if isinstance(numbers, Reply):
            return numbers
        now = time.time_ns()
        for ver in _pick(entry, numbers):
            if not ver.gone(now):
                ver.deletion_ns = now
        return no_content()

    def _undelete_update(self, req: Request, key: str) -> Reply:
        entry, numbers = self._versions(req, key)
        if isinstance(numbers, Reply):
            return numbers
        for ver in _pick(entry, numbers):
            if not ver.destroyed:
                ver.deletion_ns = None
        return no_content()

    def _destroy_update(self, req: Request, key: str) -> Reply:
        entry, numbers = self._versions(req, key)
        if isinstance(numbers, Reply):
            return numbers
        for ver in _pick(entry, numbers):
            ver.destroyed, ver.data = True, None
        return no_content()

    # --- metadata -----------------------------------------------------------------------
    def _metadata_read(self, req: Request, key: str) -> Reply:
        entry = self.keys.get(key)
        if entry is None:
            return not_found()
        versions = {
            str(n): {"created_time": v.created_time, "deletion_time": v.deletion_time,
                     "destroyed": v.destroyed}
            for n, v in sorted(entry.versions.items())
        }
        return envelope({
            "cas_required": entry.cas_required,
            "created_time": entry.created_time,
            "current_version": entry.current_version,
            "custom_metadata": entry.custom_metadata,
            "delete_version_after": entry.delete_version_after,
            "max_versions": entry.max_versions,
            "oldest_version": entry.oldest_version,
            "updated_time": entry.updated_time,
            "versions": versions,
        })

    def _metadata_update(self, req: Request, key: str, patch: bool = False) -> Reply:
        if not key:
            return bad_request("missing path")
        entry = self.keys.get(key)
        if entry is None and patch:
            return Reply(404, None)
        settings = {
            "max_versions": entry.max_versions if entry else 0,
            "cas_required": entry.cas_required if entry else False,
            "delete_version_after": entry.delete_version_after if entry else "0s",
        }
        problem = _apply_settings(settings, req.data)
        custom = entry.custom_metadata if entry else None
        if not problem and "custom_metadata" in req.data:
            incoming = req.data["custom_metadata"]
            custom = merge_patch(custom or {}, incoming or {}) if patch else incoming
            problem = _check_custom_metadata(custom)
        if problem:
            return bad_request(problem)
        stamp = rfc3339()
        if entry is None:
            entry = self.keys[key] = Entry(created_time=stamp, updated_time=stamp)
        entry.max_versions = settings["max_versions"]
        entry.cas_required = settings["cas_required"]
        entry.delete_version_after = settings["delete_version_after"]
        entry.custom_metadata = {str(k): _as_text(v) for k, v in custom.items()} if custom else (
            {} if custom == {} else None)
        entry.updated_time = stamp
        self._prune(entry)
        return no_content()

    _metadata_write = _metadata_update

    def _metadata_patch(self, req: Request, key: str) -> Reply:
        return self._metadata_update(req, key, patch=True)

    def _metadata_delete(self, req: Request, key: str) -> Reply:
        self.keys.pop(key, None)
        return no_content()

    # --- subkeys -------------------------------------------------------------------------
    def _subkeys_read(self, req: Request, key: str) -> Reply:
        reply = self._data_read(req, key)
        if reply.status != 200:
            return reply
        try:
            depth = int(req.data.get("depth") or 0)
        except (TypeError, ValueError):
            return bad_request("error parsing depth parameter")
        inner = reply.body["data"]
        return envelope({"subkeys": _subkeys(inner["data"], depth, 1), "metadata": inner["metadata"]})


def _subkeys(value: Any, depth: int, level: int) -> Any:
    if not isinstance(value, dict):
        return None
    if depth and level >= depth:
        return {k: None for k in value}
    return {k: _subkeys(v, depth, level + 1) for k, v in value.items()}


def _pick(entry: Entry | None, numbers: list[int]) -> list[Version]:
    if entry is None:
        return []
    return [entry.versions[n] for n in numbers if n in entry.versions]


def _apply_settings(settings: dict, data: dict) -> str:
    """Copy max_versions / cas_required / delete_version_after from `data`; error text or ""."""
    if data.get("max_versions") is not None:
        try:
            settings["max_versions"] = int(data["max_versions"])
        except (TypeError, ValueError):
            return "error parsing max_versions parameter"
    if data.get("cas_required") is not None:
        value = data["cas_required"]
        settings["cas_required"] = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "t")
    if data.get("delete_version_after") is not None:
        seconds = parse_duration(data["delete_version_after"])
        if seconds is None or seconds < 0:
            return "error parsing delete_version_after parameter"
        settings["delete_version_after"] = _format_duration(seconds)
    return ""


def _format_duration(seconds: int) -> str:
    """Go's Duration.String() for whole seconds: 0s, 45s, 1m30s, 2h0m0s."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _as_text(value: Any) -> str:
    """Non-string custom_metadata values become their JSON text (true, 3), as Vault coerces them."""
    return value if isinstance(value, str) else json.dumps(value)


def _check_custom_metadata(custom: Any) -> str:
    """Vault's custom_metadata limits; error text or ""."""
    if custom is None:
        return ""
    prefix = "custom_metadata validation failed: "
    if not isinstance(custom, dict):
        return prefix + "custom_metadata must be a map of strings"
    if len(custom) > 64:
        return prefix + f"payload must contain at most 64 keys, provided {len(custom)}"
    for key, value in custom.items():
        value = "" if value is None else _as_text(value)
        if not 1 <= len(key.encode()) <= 128:
            return prefix + f"length of key {key!r} is {len(key.encode())} but must be 0 < len(key) <= 128"
        if not 1 <= len(value.encode()) <= 512:
            return prefix + f"length of value for key {key!r} is {len(value.encode())} but must be 0 < len(value) <= 512"
        if not (key.isprintable() and value.isprintable()):
            return prefix + f"key {key!r} or its value contains unprintable characters"
    return ""
