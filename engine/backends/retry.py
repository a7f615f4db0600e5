"""Bounded retries with exponential backoff and full jitter, for transient failures.

Transient means the same request may well succeed soon: rate limiting (429), a sealed
or standby Vault (503), a server error (5xx), a dropped connection or a timeout. A
refusal (403, 400) or an unreachable address is final and is never retried here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: `attempts` in all, delays doubling from
    `base_delay` up to `max_delay`, each drawn uniformly below that bound."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """The pause before retry number `retry` (1-based)."""
        return rng() * min(self.max_delay, self.base_delay * 2 ** (retry - 1))



def with_retries(
    request: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """Run `request`; on TransientError wait and try again, at most `policy.attempts` times."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return request()
        except TransientError as error:
            if attempt == policy.attempts:
                tries = f"{attempt} attempt{'s' if attempt != 1 else ''}"
                raise TransientError(error.manager, f"{error.detail} (gave up after {tries})",
                                     error.location) from error
            pause = policy.delay(attempt)
            if on_retry:
                on_retry(error, pause)
            sleep(pause)
    raise AssertionError("unreachable")
