"""Apply in several worker processes, when one Python process cannot keep the pools busy.

One process spends about half a millisecond of CPU on each request (hvac, http.client,
the journal), which caps it near 2,000 requests a second whatever the parallelism. A
large apply is therefore split: the secrets are dealt round-robin to forked workers,
each with its share of every manager's parallelism and connections of its own.

The parent keeps every decision. Each worker reads the current state of its share
(the staleness check) and sends the fingerprints; the parent judges the whole plan,
runs the preflight, starts the journal and only then says "go". The workers append their
steps to that journal (one O_APPEND file; an action's records all come from the worker
running it) and report each finished action; the parent prints progress in plan order,
and writes how the run ended. Ctrl-C reaches the parent, which tells the workers to stop
after their current step (a third Ctrl-C kills them, as a kill of the apply would); a worker dies
with its parent (PR_SET_PDEATHSIG), so killing the apply leaves no writer behind, and
resume finds the journal as after any crash.

Only where fork is safe: Linux, and no other thread running in the parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import random
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait

from engine.applier import (
    Found,
    InOrder,
    Outcome,
    all_already,
    by_secret,
    carry_out,
    classify,
    finish_run,
    gather,
    preflight,
    refuse_errors,
)
from engine.backends.base import Backend
from engine.errors import SecretShiftError
from engine.held import DEFAULT_BUDGET, HeldValues
from engine.journal import Journal
from engine.managers import Managers
from engine.plan import Plan

PROCESSES_ENV = "SECRETSHIFT_PROCESSES"
MAX_PROCESSES = 4
SECRETS_PER_PROCESS = 250  # below this a worker costs more than it saves
_PR_SET_PDEATHSIG = 1


def processes_for(plan: Plan) -> int:
    """How many worker processes to apply `plan` with (1: none, the apply runs here).
    SECRETSHIFT_PROCESSES sets it; by default one per CPU (at most 4) while each has
    SECRETS_PER_PROCESS secrets or more."""
    secrets = len({action.id for action in plan.changes})
    setting = os.environ.get(PROCESSES_ENV, "").strip()
    if setting:
        if not re.fullmatch(r"[0-9]+", setting) or int(setting) < 1:
            raise SecretShiftError(f"{PROCESSES_ENV} must be a whole number of processes (1 or more), "
                                   f"not {setting!r}")
        wanted = int(setting)
    else:
        wanted = min(MAX_PROCESSES, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
                     secrets // SECRETS_PER_PROCESS)
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 1
    return max(1, min(wanted, secrets))


def apply_plan(plan: Plan, backends: Mapping[str, Backend], fingerprint, start_journal: Callable[[], Journal],
               processes: int, progress: Callable[[Outcome], None] = lambda outcome: None,
               stop_requested: Callable[[], bool] = lambda: False,
               hold_bytes: int = DEFAULT_BUDGET) -> list[Outcome]:
    """applier.apply_plan, the actions carried out by `processes` forked workers."""
    refuse_errors(plan)
    changes = plan.changes
    groups = by_secret(changes)
    shards = [groups[k::processes] for k in range(processes)]
    managers = Managers(backends)
    gc.freeze()  # the plan stays shared with the workers instead of being copied by the collector
    workers: list[_Worker] = []
    try:
        for shard in shards:
            workers.append(_Worker.fork(shard, changes, managers, fingerprint, hold_bytes // processes,
                                        processes, workers))
        found: list[Found | None] = [None] * len(changes)
        for worker in workers:
            for index, state in zip(worker.indexes, worker.receive("found")):
                found[index] = Found(*state)
        already = classify(changes, found)
        if len(already) == len(changes):
            return all_already(changes, progress)
        preflight(changes, backends)
        journal = start_journal()
        report = InOrder(changes, progress)
        if stop_requested():  # Ctrl-C during the checks: no action is taken, as in one process
            return finish_run(changes, report, journal, None)
        for worker in workers:
            worker.go(journal, already & set(worker.indexes))
        return finish_run(changes, report, journal, _follow(workers, report, stop_requested))
    finally:
        for worker in workers:
            worker.end()
        gc.unfreeze()


def _follow(workers: list[_Worker], report: InOrder, stop_requested: Callable[[], bool]) -> BaseException | None:
    """Report the workers' actions until every worker ended; tell them all to stop on
    Ctrl-C or on the first failure. Ctrl-C twice (KeyboardInterrupt) stops as in one
    process: no step is started, the steps running finish and are journaled; a third
    kills the workers, as a kill of the apply would. Returns the failure of the earliest
    action, else the KeyboardInterrupt."""
    failures: dict[int, BaseException] = {}
    interrupted: BaseException | None = None
    stopping = False
    running = {worker.conn: worker for worker in workers}
    try:
        while running:
            if not stopping and (failures or interrupted or stop_requested()):
                stopping = True
                for worker in running.values():
                    worker.send(("stop",))
            try:
                ready = wait(list(running), timeout=0.2)
            except KeyboardInterrupt as interrupt:
                if interrupted is not None:
                    raise
                interrupted = interrupt
                continue
            for conn in ready:
                worker = running[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    del running[conn]
                    failures.setdefault(sys.maxsize, worker.lost())  # after any action's own error
                    continue
                if message[0] == "done":
                    try:
                        report.done(message[1], message[2])
                    except KeyboardInterrupt as interrupt:  # Ctrl-C twice, while a line was printed
                        if interrupted is not None:
                            raise
                        interrupted = interrupt
                elif message[0] == "end":
                    del running[conn]
                    if message[1] is not None:
                        index, error = message[1]
                        failures[index] = _rebuilt(error)
    except KeyboardInterrupt as interrupt:  # the third Ctrl-C (or a second amid reading a message): stop at once
        for worker in running.values():
            worker.kill()
        return interrupt
    return failures[min(failures)] if failures else interrupted


@dataclass
class _Worker:
    """The parent's handle on one forked worker."""

    pid: int
    conn: Connection
    indexes: list[int]
    writing: bool = False  # told "go": it may be changing managers

    @classmethod
    def fork(cls, shard: list[list[int]], changes, managers: Managers, fingerprint, hold_bytes: int,
             processes: int, siblings: list[_Worker]) -> _Worker:
        parent_end, child_end = Pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            status = 1
            try:
                parent_end.close()
                for sibling in siblings:  # else a sibling never sees the parent close its pipe
                    sibling.conn.close()
                _work(child_end, parent, shard, changes, managers, fingerprint, hold_bytes, processes)
                status = 0
            finally:
                os._exit(status)
        child_end.close()
        return cls(pid, parent_end, [index for group in shard for index in group])

    def go(self, journal: Journal, already: set[int]) -> None:
        """Let it carry out its actions, journaled in `journal`."""
        self.writing = True
        self.send(("go", journal.path, journal.apply_id, journal.key, already))

    def send(self, message) -> None:
        try:
            self.conn.send(message)
        except OSError:  # it ended already; _follow or receive says how
            pass

    def receive(self, kind: str):
        """What the worker's next message, of `kind`, carries; its error raised if it failed."""
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            raise self.lost() from None
        if message[0] == "end" and message[1] is not None:
            raise _rebuilt(message[1][1])
        if message[0] != kind:
            raise self.lost()
        return message[1]

    def lost(self) -> SecretShiftError:
        if not self.writing:
            return SecretShiftError(f"worker process {self.pid} of this apply ended unexpectedly while it read "
                                    f"the current state; nothing was written and no journal was started")
        return SecretShiftError(f"worker process {self.pid} of this apply ended unexpectedly; "
                                f"the journal is complete: run apply again to finish, or rollback to undo")

    def kill(self) -> None:
        """Stop it at once; the journal says how far it got, as after any kill."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def end(self) -> None:
        """Close the pipe and reap it. One never told "go" has only read: it is killed
        rather than waited for (a Ctrl-C during a long staleness check); one that was
        is waited for, as it finishes the steps it has running and stops."""
        self.conn.close()
        if not self.writing:
            self.kill()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _work(conn: Connection, parent: int, shard: list[list[int]], changes, managers: Managers, fingerprint,
          hold_bytes: int, processes: int) -> None:
    """The worker's life: read its share's current state, wait for "go", carry out its
    actions, say how it ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with(parent)
    random.seed()
    managers.after_fork(processes)
    held = HeldValues(hold_bytes)
    indexes = [index for group in shard for index in group]
    try:
        found = gather(changes, indexes, managers, fingerprint, held)
    except BaseException as error:  # noqa: BLE001 - the parent raises it
        conn.send(("end", (0, _portable(error))))
        return
    conn.send(("found", [(state.source, state.target, state.refused) for state in found]))
    try:
        message = conn.recv()
    except EOFError:  # the plan was stale, or all done: nothing for this worker to do
        return
    if message[0] != "go":
        return
    _, path, apply_id, key, already = message
    journal = Journal(path, apply_id, key)
    abort = threading.Event()
    sending = threading.Lock()

    def send(message) -> None:
        with sending:
            conn.send(message)

    def listen() -> None:
        try:
            conn.recv()  # "stop" (or the parent is gone)
        except (EOFError, OSError):
            pass
        abort.set()

    threading.Thread(target=listen, daemon=True).start()
    failed: dict[int, BaseException] = {}
    failure = carry_out(shard, changes, already, managers, fingerprint, journal,
                        lambda index, status: send(("done", index, status)), abort.is_set,
                        held=held, abort=abort, failed=failed)
    journal.close()
    if failure is None:
        send(("end", None))
    else:
        index = min((i for i, error in failed.items() if error is failure), default=0)
        send(("end", (index, _portable(failure))))


def _die_with(parent: int) -> None:
    """Be killed when the parent dies, whatever kills it (Linux), so no worker goes on
    writing behind an apply that is gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the call
        os._exit(1)


def _portable(error: BaseException) -> bytes:
    """The error, pickled so that the parent raises the same class with the same message.
    Our errors' constructors take other arguments than they pass on, so they travel as
    class, args and attributes; what cannot travel becomes a plain SecretShiftError with
    the same message (our messages never hold values)."""
    try:
        return pickle.dumps((type(error), error.args, getattr(error, "__dict__", {})))
    except Exception:  # noqa: BLE001 - anything unpicklable
        return pickle.dumps((SecretShiftError, (f"{type(error).__name__}: {error}",), {}))


def _rebuilt(portable: bytes) -> BaseException:
    cls, args, attributes = pickle.loads(portable)
    error = cls.__new__(cls)
    BaseException.__init__(error, *args)
    error.__dict__.update(attributes)
    return error
