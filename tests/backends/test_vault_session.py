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
