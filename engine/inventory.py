"""Refresh: what every manager holds right now, as fingerprints, never values.

Reads run concurrently, bounded per manager. The result is plain data the pure planner
works on. Values are read, fingerprinted and dropped at once, so memory does not grow
with the size of the values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from engine.backends.base import Backend
from engine.model import InventoryEntry, SecretId

DEFAULT_PARALLELISM = 8


@dataclass(frozen=True)
class Inventory:
    """For each manager id, the secrets it holds."""

    holdings: Mapping[str, Mapping[SecretId, InventoryEntry]]

    def get(self, manager: str, secret: SecretId) -> InventoryEntry | None:
        """The entry for `secret` in `manager`, or None."""
        return self.holdings.get(manager, {}).get(secret)

    def holders(self, secret: SecretId) -> list[str]:
        """The managers holding `secret`, in config order."""
        return [m for m, held in self.holdings.items() if secret in held]

    def ids(self, manager: str) -> list[SecretId]:
        """The secrets `manager` holds, sorted."""
        return sorted(self.holdings.get(manager, {}))


def refresh(
    backends: Mapping[str, Backend],
    fingerprint: Callable[[bytes], str],
    parallelism: Mapping[str, int] | None = None,
) -> Inventory:
    """Read every manager's secrets and fingerprint them (values are not kept)."""
    holdings = {}
    for manager_id, backend in backends.items():
        workers = (parallelism or {}).get(manager_id, DEFAULT_PARALLELISM)
        holdings[manager_id] = read_entries(backend, backend.list_ids(), fingerprint, workers)
    return Inventory(holdings)


def read_entries(
    backend: Backend,
    secrets: Iterable[SecretId],
    fingerprint: Callable[[bytes], str],
    workers: int = DEFAULT_PARALLELISM,
) -> dict[SecretId, InventoryEntry]:
    """Entries for the given secrets of one manager; a secret gone meanwhile is left out."""

    def entry(secret: SecretId) -> InventoryEntry | None:
        value = backend.read(secret)
        if value is None:
            return None
        return InventoryEntry(secret, fingerprint(value.data), len(value), backend.location(secret))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        found = [e for e in pool.map(entry, sorted(secrets)) if e is not None]
    return {e.id: e for e in found}
