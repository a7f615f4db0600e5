"""The one small interface every manager type implements, and what backends share.

A backend knows how one kind of secrets manager stores secrets; it knows nothing of
plans, YAML or output. Values cross this interface only as `SecretValue`.

Implementations must allow concurrent `read` calls from several threads (refresh reads
in parallel) and must translate their SDK's exceptions into `engine.errors` types whose
messages name the manager and the location, never a value.
"""

from __future__ import annotations

import abc
import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from engine.backends.naming import IDENTITY, NameMap
from engine.errors import BackendError, PermissionDenied, ReadOnlyManager, UnreadableValue
from engine.model import SecretId, SecretValue, Unavailable

# Names every manager can hold: printable, no backslash, no NUL. A '/' separates folders,
# as in Vault paths and AWS names (`team/db_password`), so no segment may be empty, '.'
# or '..'. Managers with stricter alphabets (AWS) add their own checks in `name_problem`.
_FORBIDDEN_NAME_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 256


def common_name_problem(name: str) -> str | None:
    """Why `name` cannot be a secret name anywhere, or None when it is fine."""
    if not name:
        return "the name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is longer than {MAX_NAME_LENGTH} characters"
    segments = name.split("/")
    if "" in segments:
        return "a '/' separates folders, so it cannot start or end the name or follow another '/'"
    if "." in segments or ".." in segments:
        return "'.' and '..' are not names, nor folders of one"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode (it holds a lone surrogate)"
    bad = _FORBIDDEN_NAME_CHARS.search(name)
    if bad:
        return f"it contains the character {bad.group()!r}"
    if name != name.strip():
        return "it starts or ends with white space"
    return None


def checked_url(manager_id: str, setting: str, url: str) -> str:
    """`url` without surrounding space and trailing slash, if it is http(s) and uses TLS
    (plain http only to a loopback host, for local servers); otherwise BackendError."""
    text = str(url).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(manager_id, f"{setting} {url!r} must be an https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise BackendError(manager_id, f"refusing plain http {setting} {text}: secret values are only "
                           "sent over TLS (https://); http is allowed only for loopback hosts")
    return text.rstrip("/")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Backend(abc.ABC):
    """One configured manager. Construct through `from_settings`."""

    type_name: ClassVar[str]
    # How secrets are named physically here (see naming.py); managers that support a
    # `name_map`/`rename` set it in from_settings and use it in location and listing.
    names: NameMap = IDENTITY

    def __init__(self, manager_id: str, read_only: bool = False, parallelism: int = 8):
        self.manager_id = manager_id
        self.read_only = read_only
        self.parallelism = max(1, int(parallelism))  # requests in flight at once, at most

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, manager_id: str, settings: Mapping[str, Any]) -> Backend:
        """Build from the validated config settings of one manager.

        `settings` holds resolved values: credentials as strings/bytes, paths absolute.
        """

    @abc.abstractmethod
    def list_ids(self) -> list[SecretId]:
        """Every secret the manager currently holds under secretshift's layout.

        Deleted (tombstoned, soft-deleted) secrets are not listed.
        """

    @abc.abstractmethod
    def read(self, secret: SecretId) -> SecretValue | None:
        """The current value, or None when the secret is absent or deleted."""

    @abc.abstractmethod
    def write(self, secret: SecretId, value: SecretValue) -> None:
        """Create the secret or add a new version of it."""

    @abc.abstractmethod
    def delete(self, secret: SecretId) -> None:
        """Remove the secret recoverably (soft delete, tombstone, recovery window)."""

    @abc.abstractmethod
    def location(self, secret: SecretId) -> str:
        """Where the secret lives in this manager, for humans and plans (no I/O)."""

    @abc.abstractmethod
    def check_access(self, writes: Iterable[SecretId], deletes: Iterable[SecretId]) -> None:
        """Preflight: raise ReadOnlyManager/PermissionDenied if any planned write or
        delete would be refused, before anything is written anywhere."""

    def access_problems(
        self, writes: Iterable[SecretId], deletes: Iterable[SecretId]
    ) -> list[tuple[SecretId, str]]:
        """Like check_access, but report (secret, reason) for what would be refused
        instead of raising; used to show refusals in the plan. Backends that can tell
        secret by secret (Vault policies) override it; by default the first refusal
        stands for all."""
        writes, deletes = list(writes), list(deletes)
        try:
            self.check_access(writes, deletes)
        except (ReadOnlyManager, PermissionDenied) as error:
            return [((writes + deletes)[0], str(error))]
        return []

    # Optional, with defaults: what refresh uses to see secrets kept without a current
    # value, and to read many values at once where the manager has a batch read.
    read_batch_size: ClassVar[int] = 1

    def list_unavailable(self) -> list[Unavailable]:
        """Secrets of the layout that `list_ids` leaves out because they have no current
        value (soft-deleted, pending deletion). Default: none."""
        return []

    def read_current(self, secret: SecretId) -> SecretValue | Unavailable | None:
        """Like `read`, but a secret kept without a readable current value (soft-deleted,
        destroyed, pending deletion, no value) comes back as `Unavailable` saying why."""
        return self.read(secret)

    def read_many(self, secrets: Iterable[SecretId]) -> list[tuple[SecretId, SecretValue | Unavailable | None]]:
        """`read_current` of up to `read_batch_size` secrets, in the order given. Managers
        with a batch read override it; by default one read per secret."""
        return [(secret, self.readable(secret, self.read_current)) for secret in secrets]

    def readable(self, secret: SecretId, read: Callable[[SecretId], Any]) -> SecretValue | Unavailable | None:
        """`read(secret)`, with a value held in a shape secretshift cannot take as one
        value coming back as `Unavailable` ("unreadable") instead of an error: refresh
        goes on, and the plan says what it leaves alone."""
        try:
            return read(secret)
        except UnreadableValue as error:
            return Unavailable(secret, "unreadable", self.location(secret), detail=error.detail)

    def read_versioned(self, secret: SecretId) -> tuple[SecretValue | None, object | None]:
        """The current value and a version token that `write_if_version` can check
        (None: this manager has no conditional write). By default: `read`, no token."""
        return self.read(secret), None

    def write_if_version(self, secret: SecretId, value: SecretValue, version: object) -> bool:
        """Write only if the secret is still at `version` (from `read_versioned`); False,
        writing nothing, when it is not. Only called with a token this manager gave."""
        raise NotImplementedError(f"{self.type_name} has no conditional write")

    def restore(self, secret: SecretId) -> bool:
        """Undo a recoverable delete, if this manager has one; True when the secret reads
        again as before. By default False: the caller writes the value back instead."""
        return False

    def storage_keys(self) -> set[tuple]:
        """Identifies the storage this manager reads and writes: two managers sharing any
        key are the same store under two names (a move between them would delete the only
        copy). The default is unique per manager."""
        return {(self.type_name, "manager", self.manager_id)}

    def ping(self) -> None:
        """Check that the manager is reachable and the credentials work."""
        self.list_ids()

    def name_problem(self, secret: SecretId) -> str | None:
        """Why this manager cannot store a secret of that name (pure, no I/O)."""
        return common_name_problem(secret.name)

    def size_problem(self, secret: SecretId, size: int) -> str | None:
        """Why a value of `size` bytes cannot be stored here (pure, no I/O)."""
        return None

    def value_problem(self, secret: SecretId, value: SecretValue) -> str | None:
        """Why this value cannot be stored here as it is (pure, no I/O): apply asks before
        its first write, with the values its staleness check read."""
        return None

    def close(self) -> None:
        """Release connections and files."""

    def after_fork(self, processes: int) -> None:
        """In a worker process just forked (one of `processes` sharing this manager):
        never touch a connection inherited from the parent, which the parent owns (new
        ones open when needed), and keep to this process's part of `parallelism`."""
        self.parallelism = -(-self.parallelism // max(1, processes))

    def _refuse_if_read_only(self, secret: SecretId, operation: str) -> None:
        if self.read_only:
            raise ReadOnlyManager(
                self.manager_id,
                f"refusing to {operation} {secret}: the manager is configured read_only",
                self.location(secret),
            )
