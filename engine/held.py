"""Values the staleness pass read, kept for the actions that will write them.

apply first reads every source and target to check that the plan is still current
(nothing may be written before that check is over), then carries out the actions. Without
this module each action reads source and target a second time. Here the staleness pass
offers what it read, and the values are kept while they fit a byte budget; an action
finds its values here (and takes them, freeing the memory) or reads again as before.
So memory grows with the budget, then with the actions in flight, never with the total
size of all values. Values stay in SecretValue (masked repr) and are never written out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from engine.model import SecretValue

DEFAULT_BUDGET = 32 * 1024 * 1024  # bytes of values held between the two passes
_OVERHEAD = 200  # rough bytes of bookkeeping per held action, counted against the budget


@dataclass(frozen=True, slots=True)
class Held:
    """What the staleness pass found for one action.

    `target_version` is the manager's version token for the target as read (see
    Backend.read_versioned); None when the manager cannot make a conditional write.
    """

    source: SecretValue | None
    target: SecretValue | None
    target_version: object | None = None

    @property
    def size(self) -> int:
        """Bytes of values held, plus bookkeeping."""
        return _OVERHEAD + sum(len(v) for v in (self.source, self.target) if v is not None)


class HeldValues:
    """A thread-safe store of Held by action index, within `budget` bytes."""

    def __init__(self, budget: int = DEFAULT_BUDGET):
        self.budget = budget
        self.used = 0
        self.refused = 0  # offers that did not fit (those actions read again)
        self._held: dict[int, Held] = {}
        self._lock = threading.Lock()

    def offer(self, index: int, held: Held) -> bool:
        """Keep `held` for action `index` if it fits the budget; True when kept."""
        size = held.size
        with self._lock:
            if self.used + size > self.budget:
                self.refused += 1
                return False
            self._held[index] = held
            self.used += size
            return True

    def take(self, index: int) -> Held | None:
        """The values kept for action `index` (once: they are released)."""
        with self._lock:
            held = self._held.pop(index, None)
            if held is not None:
                self.used -= held.size
            return held

    def __len__(self) -> int:
        return len(self._held)
