"""The Vault client reads proxy settings from the environment once, when it is built,
and still honours them (the per-request re-reading cost a quarter of its CPU)."""

import socket

import pytest

from engine.backends.vault import VaultBackend
from engine.errors import ManagerUnreachable
from engine.model import SecretValue

from conftest import fresh_mount


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend_for(vault, monkeypatch, **env):
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    made = VaultBackend.from_settings("corp_vault", {
        "address": vault.url, "token": SecretValue.from_text(vault.root_token),
        "secret_engine": fresh_mount(vault, 2), "retries": 0})
    for name in env:  # what counts is the environment when the backend was built
        monkeypatch.delenv(name)
    return made


def test_a_proxy_from_the_environment_is_used(vault, monkeypatch):
    backend = backend_for(vault, monkeypatch, HTTP_PROXY=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ManagerUnreachable):
        backend.list_ids()


def test_no_proxy_from_the_environment_is_honoured(vault, monkeypatch):
    backend = backend_for(vault, monkeypatch, HTTP_PROXY=f"http://127.0.0.1:{closed_port()}", NO_PROXY="127.0.0.1")
    assert backend.list_ids() == []


def test_one_vault_folder_named_two_ways_has_a_shared_storage_key(vault):
    def make(address, engine, base):
        return VaultBackend.from_settings("m", {"address": address, "token": SecretValue.from_text("t"),
                                                "secret_engine": engine, "base_path": base})

    port = vault.url.rsplit(":", 1)[1]
    one = make(f"http://127.0.0.1:{port}", "secret", "harness")
    same = make(f"http://localhost:{port}/", "secret/", "/harness/")
    other = make(f"http://127.0.0.1:{port}", "secret", "harness2")
    assert one.storage_keys() & same.storage_keys()
    assert not one.storage_keys() & other.storage_keys()


def test_a_secret_with_fields_besides_value_is_refused_not_truncated(vault):
    import hvac

    from engine.errors import BackendError
    from engine.model import Kind, SecretId

    mount = fresh_mount(vault, 1)
    hvac.Client(url=vault.url, token=vault.root_token).secrets.kv.v1.create_or_update_secret(
        "app/SECRET_TEXT/db", {"value": "pw-canary", "username": "admin-canary"}, mount_point=mount)
    backend = VaultBackend.from_settings("corp_vault", {
        "address": vault.url, "token": SecretValue.from_text(vault.root_token),
        "secret_engine": mount, "base_path": "app"})
    with pytest.raises(BackendError, match="fields besides \"value\" \\('username'\\)") as caught:
        backend.read(SecretId(Kind.TEXT, "db"))
    assert "canary" not in str(caught.value)


def test_restore_undeletes_the_same_kv2_version_and_does_nothing_on_kv1(vault):
    import hvac

    from engine.model import Kind, SecretId

    secret = SecretId(Kind.FILE, "kube")
    mounts = {}
    for version, expected in ((2, True), (1, False)):
        mounts[version] = fresh_mount(vault, version)
        backend = VaultBackend.from_settings("corp_vault", {
            "address": vault.url, "token": SecretValue.from_text(vault.root_token),
            "secret_engine": mounts[version], "base_path": "app"})
        backend.write(secret, SecretValue(b"\x00config"))
        assert backend.restore(secret) is False  # nothing deleted yet
        backend.delete(secret)
        assert backend.restore(secret) is expected
        assert (backend.read(secret) == SecretValue(b"\x00config")) is expected
    metadata = hvac.Client(url=vault.url, token=vault.root_token).secrets.kv.v2.read_secret_metadata(
        "app/CONFIG_FILE/kube", mount_point=mounts[2])["data"]
    assert metadata["current_version"] == 1 and metadata["versions"]["1"]["deletion_time"] == ""
