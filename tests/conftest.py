"""Shared fixtures: the Vault the tests talk to.

By default that is `vaultsim.VaultServer`, a Vault-API server started on 127.0.0.1.
When VAULT_ADDR and VAULT_TOKEN are set, the suites that take the `vault` fixture run
against that real Vault instead (each test enables its own fresh KV mount there).
"""

from __future__ import annotations

import itertools
import os

import hvac
import pytest

from vaultsim import VaultServer

_mount_ids = itertools.count(1)


class RealVault:
    """The few VaultServer methods the suites use, done through hvac on a real Vault."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.root_token = token
        self._client = hvac.Client(url=url, token=token)
        self._mounts: list[str] = []

    def enable_kv(self, path: str, version: int = 2, namespace: str = "") -> None:
        self._client.sys.enable_secrets_engine("kv", path=path, options={"version": str(version)})
        self._mounts.append(path)

    def set_policy(self, name: str, text: str, namespace: str = "") -> None:
        self._client.sys.create_or_update_acl_policy(name=name, policy=text)

    def create_token(self, policies=None, namespace: str = "", **extra) -> str:
        return self._client.auth.token.create(policies=policies or [])["auth"]["client_token"]

    def stop(self) -> None:
        for mount in self._mounts:
            self._client.sys.disable_secrets_engine(mount)


@pytest.fixture(scope="session")
def vault():
    """A running Vault (the simulator, or a real one from VAULT_ADDR/VAULT_TOKEN)."""
    if os.environ.get("VAULT_ADDR") and os.environ.get("VAULT_TOKEN"):
        server = RealVault(os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"])
    else:
        server = VaultServer(root_token="root").start()
    yield server
    server.stop()


def fresh_mount(vault, version: int) -> str:
    """Enable a new, empty KV mount of that version and return its path."""
    mount = f"kv{version}-{next(_mount_ids)}"
    vault.enable_kv(mount, version=version)
    return mount
