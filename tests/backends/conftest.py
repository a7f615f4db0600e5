"""Fixtures that run the backend contract suite against every manager type.

`STORES` maps a backend id (the pytest parameter) to a factory. A factory receives the
pytest `request` and a fresh temporary folder, prepares one empty store (a file, a
server mount...) and returns a `make(read_only=False) -> Backend` function; every
backend it makes reaches that same store, so a read-only backend sees what a writable
one wrote. Adding a manager type to the suite is one factory and one entry in STORES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import crypto
from engine.backends.base import Backend
from engine.backends.builtin import BuiltinBackend
from engine.backends.vault import VaultBackend
from engine.model import SecretValue

from conftest import fresh_mount

MakeBackend = Callable[..., Backend]


def builtin_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    """A builtin store file (not created yet) under the test's temporary folder."""
    settings = {"path": tmp_path / "stores" / "harness.db", "key": SecretValue(crypto.new_key())}

    def make(read_only: bool = False) -> Backend:
        return BuiltinBackend.from_settings("harness", {**settings, "read_only": read_only})

    return make


def vault_store(version: int) -> Callable[[pytest.FixtureRequest, Path], MakeBackend]:
    """A fresh KV mount of that version on the session's Vault, base path `harness`."""

    def factory(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
        vault = request.getfixturevalue("vault")
        settings = {
            "address": vault.url,
            "token": SecretValue.from_text(vault.root_token),
            "secret_engine": fresh_mount(vault, version),
            "base_path": "harness",
            "kv_version": "auto",
        }

        def make(read_only: bool = False) -> Backend:
            return VaultBackend.from_settings("corp_vault", {**settings, "read_only": read_only})

        return make

    return factory


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], MakeBackend]] = {
    "builtin": builtin_store,
    "vault_kv1": vault_store(1),
    "vault_kv2": vault_store(2),
}


@pytest.fixture(params=sorted(STORES))
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBackend]:
    """`make_backend(read_only=False)`: a backend over this test's one store; closed after."""
    factory = STORES[request.param](request, tmp_path)
    made: list[Backend] = []

    def make(read_only: bool = False) -> Backend:
        backend = factory(read_only=read_only)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: MakeBackend) -> Backend:
    """A writable backend over an empty store, once per manager type."""
    return make_backend()
