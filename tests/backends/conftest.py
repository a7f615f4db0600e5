"""Fixtures that run the backend contract suite against every manager type.

`STORES` maps a backend id (the pytest parameter) to a factory. A factory receives the
pytest `request` and a fresh temporary folder, prepares one empty store (a file, a
server mount...) and returns a `make(read_only=False) -> Backend` function; every
backend it makes reaches that same store, so a read-only backend sees what a writable
one wrote. Adding a manager type to the suite is one factory and one entry in STORES.
"""

from __future__ import annotations

import itertools
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


_aws_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def moto_server():
    """moto's AWS server on 127.0.0.1 for the whole session, with dummy credentials in the
    environment (the backend takes credentials only from the standard AWS chain)."""
    from motoserver import DUMMY_CREDENTIALS, MotoServer

    with pytest.MonkeyPatch.context() as env:
        for name, value in DUMMY_CREDENTIALS.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/secretshift-tests/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/secretshift-tests/aws-credentials")
        server = MotoServer().start()
        yield server
        server.stop()


def aws_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    """A fresh name prefix on the session's moto server, so tests never see each other's secrets."""
    from engine.backends.aws import AwsSecretsManagerBackend
    from motoserver import REGION

    server = request.getfixturevalue("moto_server")
    settings = {"endpoint_url": server.url, "region": REGION,
                "prefix": f"contract-{next(_aws_prefixes):04d}/"}

    def make(read_only: bool = False) -> Backend:
        return AwsSecretsManagerBackend.from_settings("aws", {**settings, "read_only": read_only})

    return make


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], MakeBackend]] = {
    "aws": aws_store,
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
