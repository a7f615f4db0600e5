"""What only the builtin store does: its file on disk, encryption, versions and locking."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import sys
import textwrap
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine import crypto
from engine.backends import backend_class
from engine.backends.builtin import CACHE_KIB, BuiltinBackend, VersionInfo, associated_data
from engine.errors import BackendError, DecryptError, InvalidName, PermissionDenied, ReadOnlyManager
from engine.model import Kind, SecretId, SecretValue

ENGINE_ROOT = Path(__file__).resolve().parents[2]
DB_PASSWORD = SecretId(Kind.TEXT, "db_password")
KEYSTORE = SecretId(Kind.FILE, "keystore.p12")


@pytest.fixture
def key() -> SecretValue:
    return SecretValue(crypto.new_key())


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "secrets" / "harness.db"


@pytest.fixture
def open_store(store_path: Path, key: SecretValue):
    """`open_store(key=..., read_only=...)`: a BuiltinBackend on `store_path`; closed after."""
    opened: list[BuiltinBackend] = []

    def make(key: SecretValue = key, read_only: bool = False, **options) -> BuiltinBackend:
        backend = BuiltinBackend("harness", store_path, key, read_only=read_only, **options)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def raw_rows(path: Path) -> list[tuple]:
    """The versions table as stored, read without the backend."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT kind, name, version, deleted FROM versions ORDER BY kind, name, version").fetchall()


def tamper(path: Path, *statements: str) -> None:
    """Change the store behind the backend's back, as an attacker with the file could."""
    conn = sqlite3.connect(path)
    with conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def one_sentence(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


def test_registry_knows_the_builtin_type() -> None:
    """The config's `type: builtin` maps to BuiltinBackend, built from resolved settings."""
    assert backend_class("builtin") is BuiltinBackend
    backend = backend_class("builtin").from_settings(
        "harness", {"path": Path("/nonexistent/harness.db"), "key": SecretValue(crypto.new_key()), "read_only": True}
    )
    assert (backend.manager_id, backend.read_only, backend.type_name) == ("harness", True, "builtin")


def test_location_names_file_kind_and_name(open_store) -> None:
    """location() is `<file name>:<kind>/<name>`."""
    assert open_store().location(DB_PASSWORD) == "harness.db:text/db_password"
    assert open_store().location(KEYSTORE) == "harness.db:file/keystore.p12"


def test_master_key_must_be_32_bytes(store_path: Path) -> None:
    """A key of the wrong size is refused up front, without showing it."""
    with pytest.raises(BackendError, match="32 bytes, not 16"):
        BuiltinBackend("harness", store_path, SecretValue(b"k" * 16))


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00" * 1000, os.urandom(2 * 1024 * 1024), "ünïcødé ✓ 🔑".encode("utf-8")],
    ids=["empty", "NUL bytes", "2 MiB", "unicode"],
)
@pytest.mark.parametrize("kind", list(Kind))
def test_any_bytes_round_trip(open_store, value: bytes, kind: Kind) -> None:
    """Values of any bytes and sizes read back exactly, as text or file."""
    secret = SecretId(kind, "value")
    open_store().write(secret, SecretValue(value))
    assert open_store().read(secret).data == value


def test_files_are_private_whatever_the_umask(open_store, store_path: Path, tmp_path: Path) -> None:
    """The store and its -wal/-shm files are 0600, created folders 0700, even with umask 0."""
    previous = os.umask(0)
    try:
        backend = open_store()
        backend.write(DB_PASSWORD, SecretValue.from_text("v"))
        assert backend.read(DB_PASSWORD) == SecretValue.from_text("v")
        files = sorted(store_path.parent.iterdir())
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        folder_modes = [stat.S_IMODE(p.stat().st_mode) for p in (store_path.parent, store_path.parent.parent)]
    finally:
        os.umask(previous)
    assert {"harness.db", "harness.db-wal", "harness.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}
    assert folder_modes == [0o700, 0o700]
    assert stat.S_IMODE(tmp_path.stat().st_mode) != 0o777  # an existing folder is left alone


def test_values_and_key_are_not_on_disk_in_clear(open_store, store_path: Path, key: SecretValue) -> None:
    """Grepping the raw store files finds neither a canary value nor the master key."""
    canary = b"CANARY-e1b2-builtin-plaintext"
    backend = open_store()
    backend.write(DB_PASSWORD, SecretValue(canary))
    backend.write(KEYSTORE, SecretValue(b"\x00" + canary * 3))
    backend.write(DB_PASSWORD, SecretValue(canary + b"-v2"))
    raw = b"".join(p.read_bytes() for p in store_path.parent.iterdir())  # db, -wal and -shm
    assert b"db_password" in raw  # names are not secret; the check does look at the data
    assert canary not in raw
    assert key.data not in raw
    assert crypto.encode_key(key.data).encode() not in raw


def test_wrong_key_is_one_clear_sentence(open_store, store_path: Path) -> None:
    """Another key gives DecryptError naming the file, for reads, lists, writes and the
    preflight, and nothing is written."""
    open_store().write(DB_PASSWORD, SecretValue.from_text("sealed"))
    rows_before = raw_rows(store_path)
    wrong = open_store(key=SecretValue(crypto.new_key()))

    for attempt in (
        wrong.list_ids,
        lambda: wrong.read(DB_PASSWORD),
        lambda: wrong.write(KEYSTORE, SecretValue(b"x")),
        lambda: wrong.delete(DB_PASSWORD),
        lambda: wrong.check_access([KEYSTORE], []),
    ):
        with pytest.raises(DecryptError) as caught:
            attempt()
        message = one_sentence(caught.value)
        assert f"cannot decrypt {store_path}: the configured key does not match this store (wrong key?)" in message
    assert raw_rows(store_path) == rows_before


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE versions SET ciphertext = substr(ciphertext, 1, 20) || X'FF' || substr(ciphertext, 22)",
        "UPDATE versions SET ciphertext = CAST(substr(ciphertext, 1, 20) || X'FF' AS BLOB)",
        "UPDATE versions SET wrapped_key = CAST(zeroblob(60) AS BLOB)",
        "UPDATE versions SET ciphertext = NULL",
    ],
    ids=["flipped byte stored as text", "flipped and truncated", "zeroed data key", "value removed"],
)
def test_tampered_row_is_a_decrypt_error_naming_the_secret(open_store, store_path: Path, sql: str) -> None:
    """An altered sealed value gives DecryptError naming the secret, no InvalidTag trace."""
    open_store().write(DB_PASSWORD, SecretValue.from_text("sealed value"))
    tamper(store_path, sql)
    with pytest.raises(DecryptError) as caught:
        open_store().read(DB_PASSWORD)
    error = caught.value
    assert "db_password" in one_sentence(error)
    assert error.location == "harness.db:text/db_password"
    shown = "".join(traceback.format_exception(error))
    assert "InvalidTag" not in shown and "During handling" not in shown and "direct cause" not in shown


def _swap_sealed_values(path: Path) -> None:
    """Give secret `a` the sealed value of `b` and the reverse."""
    conn = sqlite3.connect(path)
    with conn:
        sealed = dict(
            (name, (wrapped_key, ciphertext))
            for name, wrapped_key, ciphertext in conn.execute("SELECT name, wrapped_key, ciphertext FROM versions")
        )
        for name, other in (("a", "b"), ("b", "a")):
            conn.execute("UPDATE versions SET wrapped_key = ?, ciphertext = ? WHERE name = ?", (*sealed[other], name))
    conn.close()


@pytest.mark.parametrize(
    "damage",
    [
        _swap_sealed_values,
        lambda path: tamper(
            path,
            "UPDATE versions SET name = 'tmp' WHERE name = 'a'",
            "UPDATE versions SET name = 'a' WHERE name = 'b'",
            "UPDATE versions SET name = 'b' WHERE name = 'tmp'",
        ),
        lambda path: tamper(path, "UPDATE versions SET kind = 'file'"),
        lambda path: tamper(path, "UPDATE versions SET version = version + 1"),
    ],
    ids=["swapped values", "swapped names", "changed kind", "changed version"],
)
def test_rows_are_bound_to_kind_name_and_version(open_store, store_path: Path, damage) -> None:
    """A sealed value moved to another secret or version no longer decrypts."""
    first, second = SecretId(Kind.TEXT, "a"), SecretId(Kind.TEXT, "b")
    backend = open_store()
    backend.write(first, SecretValue.from_text("value of a"))
    backend.write(second, SecretValue.from_text("value of b"))
    backend.close()
    damage(store_path)
    reopened = open_store()
    listed = reopened.list_ids()
    assert len(listed) == 2
    for secret in listed:
        with pytest.raises(DecryptError, match=secret.name):
            reopened.read(secret)


def test_associated_data_is_unambiguous() -> None:
    """Different (kind, name, version) triples never encode to the same bytes."""
    triples = [
        (Kind.TEXT, "ab", 1), (Kind.TEXT, "a", 1), (Kind.FILE, "ab", 1), (Kind.TEXT, "ab", 2),
        (Kind.TEXT, "a\x00b", 1), (Kind.TEXT, "1", 1), (Kind.TEXT, "", 11),
    ]
    encoded = {associated_data(SecretId(kind, name), version) for kind, name, version in triples}
    assert len(encoded) == len(triples)


def test_delete_writes_a_tombstone_and_restore_brings_the_value_back(open_store, store_path: Path) -> None:
    """delete keeps earlier versions; restore makes the last value current again."""
    backend = open_store()
    backend.write(DB_PASSWORD, SecretValue.from_text("v1"))
    backend.write(DB_PASSWORD, SecretValue.from_text("v2"))
    backend.delete(DB_PASSWORD)
    backend.delete(DB_PASSWORD)  # already deleted: no second tombstone
    assert backend.read(DB_PASSWORD) is None
    assert backend.list_ids() == []
    assert raw_rows(store_path) == [("text", "db_password", 1, 0), ("text", "db_password", 2, 0),
                                    ("text", "db_password", 3, 1)]

    assert backend.restore(DB_PASSWORD) is True
    assert backend.read(DB_PASSWORD) == SecretValue.from_text("v2")
    assert backend.list_ids() == [DB_PASSWORD]
    assert [v.version for v in backend.history(DB_PASSWORD)] == [1, 2, 3, 4]
    assert backend.restore(DB_PASSWORD) is False  # not deleted: nothing to do
    assert len(backend.history(DB_PASSWORD)) == 4


def test_restore_refuses_what_cannot_be_restored(open_store) -> None:
    """restore of a never-stored secret is an error; a read-only manager refuses it."""
    backend = open_store()
    with pytest.raises(BackendError, match="never stored"):
        backend.restore(DB_PASSWORD)
    backend.write(DB_PASSWORD, SecretValue.from_text("v1"))
    backend.delete(DB_PASSWORD)
    with pytest.raises(ReadOnlyManager):
        open_store(read_only=True).restore(DB_PASSWORD)
    assert backend.read(DB_PASSWORD) is None


def test_history_lists_versions_without_values(open_store) -> None:
    """history() gives (version, created_at, deleted) per version, oldest first."""
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    backend = open_store(clock=lambda: moment)
    assert backend.history(DB_PASSWORD) == []
    backend.write(DB_PASSWORD, SecretValue.from_text("v1"))
    backend.write(DB_PASSWORD, SecretValue.from_text("v2"))
    backend.delete(DB_PASSWORD)
    stamp = "2024-05-01T12:00:00.000000+00:00"
    assert backend.history(DB_PASSWORD) == [
        VersionInfo(1, stamp, False), VersionInfo(2, stamp, False), VersionInfo(3, stamp, True)
    ]
    assert backend.history(KEYSTORE) == []


def test_history_timestamps_are_utc_iso(open_store) -> None:
    """Without an injected clock, created_at is the current UTC time in ISO 8601."""
    backend = open_store()
    backend.write(DB_PASSWORD, SecretValue.from_text("v1"))
    (entry,) = backend.history(DB_PASSWORD)
    created = datetime.fromisoformat(entry.created_at)
    assert created.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60


def test_missing_store_reads_empty_and_is_created_by_the_first_write(open_store, store_path: Path) -> None:
    """No file yet: empty reads, refused read-only writes and preflights create nothing."""
    read_only, writable = open_store(read_only=True), open_store()
    assert (read_only.list_ids(), read_only.read(DB_PASSWORD), read_only.history(DB_PASSWORD)) == ([], None, [])
    with pytest.raises(ReadOnlyManager):
        read_only.write(DB_PASSWORD, SecretValue.from_text("v"))
    with pytest.raises(ReadOnlyManager):
        read_only.check_access([DB_PASSWORD], [])
    writable.check_access([DB_PASSWORD], [KEYSTORE])
    writable.delete(DB_PASSWORD)
    assert not store_path.parent.parent.exists()

    writable.write(DB_PASSWORD, SecretValue.from_text("v"))
    assert store_path.is_file()
    assert read_only.read(DB_PASSWORD) == SecretValue.from_text("v")


def test_empty_file_reads_as_an_empty_store(open_store, store_path: Path) -> None:
    """A zero-byte file (e.g. touched by hand) is an empty store that a write initialises."""
    store_path.parent.mkdir(parents=True)
    store_path.touch(mode=0o600)
    assert open_store().list_ids() == []
    open_store().write(DB_PASSWORD, SecretValue.from_text("v"))
    assert open_store().read(DB_PASSWORD) == SecretValue.from_text("v")


def test_invalid_name_is_refused_before_writing(open_store, store_path: Path) -> None:
    """A name no manager can hold is refused with InvalidName, and no file appears."""
    with pytest.raises(InvalidName):
        open_store().write(SecretId(Kind.TEXT, "../escape"), SecretValue.from_text("v"))
    assert not store_path.exists()


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a SQLite database\n" * 100)


def _broken_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:32] = os.urandom(32)
    path.write_bytes(bytes(data))


def _foreign_database(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()


def _newer_format(path: Path) -> None:
    tamper(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_garbage, "not a SQLite database or it is corrupted"),
        (_broken_header, "not a SQLite database or it is corrupted"),
        (_foreign_database, "not a secretshift store"),
        (_newer_format, "store format '99'"),
    ],
    ids=["garbage", "broken header", "foreign database", "newer format"],
)
def test_unusable_file_is_a_backend_error_naming_the_file(open_store, store_path: Path, damage, expected) -> None:
    """A file that is not a store of ours gives one BackendError sentence naming it."""
    first = open_store()
    first.write(DB_PASSWORD, SecretValue.from_text("v"))
    first.close()
    for side_file in store_path.parent.glob("harness.db-*"):
        side_file.unlink()
    damage(store_path)

    backend = open_store()
    for attempt in (backend.list_ids, lambda: backend.read(DB_PASSWORD),
                    lambda: backend.write(KEYSTORE, SecretValue(b"x"))):
        with pytest.raises(BackendError) as caught:
            attempt()
        assert not isinstance(caught.value, DecryptError)
        message = one_sentence(caught.value)
        assert str(store_path) in message and expected in message


def test_concurrent_reads_from_threads(open_store) -> None:
    """Many threads reading (while another writes) all see the right values."""
    backend = open_store()
    values = {SecretId(Kind.FILE, f"f{i}"): SecretValue(os.urandom(64 + i)) for i in range(40)}
    for secret, value in values.items():
        backend.write(secret, value)
    secrets = list(values) * 15
    random.Random(7).shuffle(secrets)

    def read_and_write(index: int) -> bool:
        if index % 50 == 0:
            backend.write(SecretId(Kind.TEXT, f"extra{index}"), SecretValue.from_text("x"))
            return True
        secret = secrets[index]
        return backend.read(secret) == values[secret]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read_and_write, range(len(secrets))))
    assert all(results)
    assert len(backend.list_ids()) == 40 + len(range(0, len(secrets), 50))


def test_each_threads_connection_has_a_small_page_cache(open_store) -> None:
    """An apply reads the store from dozens of threads, one connection each: with SQLite's
    default page cache (2 MiB) per connection, a large store cost an apply at 50,000
    secrets over 150 MB of memory. Every connection's cache is bounded."""
    backend = open_store()
    secret = SecretId(Kind.FILE, "f")
    backend.write(secret, SecretValue(os.urandom(4096)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(lambda _: backend.read(secret) is not None, range(64)))
    sizes = {conn.execute("PRAGMA cache_size").fetchone()[0] for conn in backend._connections}
    assert len(backend._connections) > 1
    assert sizes == {-CACHE_KIB}
    assert CACHE_KIB <= 512


def test_after_a_fork_the_store_opens_connections_of_its_own_and_never_touches_the_parents(open_store) -> None:
    """A worker process (workers.py) must neither use nor close an SQLite connection it
    inherited (closing one can checkpoint the WAL under the parent's feet)."""
    backend = open_store()
    secret = SecretId(Kind.TEXT, "t")
    backend.write(secret, SecretValue(b"before the fork"))
    inherited = list(backend._connections)
    assert inherited
    backend.after_fork(2)
    backend.write(secret, SecretValue(b"after the fork"))
    assert backend.read(secret) == SecretValue(b"after the fork")
    assert backend._connections and not set(map(id, backend._connections)) & set(map(id, inherited))
    assert all(conn.execute("SELECT 1").fetchone() == (1,) for conn in inherited)  # still open


def test_two_processes_write_one_store(open_store, store_path: Path, key: SecretValue) -> None:
    """Another process writing at the same time loses nothing and corrupts nothing."""
    backend = open_store()
    backend.write(DB_PASSWORD, SecretValue.from_text("created first"))
    child_code = textwrap.dedent(
        """
        import base64, os, sys
        from engine.backends.builtin import BuiltinBackend
        from engine.model import Kind, SecretId, SecretValue
        key = SecretValue(base64.b64decode(os.environ["STORE_KEY"]))
        backend = BuiltinBackend("harness", sys.argv[1], key)
        for i in range(150):
            backend.write(SecretId(Kind.TEXT, f"child-{i}"), SecretValue.from_text(f"child {i}"))
        backend.close()
        """
    )
    env = {**os.environ, "STORE_KEY": crypto.encode_key(key.data), "PYTHONPATH": str(ENGINE_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", child_code, str(store_path)], env=env, stderr=subprocess.PIPE)
    for i in range(150):
        backend.write(SecretId(Kind.TEXT, f"parent-{i}"), SecretValue.from_text(f"parent {i}"))
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr.decode()

    names = {secret.name for secret in open_store().list_ids()}
    assert names == {"db_password"} | {f"{who}-{i}" for who in ("parent", "child") for i in range(150)}
    assert backend.read(SecretId(Kind.TEXT, "child-149")) == SecretValue.from_text("child 149")


def test_close_then_use_again_reopens(open_store) -> None:
    """close() releases connections; a later call opens the store again."""
    backend = open_store()
    backend.write(DB_PASSWORD, SecretValue.from_text("v"))
    backend.close()
    assert backend.read(DB_PASSWORD) == SecretValue.from_text("v")


def test_unwritable_store_fails_the_preflight(open_store, store_path: Path, monkeypatch) -> None:
    """When the file or folder may not be written, check_access raises PermissionDenied
    naming the file (os.access stubbed, so the test also runs as root)."""
    open_store().write(DB_PASSWORD, SecretValue.from_text("v"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionDenied) as caught:
        open_store().check_access([KEYSTORE], [])
    assert str(store_path) in one_sentence(caught.value)
    open_store().check_access([], [])  # nothing planned, nothing checked


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_read_only_folder_fails_preflight_and_writes(open_store, store_path: Path) -> None:
    """A real read-only folder: PermissionDenied from the preflight and from write."""
    store_path.parent.mkdir(parents=True)
    store_path.parent.chmod(0o500)
    try:
        with pytest.raises(PermissionDenied, match=str(store_path)):
            open_store().check_access([DB_PASSWORD], [])
        with pytest.raises(PermissionDenied):
            open_store().write(DB_PASSWORD, SecretValue.from_text("v"))
    finally:
        store_path.parent.chmod(0o700)
    assert not store_path.exists()
