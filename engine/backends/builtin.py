"""The builtin manager: one local SQLite file, every value envelope-encrypted.

Each stored version is sealed with its own AES-256-GCM data key, that key wrapped by
the master key, and `(kind, name, version)` bound as associated data, so a row copied
onto another secret or version fails to decrypt. Writes add versions; `delete` adds a
tombstone, and `restore` brings the last value back, so a migration can be undone.

The file and its SQLite side files are private (0600, folders 0700). A store that does
not exist yet reads as empty and is created by the first write. Reads may run from
several threads (one connection per thread); writes run in `BEGIN IMMEDIATE`
transactions in WAL mode, so several processes may share one store.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from engine import crypto
from engine.backends.base import Backend
from engine.errors import BackendError, DecryptError, InvalidName, PermissionDenied, TransientError
from engine.model import Kind, SecretId, SecretValue

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 15.0
_AD_PREFIX = b"secretshift-builtin-v1"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS versions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        wrapped_key BLOB,
        ciphertext BLOB,
        PRIMARY KEY (kind, name, version))""",
)

_LIVE_IDS = """
    SELECT v.kind, v.name FROM versions AS v
    JOIN (SELECT kind, name, MAX(version) AS version FROM versions GROUP BY kind, name) AS latest
      USING (kind, name, version)
    WHERE v.deleted = 0
    ORDER BY v.kind, v.name"""

# CAST: a sealed column altered into TEXT must reach decryption (and fail there as a
# DecryptError), not fail in sqlite3's UTF-8 decoding.
_LATEST_ROW = """
    SELECT version, deleted, CAST(wrapped_key AS BLOB), CAST(ciphertext AS BLOB) FROM versions
    WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1"""
_LATEST_LIVE_ROW = """
    SELECT version, deleted, CAST(wrapped_key AS BLOB), CAST(ciphertext AS BLOB) FROM versions
    WHERE kind = ? AND name = ? AND deleted = 0 ORDER BY version DESC LIMIT 1"""


# Page cache of each connection (one per thread), in KiB: reads look rows up by key, so a
# small cache serves them; SQLite's default (2 MiB) times dozens of threads is what an apply
# with a large store held in memory.
CACHE_KIB = 256


class VersionInfo(NamedTuple):
    """One stored version of a secret, without its value (for audit and `history`)."""

    version: int
    created_at: str
    deleted: bool


class _Row(NamedTuple):
    version: int
    deleted: bool
    wrapped_key: bytes | None
    ciphertext: bytes | None


def associated_data(secret: SecretId, version: int) -> bytes:
    """The bytes bound to a sealed value: kind, name and version, each length-prefixed
    so that no two different triples encode alike."""
    parts = [_AD_PREFIX, secret.kind.value.encode("utf-8"), secret.name.encode("utf-8")]
    encoded = b"".join(struct.pack(">I", len(part)) + part for part in parts)
    return encoded + struct.pack(">Q", version)


def _make_private_folders(folder: Path) -> None:
    """Create `folder` and any missing parents with mode 0700."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)  # in case the umask removed owner bits


def _create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600, unless it exists. SQLite gives its -wal,
    -shm and -journal files the database file's mode, so they stay private too."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _translate_errors(method: Callable) -> Callable:
    """Turn sqlite3 and OS errors escaping a public method into engine errors."""

    @functools.wraps(method)
    def wrapper(self: BuiltinBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self._sqlite_failure(exc) from None
        except OSError as exc:
            raise self._os_failure(exc) from None

    return wrapper


class BuiltinBackend(Backend):
    """A manager kept in one local, encrypted SQLite file (`type: builtin`).

    Owns the file format, encryption and versioning of that file; it knows nothing of
    plans or config files. Besides the Backend interface it offers `restore` (undo a
    delete) and `history` (versions without values).
    """

    type_name = "builtin"

    def __init__(
        self,
        manager_id: str,
        path: Path,
        key: SecretValue,
        read_only: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ):
        super().__init__(manager_id, read_only)
        if not isinstance(key, SecretValue):
            raise TypeError("the master key must be a SecretValue")
        if len(key) != crypto.KEY_BYTES:
            raise BackendError(manager_id, f"the master key must be {crypto.KEY_BYTES} bytes, not {len(key)}")
        self.path = Path(path).absolute()
        self._key = key
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the connection list and store checks
        self._write_lock = threading.Lock()  # one writer per process; BEGIN IMMEDIATE across processes
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0
        self._checked = False

    @classmethod
    def from_settings(cls, manager_id: str, settings: Mapping[str, Any]) -> BuiltinBackend:
        """Build from resolved settings: `path` (absolute), `key` (SecretValue of 32 raw
        bytes) and `read_only`."""
        return cls(
            manager_id,
            Path(settings["path"]),
            settings["key"],
            read_only=bool(settings.get("read_only", False)),
        )

    def __repr__(self) -> str:
        return f"BuiltinBackend({self.manager_id!r}, path={str(self.path)!r}, read_only={self.read_only})"

    # -- the Backend interface -------------------------------------------------------

    @_translate_errors
    def list_ids(self) -> list[SecretId]:
        """Every secret whose latest version is not a tombstone, sorted by kind and name."""
        conn = self._connection(create=False)
        if conn is None:
            return []
        return [self._secret_id(kind, name) for kind, name in conn.execute(_LIVE_IDS)]

    @_translate_errors
    def read(self, secret: SecretId) -> SecretValue | None:
        """The latest value, or None when the secret was never stored or is deleted."""
        conn = self._connection(create=False)
        if conn is None:
            return None
        row = self._latest_row(conn, secret)
        if row is None or row.deleted:
            return None
        return SecretValue(self._unseal(secret, row))

    @_translate_errors
    def write(self, secret: SecretId, value: SecretValue) -> None:
        """Store `value` as a new version (creating the store file if needed)."""
        self._refuse_if_read_only(secret, "write")
        if not isinstance(value, SecretValue):
            raise TypeError("write() takes a SecretValue")
        problem = self.name_problem(secret)
        if problem:
            raise InvalidName(secret.name, problem)
        conn = self._connection(create=True)
        with self._write_transaction(conn):
            latest = self._latest_row(conn, secret)
            self._insert_value(conn, secret, (latest.version if latest else 0) + 1, value.data)

    @_translate_errors
    def delete(self, secret: SecretId) -> None:
        """Add a tombstone; earlier versions stay and `restore` undoes it. Deleting a
        secret that is absent or already deleted changes nothing."""
        self._refuse_if_read_only(secret, "delete")
        conn = self._connection(create=False)
        if conn is None:
            return
        with self._write_transaction(conn):
            latest = self._latest_row(conn, secret)
            if latest is not None and not latest.deleted:
                self._insert_row(conn, secret, latest.version + 1, deleted=True)

    def storage_keys(self) -> set[tuple]:
        """The store file, links and `..` resolved."""
        return {("builtin", os.path.realpath(self.path))}

    def location(self, secret: SecretId) -> str:
        """`<file name>:<kind>/<name>`, e.g. `harness.db:text/db_password`."""
        return f"{self.path.name}:{secret.kind.value}/{secret.name}"

    @_translate_errors
    def check_access(self, writes: Iterable[SecretId], deletes: Iterable[SecretId]) -> None:
        """Refuse planned writes/deletes on a read-only manager or an unwritable file,
        and check an existing store's format and key; creates nothing."""
        writes, deletes = list(writes), list(deletes)
        if not writes and not deletes:
            return
        first, operation = (writes[0], "write") if writes else (deletes[0], "delete")
        self._refuse_if_read_only(first, operation)
        self._refuse_if_not_writable()
        if self.path.exists():
            self._connection(create=False)

    def after_fork(self, processes: int) -> None:
        """SQLite connections must not cross a fork, not even to be closed (closing one
        may checkpoint the WAL under the parent's feet): they are kept, unused, for the
        life of the child, which ends with os._exit; new ones open lazily."""
        super().after_fork(processes)
        self._lock = threading.Lock()
        self._orphans = self._connections
        self._connections = []
        self._generation += 1

    def close(self) -> None:
        """Close every connection this backend opened; later calls reopen lazily."""
        with self._lock:
            self._generation += 1
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- builtin extras ---------------------------------------------------------------

    @_translate_errors
    def restore(self, secret: SecretId) -> bool:
        """Undo a delete: store the last value before the tombstone as a new version.

        Returns False when the secret is not deleted (nothing to do); raises
        BackendError when it has no earlier value to bring back.
        """
        self._refuse_if_read_only(secret, "restore")
        conn = self._connection(create=False)
        latest = self._latest_row(conn, secret) if conn is not None else None
        if latest is None:
            raise BackendError(self.manager_id, f"cannot restore {secret}: it was never stored", self.location(secret))
        with self._write_transaction(conn):
            latest = self._latest_row(conn, secret)
            if not latest.deleted:
                return False
            previous = self._latest_row(conn, secret, live_only=True)
            if previous is None:
                raise BackendError(
                    self.manager_id, f"cannot restore {secret}: it has no earlier value", self.location(secret)
                )
            self._insert_value(conn, secret, latest.version + 1, self._unseal(secret, previous))
        return True

    @_translate_errors
    def history(self, secret: SecretId) -> list[VersionInfo]:
        """Every stored version of `secret`, oldest first, without values."""
        conn = self._connection(create=False)
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT version, created_at, deleted FROM versions WHERE kind = ? AND name = ? ORDER BY version",
            (secret.kind.value, secret.name),
        )
        return [VersionInfo(version, created_at, bool(deleted)) for version, created_at, deleted in rows]

    # -- rows and encryption ----------------------------------------------------------

    def _latest_row(self, conn: sqlite3.Connection, secret: SecretId, live_only: bool = False) -> _Row | None:
        query = _LATEST_LIVE_ROW if live_only else _LATEST_ROW
        row = conn.execute(query, (secret.kind.value, secret.name)).fetchone()
        return None if row is None else _Row(row[0], bool(row[1]), row[2], row[3])

    def _insert_value(self, conn: sqlite3.Connection, secret: SecretId, version: int, data: bytes) -> None:
        envelope = crypto.envelope_seal(self._key.data, data, associated_data(secret, version))
        self._insert_row(conn, secret, version, wrapped_key=envelope.wrapped_key, ciphertext=envelope.ciphertext)

    def _insert_row(
        self,
        conn: sqlite3.Connection,
        secret: SecretId,
        version: int,
        deleted: bool = False,
        wrapped_key: bytes | None = None,
        ciphertext: bytes | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO versions (kind, name, version, created_at, deleted, wrapped_key, ciphertext)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (secret.kind.value, secret.name, version, self._clock().isoformat(timespec="microseconds"),
             int(deleted), wrapped_key, ciphertext),
        )

    def _unseal(self, secret: SecretId, row: _Row) -> bytes:
        if not isinstance(row.wrapped_key, bytes) or not isinstance(row.ciphertext, bytes):
            raise self._undecryptable(secret, row.version)
        envelope = crypto.Envelope(wrapped_key=row.wrapped_key, ciphertext=row.ciphertext)
        try:
            return crypto.envelope_open(self._key.data, envelope, associated_data(secret, row.version))
        except crypto.WrongKey:
            raise self._undecryptable(secret, row.version) from None

    def _undecryptable(self, secret: SecretId, version: int) -> DecryptError:
        return DecryptError(
            self.manager_id,
            f"cannot decrypt version {version} of {secret}: the stored row was altered or moved",
            self.location(secret),
        )

    def _secret_id(self, kind: str, name: str) -> SecretId:
        try:
            return SecretId(Kind(kind), name)
        except ValueError:
            raise BackendError(self.manager_id, f"{self.path} holds a secret of unknown kind {kind!r}") from None

    # -- the store file and its connections ---------------------------------------------

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """This thread's connection to a checked store; None when there is no store yet
        and `create` is false (a missing or empty file reads as an empty store)."""
        if not create and not self.path.exists():
            return None
        if create and not self.path.exists():
            _make_private_folders(self.path.parent)
            _create_private_file(self.path)
        conn = self._thread_connection()
        if not self._checked:
            with self._lock:
                self._checked = self._checked or self._check_store(conn, create)
            if not self._checked:
                return None
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == self._generation:
            return held[1]
        # A read-only manager, or a file we may not write, is opened read-only, so that
        # not even a WAL checkpoint touches it.
        writable = not self.read_only and os.access(self.path, os.W_OK)
        uri = self.path.as_uri() + ("?mode=rw" if writable else "?mode=ro")
        conn = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            self._connections.append(conn)
            self._local.held = (self._generation, conn)
        conn.execute("PRAGMA synchronous = FULL")  # a committed write survives power loss
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        return conn

    def _check_store(self, conn: sqlite3.Connection, create: bool) -> bool:
        """Check format, schema version and key; initialise an empty file when `create`.
        Returns False for an empty file that is not being created."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            if not create:
                return False
            self._initialise(conn)
            tables = {"meta", "versions"}
        if not {"meta", "versions"} <= tables:
            raise BackendError(self.manager_id, f"{self.path} is a SQLite database but not a secretshift store")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise BackendError(
                self.manager_id,
                f"{self.path} has store format {meta.get('schema_version')!r}, "
                f"but this secretshift reads format {SCHEMA_VERSION!r}",
            )
        if not hmac.compare_digest(meta.get("key_check", ""), crypto.key_check_value(self._key.data)):
            raise DecryptError(
                self.manager_id,
                f"cannot decrypt {self.path}: the configured key does not match this store (wrong key?)",
            )
        return True

    def _initialise(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent; must run outside a transaction
        with self._write_transaction(conn):
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("key_check", crypto.key_check_value(self._key.data)),
                    ("created_at", self._clock().isoformat(timespec="seconds")),
                ],
            )

    @contextlib.contextmanager
    def _write_transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also after a failed COMMIT (disk full)
                    conn.execute("ROLLBACK")
                raise

    def _refuse_if_not_writable(self) -> None:
        if self.path.exists():
            blocked = [p for p in (self.path, self.path.parent) if not os.access(p, os.W_OK)]
        else:
            existing = _nearest_existing(self.path.parent)
            if not existing.is_dir():
                raise BackendError(self.manager_id, f"cannot create {self.path}: {existing} is not a folder")
            blocked = [] if os.access(existing, os.W_OK | os.X_OK) else [existing]
        if blocked:
            raise PermissionDenied(self.manager_id, f"cannot write {self.path}: {blocked[0]} is not writable")

    # -- error translation ----------------------------------------------------------------

    def _sqlite_failure(self, exc: sqlite3.Error) -> BackendError:
        # sqlite's own message may quote column contents, so it is matched, never shown.
        reason = str(exc).lower()
        if "locked" in reason or "busy" in reason:
            return TransientError(self.manager_id, f"{self.path} is locked by another process; try again")
        if "readonly" in reason or "read-only" in reason:
            return PermissionDenied(self.manager_id, f"cannot write {self.path}: the file or its folder is read-only")
        if "unable to open" in reason:
            return BackendError(self.manager_id, f"cannot open {self.path}: the file or its folder is unreadable")
        if "disk is full" in reason or "disk i/o" in reason:
            return BackendError(self.manager_id, f"cannot write {self.path}: the disk is full or failing")
        return BackendError(self.manager_id, f"cannot read {self.path}: it is not a SQLite database or it is corrupted")

    def _os_failure(self, exc: OSError) -> BackendError:
        where = exc.filename or self.path
        if isinstance(exc, PermissionError):
            return PermissionDenied(self.manager_id, f"cannot write {where}: permission denied")
        return BackendError(self.manager_id, f"cannot use {where}: {exc.strerror or exc}")
