"""HashiCorp Vault KV (version 1 or 2) as a secretshift manager, through hvac.

Layout (DESIGN.md, contract): text secrets live at `<engine>/<base_path>/SECRET_TEXT/<name>`,
file secrets at `<engine>/<base_path>/CONFIG_FILE/<name>`, each holding `{"value": ...}`;
a file's bytes are base64-encoded with `"encoding": "base64"` beside them. KV v2 API paths
put `data/` (or `metadata/` for LIST) after the mount; locations shown to humans never do.

Every network call goes through `VaultBackend._call`, the one place where hvac and
requests exceptions become `engine.errors` types (so a retry wrapper can go around it).
Messages name the manager and the logical path, never a value and never the token.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
import threading
import unicodedata
import urllib.parse
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import hvac
import hvac.exceptions as hv
import requests
import urllib3

from engine.backends import vault_keys
from engine.backends.base import Backend, checked_url, common_name_problem
from engine.backends.metadata import SecretMetadata, from_custom_metadata
from engine.backends.naming import IDENTITY, NameMap
from engine.backends.retry import AdaptiveLimit, RetryPolicy, with_retries
from engine.backends.transport import ConnectFailed, PooledSession
from engine.backends.vault_keys import VaultPaths, mapped_secrets
from engine.backends.versions import History, vault_history
from engine.errors import (
    BackendError,
    ManagerUnreachable,
    PermissionDenied,
    RateLimited,
    ReadOnlyManager,
    TransientError,
    UnreadableValue,
    ValueTooLarge,
)
from engine.model import Kind, SecretId, SecretValue, Unavailable

FOLDERS = {Kind.TEXT: "SECRET_TEXT", Kind.FILE: "CONFIG_FILE"}
MIB = 1024 * 1024
DEFAULT_MAX_VALUE_BYTES = MIB  # integrated storage's default max_entry_size
# Room for what Vault stores beside the JSON (version metadata, seal encryption header).
ENTRY_OVERHEAD = 256
CAPABILITY_BATCH = 200
_MISSING = object()  # a plain 404: the secret or folder is not there


@dataclass(frozen=True)
class MountLayout:
    """Where the KV mount is and which API it speaks; `prefix` is our folder inside it."""

    mount: str
    prefix: str
    version: int
    names: NameMap = IDENTITY

    def inner(self, secret: SecretId) -> str:
        """The secret's path inside the mount, as hvac's `path=` arguments take it."""
        return _join(self.prefix, FOLDERS[secret.kind], self.names.physical(secret))

    def data_path(self, secret: SecretId) -> str:
        """The API path ACLs are evaluated on (no `/v1/`, not percent-encoded)."""
        middle = "data" if self.version == 2 else ""
        return _join(self.mount, middle, self.inner(secret))


class VaultBackend(Backend):
    """One Vault KV mount (plus base_path) reached through a single hvac client.

    Safe for concurrent reads: hvac shares one `requests.Session` whose connection pool is
    sized to `parallelism`; the KV version is detected once, under a lock.
    """

    type_name: ClassVar[str] = "vault"

    def __init__(self, manager_id: str, *, address: str, token: SecretValue | str,
                 secret_engine: str = "secret", base_path: str = "", namespace: str | None = None,
                 kv_version: str | int = "auto", ca_cert: Path | str | None = None,
                 read_only: bool = False, file_encoding: str = "base64",
                 max_value_bytes: int | None = None, timeout: float = 30.0, parallelism: int = 16,
                 retries: int = RetryPolicy.attempts - 1, mapped: Iterable[dict] = ()):
        super().__init__(manager_id, read_only, parallelism)
        self.address = checked_url(manager_id, "address", address)
        self.secret_engine = _clean_path(manager_id, "secret_engine", secret_engine)
        self.base_path = _clean_path(manager_id, "base_path", base_path)
        if not self.secret_engine:
            raise BackendError(manager_id, "secret_engine (the KV mount) must not be empty")
        self.kv_version = _checked_version(manager_id, kv_version)
        if file_encoding not in ("base64", "utf-8"):
            raise BackendError(manager_id, f"file_encoding must be base64 or utf-8, not {file_encoding!r}")
        self.file_encoding = file_encoding
        self.max_value_bytes = max_value_bytes or DEFAULT_MAX_VALUE_BYTES
        self.retry = RetryPolicy(attempts=1 + max(0, int(retries)))
        self.limit = AdaptiveLimit(self.parallelism)  # fewer requests at once after a 429
        self.namespace = (namespace or "").strip("/")
        self._client = _make_client(manager_id, self.address, token, namespace, ca_cert,
                                    timeout, parallelism)
        self._layout: MountLayout | None = None
        self._layout_lock = threading.Lock()
        self.paths = VaultPaths(self, mapped_secrets(mapped))  # secrets outside the Harness layout
        # KV v2 answers a data read with the version's custom_metadata: kept here until
        # read_metadata asks for it, which then costs no request (see _seen_metadata)
        self._custom_seen: dict[SecretId, dict | None] = {}

    @classmethod
    def from_settings(cls, manager_id: str, settings: Mapping[str, Any]) -> VaultBackend:
        """Build from validated settings (see the config reference for each key)."""
        known = ("address", "token", "secret_engine", "base_path", "namespace", "kv_version",
                 "ca_cert", "read_only", "file_encoding", "max_value_bytes", "timeout",
                 "parallelism", "retries", "mapped")
        backend = cls(manager_id, **{k: settings[k] for k in known if settings.get(k) is not None})
        backend.names = NameMap.from_settings(settings)
        return backend

    # ----------------------------------------------------------------- Backend interface

    def storage_keys(self) -> set[tuple]:
        """One key per address the Vault host resolves to (so `localhost` and `127.0.0.1`
        meet), with the namespace and the folder `<secret_engine>/<base_path>`."""
        parts = urllib.parse.urlsplit(self.address)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        folder = _join(self.secret_engine, self.base_path)
        return {("vault", host, port, self.namespace or "", folder) for host in _addresses(parts.hostname, port)}

    def location(self, secret: SecretId) -> str:
        """The logical path `<engine>/<base_path>/<FOLDER>/<name>` (never `data/`);
        a secret mapped with `vault_path` is at `<engine>/<base_path>/<path>[#<key>]`."""
        if secret in self.paths:
            return self.paths.location(secret)
        return _join(self.secret_engine, self.base_path, FOLDERS[secret.kind], self.names.physical(secret))

    def list_ids(self) -> list[SecretId]:
        """Names under SECRET_TEXT and CONFIG_FILE, sub-folders included (`team/db` is
        the secret at `SECRET_TEXT/team/db`); one LIST per folder.

        On KV v2 the LIST asks Vault to leave out keys whose current version is deleted
        (`exclude_deleted`, Vault 2025+). Older Vaults ignore the flag and still list such
        keys; `read` returns None for them, so callers must treat None as absent.
        """
        ids = [self.names.identity(kind, key) for kind, folder in FOLDERS.items() for key in self.list_tree(folder)]
        return sorted({i for i in ids if i is not None} - set(self.paths.mapped_ids()) | set(self.paths.list_ids()))

    def list_tree(self, folder: str = "", exclude_deleted: bool = True) -> list[str]:
        """Every key under `folder` (relative to base_path) as a path relative to it,
        sorted. Sub-folders are LISTed level by level, up to `parallelism` at once; a
        missing folder is empty. `exclude_deleted` as in `list_ids` (KV v2 only)."""
        layout = self.layout()
        middle = "metadata" if layout.version == 2 else ""
        params = {"exclude_deleted": "true"} if layout.version == 2 and exclude_deleted else None

        def keys(sub: str) -> list[str]:
            where = _join(self.secret_engine, self.base_path, folder, sub)
            url = "/v1/" + _quote(_join(layout.mount, middle, layout.prefix, folder, sub))
            reply = self._call("list", where, self._client.adapter.list, url, params=params)
            listed = [] if reply is _MISSING else ((reply.get("data") or {}).get("keys") or [])
            return [sub + k for k in listed if isinstance(k, str) and k.strip("/")]

        found, level = [], keys("")
        with ThreadPoolExecutor(max_workers=max(1, self.parallelism)) as pool:
            while level:
                found += [k for k in level if not k.endswith("/")]
                folders = [k for k in level if k.endswith("/")]
                level = [k for listed in pool.map(keys, folders) for k in listed]
        return sorted(found)

    def read(self, secret: SecretId) -> SecretValue | None:
        """The current value; None when missing or (KV v2) its current version is deleted."""
        if secret in self.paths:
            return self.paths.read(secret)
        layout, where = self.layout(), self.location(secret)
        if layout.version == 2:
            reply = self._call("read", where, self._client.secrets.kv.v2.read_secret_version,
                               path=layout.inner(secret), mount_point=layout.mount,
                               raise_on_deleted_version=True)  # deleted -> 404 -> None
            if reply is _MISSING:
                return None
            self._saw_metadata(secret, reply)
            return self._decode(secret, (reply.get("data") or {}).get("data"))
        reply = self._call("read", where, self._client.secrets.kv.v1.read_secret,
                           path=layout.inner(secret), mount_point=layout.mount)
        return None if reply is _MISSING else self._decode(secret, reply.get("data"))

    def list_unavailable(self) -> list[Unavailable]:
        """KV v2: keys whose latest version is deleted, which `list_ids` leaves out (a LIST
        without `exclude_deleted` still shows them). Their state is `deleted`, without the
        date: one more request per key would be needed for it. A Vault that ignores
        `exclude_deleted` lists them in `list_ids`, and `read_current` tells their state."""
        layout = self.layout()
        if layout.version != 2:
            return []
        current = set(self.list_ids())
        found = []
        for kind, folder in FOLDERS.items():
            ids = [self.names.identity(kind, k) for k in self.list_tree(folder, exclude_deleted=False)]
            found += [Unavailable(i, "deleted", self.location(i)) for i in ids if i and i not in current]
        return sorted(found, key=lambda u: u.id)

    def read_current(self, secret: SecretId) -> SecretValue | Unavailable | None:
        """`read`, except that a KV v2 secret whose latest version is soft-deleted or
        destroyed comes back as `Unavailable` (with the version and deletion time, from
        its metadata; a token that may not read metadata gets None, as from `read`)."""
        value = self.read(secret)
        layout = self.layout()
        if value is not None or layout.version != 2:
            return value
        where = self.location(secret)
        try:
            metadata = self._call("read the metadata of", where, self._client.secrets.kv.v2.read_secret_metadata,
                                  path=layout.inner(secret), mount_point=layout.mount)
        except PermissionDenied:  # a token that may read data/ but not metadata/: absent, as `read` says
            return None
        if metadata is _MISSING:
            return None
        current = metadata["data"].get("current_version")
        version = (metadata["data"].get("versions") or {}).get(str(current)) or {}
        if version.get("destroyed"):
            return Unavailable(secret, "destroyed", where, version.get("deletion_time") or None, current)
        if version.get("deletion_time"):
            return Unavailable(secret, "deleted", where, version["deletion_time"], current)
        return None

    def write(self, secret: SecretId, value: SecretValue) -> None:
        """Create the secret or add a version (KV v2); KV v1 replaces it in place."""
        self._refuse_if_read_only(secret, "write")
        if secret in self.paths:
            return self.paths.write(secret, value)
        layout, where = self.layout(), self.location(secret)
        data = self._encode(secret, value)
        if layout.version == 2:
            self._write_v2(secret, layout, data)
        else:  # POST: hvac would otherwise read first, which write-only tokens cannot
            reply = self._call("write", where, self._client.secrets.kv.v1.create_or_update_secret,
                               path=layout.inner(secret), secret=data, method="POST",
                               mount_point=layout.mount)
            self._found(reply, "write", where)

    def read_versioned(self, secret: SecretId) -> tuple[SecretValue | None, object | None]:
        """KV v2: the value and its version number (0: no version; a soft-deleted current
        version gives None and its number), for `write_if_version`. KV v1, and secrets kept
        at a `vault_path` (several keys to one secret): no version."""
        layout, where = self.layout(), self.location(secret)
        if layout.version != 2 or secret in self.paths:
            return self.read(secret), None
        reply = self._call("read", where, self._client.secrets.kv.v2.read_secret_version,
                           path=layout.inner(secret), mount_point=layout.mount,
                           raise_on_deleted_version=False)  # deleted -> the 404 envelope, with its version
        if reply is _MISSING:
            return None, 0
        data = reply.get("data") or {}
        version = (data.get("metadata") or {}).get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            version = None
        if data.get("data") is None:
            return None, version
        self._saw_metadata(secret, reply)
        return self._decode(secret, data.get("data")), version

    def write_if_version(self, secret: SecretId, value: SecretValue, version: object) -> bool:
        """KV v2 check-and-set: write only if the current version is still `version`."""
        self._refuse_if_read_only(secret, "write")
        layout = self.layout()
        try:
            self._write_v2(secret, layout, self._encode(secret, value), cas=version)
        except BackendError as err:
            if "check-and-set parameter did not match" in err.detail:
                return False
            raise
        return True

    def _write_v2(self, secret: SecretId, layout: MountLayout, data: dict, cas: object = None) -> None:
        where = self.location(secret)
        reply = self._call("write", where, self._client.secrets.kv.v2.create_or_update_secret,
                           path=layout.inner(secret), secret=data, cas=cas, mount_point=layout.mount)
        self._found(reply, "write", where)
        if not isinstance(reply, dict):  # 204: Vault took a v2 write as a v1 key
            raise BackendError(self.manager_id, "Vault answered a KV v2 write like a KV v1 "
                               "mount; set kv_version: 1 (or auto) for this manager", where)

    def delete(self, secret: SecretId) -> None:
        """KV v2: soft-delete the current version (undelete recovers it).

        KV v1 has no versions: the DELETE is permanent there, not recoverable.
        """
        self._refuse_if_read_only(secret, "delete")
        if secret in self.paths:
            return self.paths.delete(secret)
        layout, where = self.layout(), self.location(secret)
        if layout.version == 2:
            self._call("delete", where, self._client.secrets.kv.v2.delete_latest_version_of_secret,
                       path=layout.inner(secret), mount_point=layout.mount)
        else:
            self._call("delete", where, self._client.secrets.kv.v1.delete_secret,
                       path=layout.inner(secret), mount_point=layout.mount)

    def restore(self, secret: SecretId) -> bool:
        """KV v2: undelete the current version if it is soft-deleted (so the secret reads
        again as the same version, history intact). False on KV v1, or when the current
        version is not soft-deleted (destroyed, or never deleted)."""
        self._refuse_if_read_only(secret, "restore")
        if secret in self.paths:
            return self.paths.restore(secret)
        layout, where = self.layout(), self.location(secret)
        if layout.version != 2:
            return False
        metadata = self._call("read the metadata of", where, self._client.secrets.kv.v2.read_secret_metadata,
                              path=layout.inner(secret), mount_point=layout.mount)
        if metadata is _MISSING:
            return False
        current = metadata["data"].get("current_version")
        version = (metadata["data"].get("versions") or {}).get(str(current)) or {}
        if not version.get("deletion_time") or version.get("destroyed"):
            return False
        self._call("undelete", where, self._client.secrets.kv.v2.undelete_secret_versions,
                   path=layout.inner(secret), versions=[current], mount_point=layout.mount)
        return True

    def read_history(self, secret: SecretId) -> History:
        """The readable KV v2 versions before the current one, oldest first."""
        return vault_history(self, secret)

    def read_metadata(self, secret: SecretId) -> SecretMetadata:
        """KV v2 custom_metadata as description and tags (KV v1 has none). Taken from the
        last data read of the secret when there was one: a copied secret's metadata then
        costs no request of its own."""
        custom = self._custom_seen.pop(secret, _MISSING)
        if custom is _MISSING:
            return vault_keys.read_metadata(self, secret)
        found = from_custom_metadata(custom)
        return SecretMetadata(found.description, found.tags)

    def _saw_metadata(self, secret: SecretId, reply: dict) -> None:
        """Keep the custom_metadata a KV v2 data read answered with (Vault before 1.9
        sends none: then nothing is kept and read_metadata asks for it)."""
        metadata = (reply.get("data") or {}).get("metadata")
        if isinstance(metadata, dict) and "custom_metadata" in metadata:
            custom = metadata["custom_metadata"]
            self._custom_seen[secret] = custom if isinstance(custom, dict) else None

    def write_metadata(self, secret: SecretId, metadata: SecretMetadata) -> None:
        """Merge description and tags into the KV v2 custom_metadata (nothing on KV v1)."""
        self._refuse_if_read_only(secret, "write the metadata of")
        self._custom_seen.pop(secret, None)
        vault_keys.write_metadata(self, secret, metadata)

    def check_access(self, writes: Iterable[SecretId], deletes: Iterable[SecretId]) -> None:
        """Ask Vault (sys/capabilities-self, batched) whether every write/delete is allowed.

        Writes need create and update (or root); deletes need delete. Nothing is written.
        """
        refused = self.access_problems(writes, deletes)
        if refused:
            secret, reason = refused[0]
            raise ReadOnlyManager(self.manager_id, reason, self.location(secret))

    def access_problems(
        self, writes: Iterable[SecretId], deletes: Iterable[SecretId]
    ) -> list[tuple[SecretId, str]]:
        """Every planned write/delete the token may not do, with the missing capability."""
        planned = [(s, "write") for s in writes] + [(s, "delete") for s in deletes]
        if not planned:
            return []
        if self.read_only:
            self._refuse_if_read_only(planned[0][0], planned[0][1])
        layout = self.layout()
        def data_path(s: SecretId) -> str:
            return self.paths.data_path(s) if s in self.paths else layout.data_path(s)

        granted = self._capabilities(list(dict.fromkeys(data_path(s) for s, _ in planned)))
        refused = []
        for secret, operation in planned:
            path = data_path(secret)
            missing = _missing_capability(granted.get(path, ["deny"]), operation)
            if missing:
                refused.append((secret, f"the token may not {operation} {secret}: "
                                        f"it lacks the {missing!r} capability on {path}"))
        return refused

    def ping(self) -> None:
        """The token works (lookup-self), the KV version is known and both folders list."""
        reply = self._call("look up the token", self.address, self._client.auth.token.lookup_self)
        self._found(reply, "look up the token", self.address)
        self.list_ids()

    def name_problem(self, secret: SecretId) -> str | None:
        """Common rules, plus characters Vault refuses in a URL path (not Go-printable)."""
        problem = common_name_problem(secret.name) or self.names.round_trip_problem(secret, self.manager_id)
        if problem:
            return problem
        physical = self.names.physical(secret)
        if physical != secret.name and common_name_problem(physical):
            return f"its physical name {physical!r} is not usable: {common_name_problem(physical)}"
        for char in physical:
            if char != " " and unicodedata.category(char)[0] not in "LMNPS":
                return (f"Vault does not accept the character U+{ord(char):04X} in a path; map it "
                        f"with name_map on the manager, or give the secret rename: "
                        f"{{{self.manager_id}: NEW-NAME}}")
        return None

    def value_problem(self, secret: SecretId, value: SecretValue) -> str | None:
        """A secret kept at a vault_path: what its write would refuse (a whole secret's
        JSON must be a canonical object, to read back byte for byte)."""
        return self.paths.value_problem(secret, value) if secret in self.paths else None

    def size_problem(self, secret: SecretId, size: int) -> str | None:
        """Whether the stored entry (JSON, base64 for files) exceeds max_value_bytes."""
        entry = _entry_size(secret.kind, size)
        if entry <= self.max_value_bytes:
            return None
        limit = f"over this Vault's {_size(self.max_value_bytes, exact=True)} entry limit (max_value_bytes)"
        if secret.kind is Kind.FILE:
            return f"a {_size(size)} file is {_size(entry)} once base64-encoded, {limit}"
        return f"a {_size(size)} text secret is {limit}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.adapter.close()

    def after_fork(self, processes: int) -> None:
        super().after_fork(processes)
        self.limit = AdaptiveLimit(self.parallelism)
        self._client.session.after_fork()

    # ----------------------------------------------------------------- mount detection

    def layout(self) -> MountLayout:
        """The mount, its prefix and its KV version; detected on first use, then cached."""
        if self._layout is None:
            with self._layout_lock:
                if self._layout is None:
                    self._layout = self._detect_layout()
        return self._layout

    def _detect_layout(self) -> MountLayout:
        logical = _join(self.secret_engine, self.base_path)
        if self.kv_version != "auto":
            return MountLayout(self.secret_engine, self.base_path, self.kv_version, self.names)
        mount = self._mount_from_ui(logical)
        if mount is None:
            mount = self._mount_from_sys_mounts(logical)
        path, info = mount
        if info.get("type") not in ("kv", "generic"):
            raise BackendError(self.manager_id, f"the mount {path!r} is a {info.get('type')!r} "
                               "secrets engine, not KV", self.secret_engine)
        version = 2 if str((info.get("options") or {}).get("version") or "1") == "2" else 1
        prefix = logical[len(path):].strip("/")
        return MountLayout(path.strip("/"), prefix, version, self.names)

    def _mount_from_ui(self, logical: str) -> tuple[str, dict] | None:
        """What the Vault CLI asks; 404 (very old Vault) means KV v1, 403 -> try sys/mounts."""
        url = "/v1/sys/internal/ui/mounts/" + _quote(logical)
        try:
            reply = self._call("detect the KV version", logical, self._client.adapter.get, url)
        except PermissionDenied as err:
            if "invalid token" in err.detail:
                raise
            return None
        if reply is _MISSING:
            return self.secret_engine + "/", {"type": "kv", "options": {"version": "1"}}
        info = reply.get("data") or {}
        path = info.get("path") or ""
        if not _is_prefix(path, logical):
            return None
        return path, info

    def _mount_from_sys_mounts(self, logical: str) -> tuple[str, dict]:
        try:
            reply = self._found(self._call("detect the KV version", logical,
                                           self._client.sys.list_mounted_secrets_engines),
                                "detect the KV version", logical)
        except PermissionDenied as err:
            if "invalid token" in err.detail:
                raise
            raise PermissionDenied(self.manager_id, "cannot detect the KV version: the token may "
                                   "not read sys/internal/ui/mounts nor sys/mounts; set kv_version "
                                   "to 1 or 2", logical) from err
        mounts = reply.get("data") if isinstance(reply.get("data"), dict) else reply
        found = [p for p, v in mounts.items() if isinstance(v, dict) and _is_prefix(p, logical)]
        if not found:
            raise BackendError(self.manager_id, "no secrets engine is mounted there", logical)
        path = max(found, key=len)
        return path, mounts[path]

    def _capabilities(self, paths: list[str]) -> dict[str, list[str]]:
        """The token's capabilities on each path: batches of paths a request, the batches
        sent concurrently (a 10,000-secret plan is 50 of them)."""
        where = _join(self.secret_engine, self.base_path)

        def ask(chunk: list[str]) -> dict[str, list[str]]:
            reply = self._found(self._call("check capabilities", where,
                                           self._client.sys.get_capabilities, paths=chunk),
                                "check capabilities", where)
            answer = reply.get("data") if isinstance(reply.get("data"), dict) else reply
            return {p: list(answer.get(p) or ["deny"]) for p in chunk}

        chunks = [paths[start:start + CAPABILITY_BATCH] for start in range(0, len(paths), CAPABILITY_BATCH)]
        if len(chunks) <= 1:
            return ask(chunks[0]) if chunks else {}
        granted: dict[str, list[str]] = {}
        with ThreadPoolExecutor(max_workers=min(len(chunks), max(1, self.parallelism))) as pool:
            for answer in pool.map(ask, chunks):
                granted.update(answer)
        return granted

    # ----------------------------------------------------------------- values

    def _encode(self, secret: SecretId, value: SecretValue) -> dict[str, str]:
        if secret.kind is Kind.FILE:
            return {"value": base64.b64encode(value.data).decode("ascii"), "encoding": "base64"}
        try:
            return {"value": value.text()}
        except UnicodeDecodeError:
            raise BackendError(self.manager_id, "a text secret must be UTF-8",
                               self.location(secret)) from None

    def _decode(self, secret: SecretId, data: Any) -> SecretValue:
        where = self.location(secret)
        value = data.get("value") if isinstance(data, dict) else None
        if not isinstance(value, str):
            raise UnreadableValue(self.manager_id, 'the secret has no string "value" field, so it is '
                               "not in the layout secretshift reads", where)
        extra = sorted(set(data) - ({"value", "encoding"} if secret.kind is Kind.FILE else {"value"}))
        if extra:  # moving only "value" would silently drop these fields
            raise UnreadableValue(self.manager_id, f"the secret holds fields besides \"value\" "
                               f"({', '.join(map(repr, extra))}); secretshift moves single-value "
                               "secrets only (vault_path and vault_key entries address the fields)", where)
        if secret.kind is Kind.TEXT:
            return SecretValue.from_text(value)
        encoding = data.get("encoding", self.file_encoding)
        if encoding == "utf-8":
            return SecretValue.from_text(value)
        if encoding != "base64":
            raise UnreadableValue(self.manager_id, f"unknown file encoding {encoding!r}", where)
        try:  # whitespace allowed: `base64` CLIs wrap lines at 76 columns
            return SecretValue(base64.b64decode("".join(value.split()), validate=True))
        except (binascii.Error, ValueError):
            raise UnreadableValue(self.manager_id, 'the file\'s "value" is not valid base64 '
                               f"(decoded as {encoding})", where) from None

    # ----------------------------------------------------------------- the one request path

    def _call(self, action: str, where: str, request: Callable[..., Any], *args, **kwargs) -> Any:
        """Run one hvac request, retrying transient failures (429, sealed, 5xx, dropped
        connections) with backoff; a plain 404 gives `_MISSING`, every failure an engine error."""
        return with_retries(lambda: self._call_once(action, where, request, *args, **kwargs), self.retry,
                            limit=self.limit)

    def _call_once(self, action: str, where: str, request: Callable[..., Any], *args, **kwargs) -> Any:
        try:
            return request(*args, **kwargs)
        except hv.InvalidPath as err:
            return self._not_found(err, action, where)
        except (hv.VaultError, requests.RequestException) as err:
            raise self._translate(err, action, where) from err

    def _found(self, reply: Any, action: str, where: str) -> Any:
        """`reply`, unless it is a 404 where one is not a normal answer."""
        if reply is _MISSING:
            raise BackendError(self.manager_id, f"cannot {action}: Vault answered 404 (not found)",
                               where)
        return reply

    def _not_found(self, err: hv.InvalidPath, action: str, where: str) -> Any:
        text = " ".join(err.errors or [])
        if "no handler for route" in text:
            raise BackendError(self.manager_id, f"cannot {action}: no secrets engine is mounted "
                               "there", where) from err
        warnings = " ".join((err.json or {}).get("warnings") or []) if isinstance(err.json, dict) else ""
        if "Invalid path for a versioned K/V" in warnings:
            raise BackendError(self.manager_id, f"cannot {action}: the mount is KV v2; set "
                               "kv_version: 2 (or auto)", where) from err
        return _MISSING

    def _translate(self, err: Exception, action: str, where: str) -> BackendError:
        error_type, reason = _classify(err, self.address)
        return error_type(self.manager_id, f"cannot {action}: {reason}", where)


# --------------------------------------------------------------------- helpers


_SERVER_ERRORS = (hv.VaultDown, hv.InternalServerError, hv.BadGateway, hv.VaultNotInitialized)


def _classify(err: Exception, address: str) -> tuple[type[BackendError], str]:
    """The engine error type for an hvac/requests failure, and why, in one clause."""
    says = _vault_says(err)
    if isinstance(err, (hv.Forbidden, hv.Unauthorized)):
        if "invalid token" in says:
            return PermissionDenied, "Vault says invalid token (the token is expired, revoked or wrong)"
        return PermissionDenied, "permission denied by the token's policies"
    if isinstance(err, hv.RateLimitExceeded):
        return RateLimited, "rate limited by Vault (429), retry later"
    if isinstance(err, hv.VaultDown) and "sealed" in says:
        return TransientError, "Vault is sealed"
    if "value being too large" in says or "error parsing JSON" in says:
        return ValueTooLarge, f"the secret is over this Vault's size limit ({says})"
    if isinstance(err, _SERVER_ERRORS) or "required index state" in says:  # 412: standby lag
        return TransientError, f"Vault had a server error ({says or 'no detail'})"
    if isinstance(err, hv.InvalidRequest):
        return BackendError, f"Vault refused the request ({says or 'no detail'})"
    if isinstance(err, hv.VaultError):
        return BackendError, f"Vault answered unexpectedly ({says or 'no detail'})"
    if isinstance(err, requests.exceptions.SSLError):
        return ManagerUnreachable, (f"the TLS connection to {address} failed "
                                    "(is its certificate signed by ca_cert?)")
    if isinstance(err, requests.exceptions.ProxyError):
        return ManagerUnreachable, (f"cannot reach Vault at {address} through the proxy set in the "
                                    "environment (HTTPS_PROXY/HTTP_PROXY; NO_PROXY bypasses it)")
    if isinstance(err, requests.exceptions.ConnectionError):
        if _connection_refused(err):
            return ManagerUnreachable, f"cannot connect to Vault at {address}"
        return TransientError, f"the connection to Vault at {address} was dropped"
    if isinstance(err, requests.exceptions.Timeout):
        return TransientError, f"Vault at {address} did not answer in time"
    return BackendError, f"the request to {address} failed ({type(err).__name__})"


def _connection_refused(err: requests.exceptions.ConnectionError) -> bool:
    """True when no connection could be opened at all (refused, unknown host): not worth
    retrying, unlike a connection that dropped mid-request."""
    if isinstance(err, ConnectFailed):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _vault_says(err: Exception) -> str:
    """Vault's own error text, without go-multierror's "1 error occurred:" framing."""
    text = "; ".join(e for e in (getattr(err, "errors", None) or []) if isinstance(e, str))
    text = re.sub(r"\d+ errors? occurred:", "", text).replace("\t* ", "; ")
    return " ".join(text.split()).replace(" ;", ";").strip("; ")


def _make_client(manager_id, address, token, namespace, ca_cert, timeout, parallelism) -> hvac.Client:
    """One client, one session, a pool as large as the reads we run in parallel; requests
    to the Vault go straight to that pool (transport.py)."""
    token_text = token.text() if isinstance(token, SecretValue) else token
    if not isinstance(token_text, str) or not token_text.strip():
        raise BackendError(manager_id, "the Vault token is empty")
    session = PooledSession(address, pool_maxsize=parallelism)
    # The environment (proxies, no_proxy, CA bundle, ~/.netrc) is read once, here: with
    # trust_env on, requests re-reads it on every request, a quarter of its CPU per call.
    session.proxies.update(requests.utils.get_environ_proxies(address))
    env_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.trust_env = False
    # hvac prefers session.verify over its own verify argument, so set it here.
    session.verify = str(ca_cert) if ca_cert else (env_bundle or True)
    return hvac.Client(url=address, token=token_text.strip(), verify=session.verify,
                       timeout=timeout, session=session, namespace=namespace or None)


def _addresses(host: str, port: int) -> set[str]:
    """The IP addresses `host` resolves to (itself when it does not resolve)."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return {host.lower()}


def _checked_version(manager_id: str, kv_version: str | int) -> str | int:
    if str(kv_version) in ("1", "2"):
        return int(kv_version)
    if kv_version == "auto":
        return "auto"
    raise BackendError(manager_id, f"kv_version must be auto, 1 or 2, not {kv_version!r}")


def _clean_path(manager_id: str, setting: str, path: str | None) -> str:
    parts = [p for p in str(path or "").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise BackendError(manager_id, f"{setting} must not contain '.' or '..' segments")
    return "/".join(parts)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _quote(path: str) -> str:
    return urllib.parse.quote(path.encode("utf-8"), safe="/")


def _is_prefix(mount_path: str, logical: str) -> bool:
    mount = mount_path.strip("/")
    return bool(mount) and (logical == mount or logical.startswith(mount + "/"))


def _missing_capability(granted: list[str], operation: str) -> str | None:
    if "root" in granted:
        return None
    needed = ("create", "update") if operation == "write" else ("delete",)
    return next((c for c in needed if c not in granted), None)


def _entry_size(kind: Kind, size: int) -> int:
    if kind is Kind.FILE:
        return len('{"value":"","encoding":"base64"}') + 4 * ((size + 2) // 3) + ENTRY_OVERHEAD
    return len('{"value":""}') + size + ENTRY_OVERHEAD


def _size(n: int, exact: bool = False) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n // scale} {unit}" if exact and n % scale == 0 else f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
