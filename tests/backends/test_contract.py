"""What every backend must do, whatever manager it speaks to (see conftest.STORES).

Each test runs once per manager type and checks values and states read back from the
store, never only that no exception was raised.
"""

from __future__ import annotations

import os
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.backends.base import Backend
from engine.errors import BackendError, InvalidName, ReadOnlyManager
from engine.model import Kind, SecretId, SecretValue

ALL_BYTES = bytes(range(256))


def text_id(name: str) -> SecretId:
    return SecretId(Kind.TEXT, name)


def file_id(name: str) -> SecretId:
    return SecretId(Kind.FILE, name)


def write_all(backend: Backend, items: dict[SecretId, SecretValue]) -> None:
    """Write many secrets with a few threads (network backends are latency-bound)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: backend.write(*item), items.items()))


def snapshot(backend: Backend) -> dict[SecretId, SecretValue | None]:
    """Everything the manager lists, with values: the state a test compares."""
    return {secret: backend.read(secret) for secret in backend.list_ids()}


ROUND_TRIPS = {
    "text": (text_id("db_password"), SecretValue.from_text("s3cr3t-P@ss")),
    "unicode text": (text_id("greeting"), SecretValue.from_text("héllo wörld ✓ 日本語 🔑\nline two\ttab")),
    "file": (file_id("kubeconfig"), SecretValue(b"apiVersion: v1\nkind: Config\n")),
    "binary with NUL and every byte": (file_id("keystore.p12"), SecretValue(b"\x00\x00PK\x00" + ALL_BYTES + b"\x00")),
    "empty file": (file_id("empty"), SecretValue(b"")),
    "512 KiB file": (file_id("big.bin"), SecretValue(os.urandom(512 * 1024))),
    "name with dots": (text_id("db.prod.password"), SecretValue.from_text("dots")),
    "name with dashes": (file_id("tls-cert-chain"), SecretValue(b"-----BEGIN CERTIFICATE-----\n")),
    "name with spaces": (text_id("my api token"), SecretValue.from_text("spaces")),
    "name in folders": (text_id("prod/payments/db-password"), SecretValue.from_text("in a folder")),
    "file name in folders": (file_id("shared/tls/ca.pem"), SecretValue(b"\x00chain\xff")),
}


# What each manager's own rules refuse among the round-trip cases (AWS: no empty value,
# 64 KiB at most, no spaces in names). Everything else must round-trip everywhere.
REFUSED_BY = {"aws_secrets_manager": {"empty file", "512 KiB file", "name with spaces"}}


def refusal(backend: Backend, secret: SecretId, value: SecretValue) -> str | None:
    """Why this manager's rules refuse the secret (checked without I/O), or None."""
    return backend.name_problem(secret) or backend.size_problem(secret, len(value))


def test_each_manager_refuses_exactly_what_its_rules_say(backend: Backend) -> None:
    """The pure name/size checks refuse only what the manager really cannot hold."""
    refused = {case for case, (secret, value) in ROUND_TRIPS.items() if refusal(backend, secret, value)}
    assert refused == REFUSED_BY.get(backend.type_name, set())


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_written_value_reads_back_byte_for_byte(backend: Backend, case: str) -> None:
    """A written value reads back exactly, and the secret is listed under its kind; a value
    the manager's rules refuse is refused by write too, before anything is stored."""
    secret, value = ROUND_TRIPS[case]
    if refusal(backend, secret, value):
        with pytest.raises((BackendError, InvalidName)):
            backend.write(secret, value)
        assert backend.list_ids() == []
        return
    backend.write(secret, value)
    got = backend.read(secret)
    assert got is not None
    assert got.data == value.data
    assert backend.list_ids() == [secret]


def test_every_round_trip_case_coexists_in_one_store(backend: Backend) -> None:
    """All the round-trip values the manager accepts, stored side by side, keep their own values."""
    expected = {s: v for s, v in ROUND_TRIPS.values() if not refusal(backend, s, v)}
    for secret, value in expected.items():
        backend.write(secret, value)
    assert snapshot(backend) == expected


def test_same_name_as_text_and_file_are_independent(backend: Backend) -> None:
    """Text and file secrets of one name are two secrets: own values, own deletes."""
    backend.write(text_id("shared"), SecretValue.from_text("as text"))
    backend.write(file_id("shared"), SecretValue(b"as\x00file"))
    assert backend.read(text_id("shared")) == SecretValue.from_text("as text")
    assert backend.read(file_id("shared")) == SecretValue(b"as\x00file")
    assert set(backend.list_ids()) == {text_id("shared"), file_id("shared")}

    backend.delete(text_id("shared"))
    assert backend.read(text_id("shared")) is None
    assert backend.read(file_id("shared")) == SecretValue(b"as\x00file")
    assert backend.list_ids() == [file_id("shared")]


def test_a_name_and_a_folder_of_that_name_are_two_secrets(backend: Backend) -> None:
    """`team` and `team/db` coexist (Vault keeps `team` beside the folder `team/`), and
    deleting one leaves the other."""
    write_all(backend, {text_id("team"): SecretValue.from_text("the team secret"),
                        text_id("team/db"): SecretValue.from_text("in the folder"),
                        text_id("team/db/replica"): SecretValue.from_text("deeper")})
    assert backend.list_ids() == [text_id("team"), text_id("team/db"), text_id("team/db/replica")]
    backend.delete(text_id("team/db"))
    assert backend.list_ids() == [text_id("team"), text_id("team/db/replica")]
    assert backend.read(text_id("team")) == SecretValue.from_text("the team secret")
    assert backend.read(text_id("team/db/replica")) == SecretValue.from_text("deeper")


def test_overwrite_reads_back_the_new_value(backend: Backend) -> None:
    """Writing an existing secret replaces its value; it is still listed once."""
    secret = text_id("rotated")
    backend.write(secret, SecretValue.from_text("old value"))
    backend.write(secret, SecretValue.from_text("new value"))
    assert backend.read(secret) == SecretValue.from_text("new value")
    assert backend.list_ids() == [secret]


def test_deleted_secret_reads_none_and_is_not_listed(backend: Backend) -> None:
    """After delete the secret is gone from read and list; other secrets stay."""
    backend.write(text_id("gone"), SecretValue.from_text("bye"))
    backend.write(text_id("kept"), SecretValue.from_text("stay"))
    backend.delete(text_id("gone"))
    assert backend.read(text_id("gone")) is None
    assert backend.list_ids() == [text_id("kept")]
    assert backend.read(text_id("kept")) == SecretValue.from_text("stay")


def test_deleted_secret_can_be_written_again(backend: Backend) -> None:
    """A name freed by delete takes a new value; AWS keeps a deleted name reserved for its
    recovery window, so there the write is refused with how to restore it."""
    secret = file_id("phoenix")
    backend.write(secret, SecretValue(b"first"))
    backend.delete(secret)
    if backend.type_name == "aws_secrets_manager":
        with pytest.raises(BackendError, match="restore"):
            backend.write(secret, SecretValue(b"second"))
        assert backend.read(secret) is None
        return
    backend.write(secret, SecretValue(b"second"))
    assert backend.read(secret) == SecretValue(b"second")
    assert backend.list_ids() == [secret]


def test_deleting_a_missing_secret_is_harmless(backend: Backend) -> None:
    """Deleting what is not there (in an empty store, or deleted twice) changes nothing."""
    backend.delete(text_id("never-existed"))
    assert backend.list_ids() == []
    backend.write(text_id("kept"), SecretValue.from_text("stay"))
    backend.delete(file_id("kept"))
    backend.delete(text_id("never-existed"))
    assert snapshot(backend) == {text_id("kept"): SecretValue.from_text("stay")}
    backend.delete(text_id("kept"))
    backend.delete(text_id("kept"))
    assert backend.list_ids() == []


def test_read_of_missing_secret_is_none(backend: Backend) -> None:
    """Reading an unknown secret gives None, in an empty store and beside other secrets."""
    assert backend.read(text_id("missing")) is None
    assert backend.list_ids() == []
    backend.write(text_id("present"), SecretValue.from_text("here"))
    assert backend.read(file_id("present")) is None
    assert backend.read(text_id("missing")) is None


def test_lists_two_thousand_secrets(backend: Backend) -> None:
    """Listing returns every secret exactly once, across kinds, beyond any page size."""
    items = {
        (text_id if i % 2 else file_id)(f"bulk-{i:04d}"): SecretValue.from_text(f"value {i}")
        for i in range(2000)
    }
    write_all(backend, items)
    listed = backend.list_ids()
    assert len(listed) == 2000
    assert set(listed) == set(items)
    for secret in (file_id("bulk-0000"), text_id("bulk-1001"), text_id("bulk-1999")):
        assert backend.read(secret) == items[secret]


def test_read_only_manager_refuses_writes_and_deletes_and_changes_nothing(make_backend) -> None:
    """read_only: write, delete and the preflight raise ReadOnlyManager; reads still work."""
    writable = make_backend()
    writable.write(text_id("db_password"), SecretValue.from_text("original"))
    before = snapshot(writable)
    read_only = make_backend(read_only=True)

    with pytest.raises(ReadOnlyManager) as write_error:
        read_only.write(text_id("db_password"), SecretValue.from_text("changed"))
    with pytest.raises(ReadOnlyManager):
        read_only.write(file_id("new"), SecretValue(b"new"))
    with pytest.raises(ReadOnlyManager):
        read_only.delete(text_id("db_password"))
    with pytest.raises(ReadOnlyManager) as preflight_error:
        read_only.check_access([file_id("first"), text_id("second")], [text_id("db_password")])

    assert "db_password" in str(write_error.value)
    assert "first" in str(preflight_error.value)
    assert snapshot(read_only) == before
    assert snapshot(writable) == before
    read_only.check_access([], [])  # nothing planned: nothing to refuse


def test_preflight_of_a_writable_manager_allows_writes_and_deletes(backend: Backend) -> None:
    """check_access passes for a writable manager and writes nothing."""
    backend.write(text_id("old"), SecretValue.from_text("v"))
    assert backend.check_access([text_id("new"), file_id("new")], [text_id("old")]) is None
    assert snapshot(backend) == {text_id("old"): SecretValue.from_text("v")}


def test_location_is_stable_and_distinct_per_kind_and_name(make_backend) -> None:
    """location() is the same across calls and instances, and differs per kind and name."""
    first, second = make_backend(), make_backend(read_only=True)
    locations = {
        secret: first.location(secret)
        for secret in (text_id("db_password"), file_id("db_password"), text_id("other"))
    }
    assert len(set(locations.values())) == 3
    for secret, where in locations.items():
        assert isinstance(where, str) and secret.name in where
        assert first.location(secret) == where
        assert second.location(secret) == where


def test_errors_never_contain_values(make_backend) -> None:
    """A refused write names the secret, and no rendering of the error shows the value."""
    canary = "CANARY-7f3a9c-value-must-not-leak"
    read_only = make_backend(read_only=True)
    with pytest.raises(ReadOnlyManager) as caught:
        read_only.write(text_id("leaky"), SecretValue.from_text(canary))
    error = caught.value
    rendered = [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    assert "leaky" in str(error)
    assert all(canary not in text for text in rendered)
    assert canary not in repr(read_only)
