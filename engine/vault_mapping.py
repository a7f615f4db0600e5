"""Config side of Vault secrets outside the Harness layout (`vault_path`, `vault_key`).

A `secrets:` entry may say where its secret lives in a Vault manager it names (`manager`
or `from`) when that is not the Harness layout: `vault_path` (relative to the manager's
base_path) and optionally `vault_key` (one key of it; without it, the whole secret as a
JSON object). See engine/backends/vault_keys.py for how such secrets are read and written.
This module checks those entries and hands each Vault manager its mappings.
"""

from __future__ import annotations

from typing import Any

KeyPath = tuple


def check_entries(entries: list[tuple[KeyPath, dict]], managers: dict) -> list[tuple[KeyPath, str]]:
    """(key path, message) for each misused vault_path/vault_key in `secrets:` entries."""
    found = []
    claimed: dict[tuple, str] = {}
    for base, entry in entries:
        path, where = entry.get("vault_path"), f"secrets[{base[1]}]"
        if not isinstance(path, str):
            if isinstance(entry.get("vault_key"), str):
                found.append((base + ("vault_key",), (f"{where}.vault_key needs vault_path (the Vault "
                              "secret the key is in)")))
            continue
        vaults = _vault_managers(entry, managers)
        if not vaults:
            found.append((base + ("vault_path",), (f"{where}.vault_path needs a vault manager in "
                          "`manager` or `from` (the Vault the path is in)")))
        if entry.get("kind", "text") != "text":
            found.append((base + ("kind",), (f"{where}: a secret mapped with vault_path is a text "
                          "secret (kind: text)")))
        if not path.strip("/") or any(p in (".", "..") for p in path.split("/")):
            found.append((base + ("vault_path",), (f"{where}.vault_path must name a secret, without "
                          "'.' or '..' segments")))
        for manager in vaults:
            spot = (manager, path.strip("/"), entry.get("vault_key"))
            if spot in claimed:
                found.append((base + ("vault_path",), (f"{where} maps the same Vault secret"
                              f"{' key' if spot[2] is not None else ''} as {claimed[spot]}")))
            claimed.setdefault(spot, where)
    return found


def mapped_for(secrets: Any, manager_id: str, managers: dict) -> list[dict]:
    """The mappings a vault manager serves: {name, path, key} of every entry naming it."""
    mapped = []
    for entry in secrets:
        if entry.vault_path and manager_id in (entry.manager, entry.source) and managers[manager_id].type == "vault":
            mapped.append({"name": entry.name, "path": entry.vault_path, "key": entry.vault_key})
    return mapped


def _vault_managers(entry: dict, managers: dict) -> list[str]:
    named = dict.fromkeys(entry.get(k) for k in ("manager", "from"))  # once, when `from` repeats `manager`
    return [m for m in named if isinstance(m, str) and isinstance(managers.get(m), dict)
            and managers[m].get("type") == "vault"]
