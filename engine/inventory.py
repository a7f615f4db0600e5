"""Refresh: what every manager holds right now, as fingerprints, never values.

Listing and reads run concurrently, bounded per manager. The result is plain data the
pure planner works on. Values are read, fingerprinted and dropped at once, so memory does not grow
with the size of the values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from engine.backends.base import Backend
from engine.managers import parallel_map
from engine.model import InventoryEntry, SecretId, Unavailable

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
    # per manager: secrets it keeps without a current value (soft-deleted, destroyed,
    # pending deletion, no value); never in `holdings` nor `listed`
    unavailable: Mapping[str, Mapping[SecretId, Unavailable]] = field(default_factory=dict)

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

    def unavailable_in(self, manager: str, secret: SecretId) -> Unavailable | None:
        """Why `manager` keeps `secret` without a current value, or None."""
        return self.unavailable.get(manager, {}).get(secret)

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
    parallelism. Values are dropped as soon as they are fingerprinted. Secrets a manager
    keeps without a current value (listed as such, or found so when read) are recorded in
    `Inventory.unavailable` instead."""
    names = list(backends)

    def list_one(manager: str) -> tuple[frozenset[SecretId], dict[SecretId, Unavailable]]:
        backend = backends[manager]
        return frozenset(backend.list_ids()), {u.id: u for u in backend.list_unavailable()}

    listings = dict(zip(names, parallel_map(list_one, names, len(names))))
    listing = {m: ids for m, (ids, _) in listings.items()}
    wanted = reads_needed(listing)

    def read(manager: str) -> tuple[dict[SecretId, InventoryEntry], dict[SecretId, Unavailable]]:
        backend = backends[manager]
        return read_states(backend, wanted.get(manager, ()), fingerprint, backend.parallelism)

    results = dict(zip(names, parallel_map(read, names, len(names))))
    holdings = {m: results[m][0] for m in names}
    unavailable = {m: {**listings[m][1], **results[m][1]} for m in names}
    # a listed secret that reads as absent or unavailable (e.g. its latest Vault version is
    # soft-deleted) is not held
    listed = {m: frozenset(s for s in listing[m] if s in holdings[m] or s not in wanted.get(m, ()))
              for m in names}
    return Inventory(holdings, listed, unavailable)


def read_states(
    backend: Backend,
    secrets: Iterable[SecretId],
    fingerprint: Callable[[bytes], str],
    workers: int = DEFAULT_PARALLELISM,
) -> tuple[dict[SecretId, InventoryEntry], dict[SecretId, Unavailable]]:
    """Entries for the given secrets of one manager, and the ones it keeps without a
    current value; a secret gone meanwhile is in neither. Reads go `read_batch_size` at
    a time (one BatchGetSecretValue for 20 AWS secrets), up to `workers` batches at once."""
    ordered = sorted(secrets)
    size = max(1, backend.read_batch_size)
    batches = [ordered[i:i + size] for i in range(0, len(ordered), size)]

    def read_batch(batch: list[SecretId]) -> list[InventoryEntry | Unavailable]:
        found = []
        for secret, value in backend.read_many(batch):
            if isinstance(value, Unavailable):
                found.append(value)
            elif value is not None:
                found.append(InventoryEntry(secret, fingerprint(value.data), len(value), backend.location(secret)))
        return found

    entries, unavailable = {}, {}
    for batch in parallel_map(read_batch, batches, workers):
        for item in batch:
            (unavailable if isinstance(item, Unavailable) else entries)[item.id] = item
    return entries, unavailable
