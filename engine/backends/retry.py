"""Bounded retries with exponential backoff and full jitter, for transient failures.

Transient means the same request may well succeed soon: rate limiting (429), a sealed
or standby Vault (503), a server error (5xx), a dropped connection or a timeout. A
refusal (403, 400) or an unreachable address is final and is never retried here. A
rate limit also lowers how many requests are sent at once (AdaptiveLimit).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import RateLimited, TransientError

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



class AdaptiveLimit:
    """How many requests may be in flight to one manager: `maximum` at first, halved when
    the manager rate-limits (429), then one more after as many successes in a row as the
    current limit (additive increase, multiplicative decrease, as TCP does); never below
    1 nor above `maximum`. Rate-limit answers to requests sent before the last decrease
    do not lower it again: one burst of 429s halves it once, not once per answer."""

    def __init__(self, maximum: int):
        self.maximum = max(1, int(maximum))
        self.limit = self.lowest = self.maximum
        self.decreases = 0
        self._in_flight = self._streak = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot; returns the decrease count when it was taken."""
        with self._cond:
            while self._in_flight >= self.limit:
                self._cond.wait()
            self._in_flight += 1
            return self.decreases

    def release(self, taken: int, rate_limited: bool) -> None:
        """Free the slot taken at `taken`, saying whether the manager rate-limited it."""
        with self._cond:
            self._in_flight -= 1
            if rate_limited:
                if taken == self.decreases:
                    self.limit = max(1, self.limit // 2)
                    self.lowest = min(self.lowest, self.limit)
                    self.decreases += 1
                self._streak = 0
            elif self.limit < self.maximum:
                self._streak += 1
                if self._streak >= self.limit:
                    self.limit += 1
                    self._streak = 0
                    self._cond.notify()
            self._cond.notify()


def with_retries(
    request: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[TransientError, float], None] | None = None,
    limit: AdaptiveLimit | None = None,
) -> T:
    """Run `request`; on TransientError wait and try again, at most `policy.attempts` times.
    With `limit`, each attempt takes one of its slots (and a 429 lowers it)."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return _attempt(request, limit)
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


def _attempt(request: Callable[[], T], limit: AdaptiveLimit | None) -> T:
    if limit is None:
        return request()
    taken = limit.acquire()
    rate_limited = False
    try:
        return request()
    except RateLimited:
        rate_limited = True
        raise
    finally:
        limit.release(taken, rate_limited)
