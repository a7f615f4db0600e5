"""Refresh: what every manager holds right now, as fingerprints, never values.

Listing and reads run concurrently, bounded per manager. The result is plain data the
pure planner works on. Values are read, fingerprinted and dropped at once, so memory does not grow
with the size of the values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from engine.backends.base import Backend
from engine.managers import parallel_map
from engine.model import InventoryEntry, SecretId

DEFAULT_PARALLELISM = 8


@dataclass(frozen=True)
class Inventory:
    """What each manager holds: every secret it lists, and an entry (fingerprint, size,
    location) for each secret whose value was read.

    Refresh reads only the values the plan depends on (a secret held in one place that no
    placement moves needs no read), so `get` on a listed secret that was not read is a
    programming error, not "absent".
    """

    holdings: Mapping[str, Mapping[SecretId, InventoryEntry]]
    listed: Mapping[str, frozenset[SecretId]] | None = None

    def _listed(self, manager: str):
        if self.listed is None:
            return self.holdings.get(manager, {}).keys()
        return self.listed.get(manager, frozenset())

    def get(self, manager: str, secret: SecretId) -> InventoryEntry | None:
        """The entry for `secret` in `manager`, or None when the manager does not hold it."""
        entry = self.holdings.get(manager, {}).get(secret)
        if entry is None and secret in self._listed(manager):
            raise LookupError(f"{secret} in {manager!r} was listed but its value was not read")
        return entry

    def holders(self, secret: SecretId) -> list[str]:
        """The managers holding `secret`, in config order."""
        managers = self.listed if self.listed is not None else self.holdings
        return [m for m in managers if secret in self._listed(m)]

    def ids(self, manager: str) -> list[SecretId]:
        """The secrets `manager` holds, sorted."""
        return sorted(self._listed(manager))


def refresh(
    backends: Mapping[str, Backend],
    fingerprint: Callable[[bytes], str],
    reads_needed: Callable[[Mapping[str, frozenset[SecretId]]], Mapping[str, set[SecretId]]],
) -> Inventory:
    """List every manager, then read and fingerprint the values `reads_needed` asks for
    (given the listing); managers are refreshed at the same time, each within its own
    parallelism. Values are dropped as soon as they are fingerprinted."""
    names = list(backends)
    listing = dict(zip(names, parallel_map(lambda m: frozenset(backends[m].list_ids()), names, len(names))))
    wanted = reads_needed(listing)

    def read(manager: str) -> dict[SecretId, InventoryEntry]:
        backend = backends[manager]
        return read_entries(backend, wanted.get(manager, ()), fingerprint, backend.parallelism)

    holdings = dict(zip(names, parallel_map(read, names, len(names))))
    # a listed secret that reads as absent (e.g. its latest Vault version is soft-deleted) is not held
    listed = {m: frozenset(s for s in listing[m] if s in holdings[m] or s not in wanted.get(m, ()))
              for m in names}
    return Inventory(holdings, listed)


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

    found = parallel_map(entry, sorted(secrets), workers)
    return {e.id: e for e in found if e is not None}
