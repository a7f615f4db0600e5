"""Vault secrets outside the Harness layout: any path under base_path, with any keys.

Real Vaults hold secrets such as `secret/app/db` = {"username": ..., "password": ...}.
secretshift addresses them through a config `secrets:` entry with `vault_path` (relative
to the manager's base_path) and optionally `vault_key`:

- with `vault_key`: the text secret is that one key's string value. Writing it changes
  only that key (read, modify, write back with check-and-set on KV v2); deleting it
  removes the key, and the whole secret once no key is left.
- without `vault_key`: the text secret is the whole secret as one JSON object, in the
  canonical form `json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`
  (compact, keys sorted, as Vault itself returns them). Writing it stores the object's
  keys as the secret's keys, so a multi-key secret carried to AWS as a JSON SecretString
  comes back as the same multi-key secret, every value byte for byte.

`VaultPaths` does the reading and writing for such secrets on behalf of VaultBackend,
through the backend's one request path (`_call`), and walks a mount for discovery.
Values are never part of a message.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.backends.metadata import (
    FORMAT_KEY,
    SecretMetadata,
    from_custom_metadata,
    to_custom_metadata,
)
from engine.errors import BackendError, UnreadableValue
from engine.model import Kind, SecretId, SecretValue

WHOLE_SECRET_FORMAT = "vault-json-object"  # the format marker of a whole-secret JSON text


@dataclass(frozen=True)
class MappedSecret:
    """A text secret kept at `path` (relative to base_path): one key of it, or the whole
    secret as a JSON object when `key` is None."""

    secret: SecretId
    path: str
    key: str | None = None


def canonical_json(data: dict) -> str:
    """The one text form of a whole Vault secret: compact JSON, keys sorted."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class VaultPaths:
    """Reads, writes, deletes and lists the mapped secrets of one VaultBackend."""

    def __init__(self, backend, mapped: Iterable[MappedSecret]):
        self._backend = backend
        self._mapped = {m.secret: m for m in mapped}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def __contains__(self, secret: object) -> bool:
        return secret in self._mapped

    def location(self, secret: SecretId) -> str:
        """`<engine>/<base_path>/<path>`, plus `#<key>` for one key of it."""
        mapped = self._mapped[secret]
        where = _join(self._backend.secret_engine, self._backend.base_path, mapped.path)
        return f"{where}#{mapped.key}" if mapped.key is not None else where

    def data_path(self, secret: SecretId) -> str:
        """The API path ACLs are evaluated on (KV v2: `data/` after the mount)."""
        layout = self._backend.layout()
        middle = "data" if layout.version == 2 else ""
        return _join(layout.mount, middle, layout.prefix, self._mapped[secret].path)

    def mapped_ids(self) -> list[SecretId]:
        """Every secret mapped to a path, whether it exists or not."""
        return sorted(self._mapped)

    def mapped_paths(self) -> set[str]:
        """The paths some secret is mapped to."""
        return {m.path for m in self._mapped.values()}

    def list_ids(self) -> list[SecretId]:
        """The mapped secrets that exist now (their path reads, and holds their key)."""
        found = []
        data_by_path = {p: self.read_data(p)[0] for p in {m.path for m in self._mapped.values()}}
        for secret, mapped in self._mapped.items():
            data = data_by_path[mapped.path]
            if data is not None and (mapped.key is None or mapped.key in data):
                found.append(secret)
        return sorted(found)

    def read(self, secret: SecretId) -> SecretValue | None:
        """The key's string value, or the whole secret as canonical JSON; None when absent."""
        return self.value_from(secret, self.read_data(self._mapped[secret].path)[0])

    def value_from(self, secret: SecretId, data: dict | None) -> SecretValue | None:
        """The secret's value in the data of its path (any version of it)."""
        mapped = self._mapped[secret]
        if data is None:
            return None
        if mapped.key is None:
            return SecretValue.from_text(canonical_json(data))
        if mapped.key not in data:
            return None
        value = data[mapped.key]
        if not isinstance(value, str):
            raise UnreadableValue(self._backend.manager_id, f"the key {mapped.key!r} holds a "
                               f"{type(value).__name__}, not a string; map the whole secret "
                               "(vault_path without vault_key) to carry it", self.location(secret))
        return SecretValue.from_text(value)

    def write(self, secret: SecretId, value: SecretValue) -> None:
        """Store the key (other keys kept), or the whole secret from its JSON object."""
        mapped = self._mapped[secret]
        text = self._text(secret, value)
        with self._lock(mapped.path):
            if mapped.key is None:
                self._put(mapped.path, self._object(secret, text), None)
                return
            data, version = self.read_data(mapped.path)
            self._put(mapped.path, {**(data or {}), mapped.key: text}, version)

    def delete(self, secret: SecretId) -> None:
        """Remove the key (a new version without it), or the whole secret once no key is
        left; the whole secret is deleted like any other (KV v2: soft delete)."""
        mapped = self._mapped[secret]
        with self._lock(mapped.path):
            data, version = self.read_data(mapped.path)
            if data is None or (mapped.key is not None and mapped.key not in data):
                return
            rest = {k: v for k, v in data.items() if k != mapped.key} if mapped.key is not None else {}
            if rest:
                self._put(mapped.path, rest, version)
            else:
                self._delete(mapped.path)

    def restore(self, secret: SecretId) -> bool:
        """Undelete a whole KV v2 secret; one key is restored by writing it back (False)."""
        mapped = self._mapped[secret]
        if mapped.key is not None:
            return False
        backend, layout = self._backend, self._backend.layout()
        if layout.version != 2:
            return False
        where, kv = self.location(secret), backend._client.secrets.kv.v2
        metadata = backend._call("read the metadata of", where, kv.read_secret_metadata,
                                 path=self._inner(mapped.path), mount_point=layout.mount)
        if not isinstance(metadata, dict):
            return False
        current = metadata["data"].get("current_version")
        version = (metadata["data"].get("versions") or {}).get(str(current)) or {}
        if not version.get("deletion_time") or version.get("destroyed"):
            return False
        backend._call("undelete", where, kv.undelete_secret_versions, path=self._inner(mapped.path),
                      versions=[current], mount_point=layout.mount)
        return True

    # ----------------------------------------------------------------- raw access

    def read_data(self, path: str) -> tuple[dict | None, int | None]:
        """The data at `path` (relative to base_path) and its KV v2 version; (None, None)
        when absent or its current version is deleted."""
        backend, layout = self._backend, self._backend.layout()
        where = _join(backend.secret_engine, backend.base_path, path)
        if layout.version == 2:
            reply = backend._call("read", where, backend._client.secrets.kv.v2.read_secret_version,
                                  path=self._inner(path), mount_point=layout.mount,
                                  raise_on_deleted_version=True)
            if not isinstance(reply, dict):
                return None, None
            body = reply.get("data") or {}
            return _as_dict(body.get("data")), (body.get("metadata") or {}).get("version")
        reply = backend._call("read", where, backend._client.secrets.kv.v1.read_secret,
                              path=self._inner(path), mount_point=layout.mount)
        return (_as_dict(reply.get("data")), None) if isinstance(reply, dict) else (None, None)

    def walk(self) -> Iterator[str]:
        """Every secret path under base_path (relative to it), sorted."""
        return iter(self._backend.list_tree())

    # ----------------------------------------------------------------- helpers

    def _put(self, path: str, data: dict, version: int | None) -> None:
        backend, layout = self._backend, self._backend.layout()
        where = _join(backend.secret_engine, backend.base_path, path)
        if layout.version == 2:
            extra = {"cas": version} if version is not None else {}
            reply = backend._call("write", where, backend._client.secrets.kv.v2.create_or_update_secret,
                                  path=self._inner(path), secret=data, mount_point=layout.mount, **extra)
        else:
            reply = backend._call("write", where, backend._client.secrets.kv.v1.create_or_update_secret,
                                  path=self._inner(path), secret=data, method="POST", mount_point=layout.mount)
        backend._found(reply, "write", where)

    def _delete(self, path: str) -> None:
        backend, layout = self._backend, self._backend.layout()
        where = _join(backend.secret_engine, backend.base_path, path)
        kv = backend._client.secrets.kv
        if layout.version == 2:
            backend._call("delete", where, kv.v2.delete_latest_version_of_secret,
                          path=self._inner(path), mount_point=layout.mount)
        else:
            backend._call("delete", where, kv.v1.delete_secret, path=self._inner(path), mount_point=layout.mount)

    def _inner(self, path: str) -> str:
        return _join(self._backend.layout().prefix, path)

    def _lock(self, path: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(path, threading.Lock())

    def value_problem(self, secret: SecretId, value: SecretValue) -> str | None:
        """Why `write` would refuse `value` (see `_object`), or None."""
        try:
            text = self._text(secret, value)
            if self._mapped[secret].key is None:
                self._object(secret, text)
        except BackendError as error:
            return error.detail
        return None

    def _text(self, secret: SecretId, value: SecretValue) -> str:
        try:
            return value.text()
        except UnicodeDecodeError:
            raise BackendError(self._backend.manager_id, "a text secret must be UTF-8",
                               self.location(secret)) from None

    def _object(self, secret: SecretId, text: str) -> dict:
        """The secret's keys from its JSON text; refused unless it is a non-empty object in
        canonical form (anything else could not be read back as the same bytes)."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not data:
            raise BackendError(self._backend.manager_id, f"{secret} maps to a whole Vault secret, "
                               "so its value must be a JSON object with at least one key",
                               self.location(secret))
        if canonical_json(data) != text:
            raise BackendError(self._backend.manager_id, f"{secret} maps to a whole Vault secret, "
                               "but its JSON is not in canonical form (compact, keys sorted), so "
                               "it would not read back byte for byte", self.location(secret))
        return data


def mapped_secrets(entries: Iterable[dict]) -> tuple[MappedSecret, ...]:
    """MappedSecrets from plain settings ({"name", "path", "key"}); text secrets only."""
    return tuple(MappedSecret(SecretId(Kind.TEXT, e["name"]), e["path"].strip("/"), e.get("key"))
                 for e in entries)


def _as_dict(data: Any) -> dict | None:
    return data if isinstance(data, dict) else None


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _quote(path: str) -> str:
    return urllib.parse.quote(path.encode("utf-8"), safe="/")


# --------------------------------------------------------------------------- metadata


def read_metadata(backend, secret: SecretId) -> SecretMetadata:
    """custom_metadata of the secret's KV v2 path as SecretMetadata; a whole mapped
    secret is marked with its format (a JSON object of the secret's keys)."""
    paths, layout = backend.paths, backend.layout()
    mapped = paths._mapped.get(secret)
    marker = WHOLE_SECRET_FORMAT if mapped is not None and mapped.key is None else None
    if layout.version != 2:
        return SecretMetadata(format=marker, vault_path=mapped.path if marker else None)
    inner = paths._inner(mapped.path) if mapped is not None else layout.inner(secret)
    reply = backend._call("read the metadata of", backend.location(secret),
                          backend._client.secrets.kv.v2.read_secret_metadata, path=inner, mount_point=layout.mount)
    custom = (reply.get("data") or {}).get("custom_metadata") if isinstance(reply, dict) else None
    found = from_custom_metadata(custom)
    return SecretMetadata(found.description, found.tags, marker, mapped.path if marker else None)


def write_metadata(backend, secret: SecretId, metadata: SecretMetadata) -> None:
    """Merge description and tags into the KV v2 custom_metadata (keys already there are
    kept). Nothing on KV v1 (it has no metadata) nor for one key of a shared secret."""
    paths, layout = backend.paths, backend.layout()
    mapped = paths._mapped.get(secret)
    if layout.version != 2 or (mapped is not None and mapped.key is not None):
        return
    inner = paths._inner(mapped.path) if mapped is not None else layout.inner(secret)
    where, kv = backend.location(secret), backend._client.secrets.kv.v2
    reply = backend._call("read the metadata of", where, kv.read_secret_metadata, path=inner, mount_point=layout.mount)
    custom = dict(((reply.get("data") or {}).get("custom_metadata") or {}) if isinstance(reply, dict) else {})
    wanted = to_custom_metadata(SecretMetadata(metadata.description, metadata.tags, None, None, metadata.history))
    if mapped is not None:  # the format is the mapping's own, recorded for the next reader
        wanted[FORMAT_KEY] = WHOLE_SECRET_FORMAT
    if all(custom.get(k) == v for k, v in wanted.items()):
        return
    backend._call("write the metadata of", where, kv.update_metadata, path=inner,
                  custom_metadata={**custom, **wanted}, mount_point=layout.mount)
