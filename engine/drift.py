"""PURE: drift, what changed outside secretshift since the last apply.

Compares the state file (state.py: what secretshift placed, and what each manager it
wrote into listed afterwards) with a refreshed inventory:
- changed: a secret secretshift placed holds a value with another fingerprint;
- deleted: a secret secretshift placed is no longer listed by its manager;
- added: a manager secretshift wrote into lists a secret it did not list after the apply.
Only managers the config still defines are compared. No I/O: refresh reads the values
`reads_needed` names, and `find_drift` works on the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from engine.inventory import Inventory
from engine.model import SecretId
from engine.plan import Drift
from engine.state import State


class Locations(Protocol):
    """Where a manager keeps a secret (backends satisfy it)."""

    def location(self, secret: SecretId) -> str: ...


def reads_needed(state: State, listing: Mapping[str, frozenset[SecretId]]) -> dict[str, set[SecretId]]:
    """The values refresh must read (fingerprint) to tell whether they changed: the
    secrets secretshift placed that their manager still lists. Nothing else is read."""
    needed: dict[str, set[SecretId]] = {m: set() for m in listing}
    for manager, secret in state.secrets:
        if secret in listing.get(manager, frozenset()):
            needed[manager].add(secret)
    return needed


def find_drift(state: State, inventory: Inventory, managers: Mapping[str, Locations],
               compare_fingerprints: bool = True) -> tuple[Drift, ...]:
    """Every drifted secret, sorted by manager, secret and change. `managers` are the
    configured ones; `compare_fingerprints` is False when the state was recorded with
    another fingerprint key (its fingerprints cannot be compared)."""
    found = []
    for (manager, secret), placed in state.secrets.items():
        if manager not in managers:
            continue
        entry = inventory.get(manager, secret)
        if entry is None:
            found.append(Drift(manager, secret, "deleted", placed.location))
        elif compare_fingerprints and entry.fingerprint != placed.fingerprint:
            found.append(Drift(manager, secret, "changed", entry.location))
    for manager, recorded in state.listings.items():
        if manager not in managers:
            continue
        for secret in inventory.ids(manager):
            if secret not in recorded and (manager, secret) not in state.secrets:
                found.append(Drift(manager, secret, "added", managers[manager].location(secret)))
    return tuple(sorted(found, key=lambda d: (d.manager, d.id, d.change)))


def merge_reads(*needs: Mapping[str, set[SecretId]]) -> dict[str, set[SecretId]]:
    """The union, per manager, of several `reads_needed` answers."""
    merged: dict[str, set[SecretId]] = {}
    for need in needs:
        for manager, secrets in need.items():
            merged.setdefault(manager, set()).update(secrets)
    return merged
