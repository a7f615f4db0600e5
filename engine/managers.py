"""The backends of one run, each behind a bound on the requests it has in flight.

Apply and rollback run many actions at once; each action talks to two managers. A
semaphore per manager (sized to that manager's `parallelism`) keeps every manager within
its own limit however the work is spread over threads, so a busy Vault is never sent
more concurrent requests than its connection pool holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from engine.backends.base import Backend
from engine.model import SecretId, SecretValue

T = TypeVar("T")
R = TypeVar("R")


MAX_WORKERS = 256  # threads of one run, however many managers the config has


class Managers:
    """Bounded access to a run's backends by manager id."""

    def __init__(self, backends: Mapping[str, Backend]):
        self.backends = dict(backends)
        self._slots = {m: threading.BoundedSemaphore(b.parallelism) for m, b in self.backends.items()}

    def after_fork(self, processes: int) -> None:
        """In a worker process just forked, one of `processes` sharing the managers: each
        backend keeps to its share of its parallelism, with connections of its own."""
        for backend in self.backends.values():
            backend.after_fork(processes)
        self._slots = {m: threading.BoundedSemaphore(b.parallelism) for m, b in self.backends.items()}

    def __getitem__(self, manager: str) -> Backend:
        return self.backends[manager]

    def get(self, manager: str | None) -> Backend | None:
        """The backend, or None for no manager."""
        return self.backends.get(manager) if manager else None

    @property
    def workers(self) -> int:
        """How many actions may usefully run at once: every manager's parallelism together
        (an action uses one manager at a time, so with the widest one's alone a Vault ->
        Vault copy kept each side half busy); each manager's own slots still bound it."""
        return min(MAX_WORKERS, max(1, sum(b.parallelism for b in self.backends.values())))

    def read(self, manager: str, secret: SecretId) -> SecretValue | None:
        with self._slots[manager]:
            return self.backends[manager].read(secret)

    def write(self, manager: str, secret: SecretId, value: SecretValue) -> None:
        with self._slots[manager]:
            self.backends[manager].write(secret, value)

    def read_versioned(self, manager: str, secret: SecretId) -> tuple[SecretValue | None, object | None]:
        with self._slots[manager]:
            return self.backends[manager].read_versioned(secret)

    def write_if_version(self, manager: str, secret: SecretId, value: SecretValue, version: object) -> bool:
        with self._slots[manager]:
            return self.backends[manager].write_if_version(secret, value, version)

    def delete(self, manager: str, secret: SecretId) -> None:
        with self._slots[manager]:
            self.backends[manager].delete(secret)

    def restore(self, manager: str, secret: SecretId) -> bool:
        with self._slots[manager]:
            return self.backends[manager].restore(secret)

    def fingerprint(self, manager: str | None, secret: SecretId, fingerprint: Callable[[bytes], str]) -> str | None:
        """The fingerprint of what `manager` holds for `secret` (None: nothing, or no manager)."""
        if not manager:
            return None
        value = self.read(manager, secret)
        return None if value is None else fingerprint(value.data)


def parallel_map(function: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """`[function(item) for item in items]`, computed by up to `workers` threads, in order;
    once a call raises no new one starts, and the error of the earliest item is raised
    when the running calls have finished."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    results: list = [None] * len(items)

    def compute(index: int, item: T) -> None:
        results[index] = function(item)

    error = run_pulling(compute, items, workers, threading.Event())
    if error is not None:
        raise error
    return results


def run_pulling(function: Callable[[int, T], None], items: Sequence[T], workers: int,
                abort: threading.Event) -> BaseException | None:
    """Call `function(index, item)` for every item on up to `workers` threads, which take
    the items in order; no item is taken once `abort` is set or a call raised. Returns
    the error of the earliest item that raised (None: none did).

    Threads pull items instead of queueing one future per item, so memory does not grow
    with the number of items. Interrupted while waiting (Ctrl-C), it sets `abort`, waits
    for the calls running to end, and raises the interruption.
    """
    lock = threading.Lock()
    positions = iter(range(len(items)))
    errors: dict[int, BaseException] = {}

    def work() -> None:
        while not abort.is_set():
            with lock:
                index = next(positions, None)
            if index is None:
                return
            try:
                function(index, items[index])
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                errors[index] = error
                abort.set()

    threads = [threading.Thread(target=work, name=f"secretshift-{n}", daemon=True)
               for n in range(min(max(1, workers), len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        abort.set()
        for thread in threads:
            thread.join()
        raise
    return errors[min(errors)] if errors else None
