"""Execute a plan: check it is still current, preflight every manager, then for each
action write the target, read it back and compare, and only then delete the source.

Every step is journaled (see journal.py) before the next one is taken, so an apply
killed at any instant can be resumed or rolled back. Each action is also idempotent
against the state it leaves: an action found already carried out is verified, not
repeated, so running the same plan again finishes the work instead of duplicating it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine import travel
from engine.backends.base import Backend
from engine.errors import PlanError, SecretShiftError, StalePlan, VerificationFailed
from engine.held import DEFAULT_BUDGET, Held, HeldValues
from engine.journal import Journal
from engine.managers import Managers, parallel_map, run_pulling
from engine.model import SecretId, SecretValue
from engine.plan import Action, Plan, Problem

Fingerprint = Callable[[bytes], str]


class Interrupted(SecretShiftError):
    """Apply stopped between two actions because it was asked to (Ctrl-C)."""

    def __init__(self, done: int, total: int):
        self.done, self.total = done, total
        super().__init__(
            f"interrupted after {done} of {total} actions; the journal is complete: "
            f"run apply again to finish, or rollback to undo"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one action: `done`, or `already` (found carried out)."""

    action: Action
    status: str


@dataclass(frozen=True, slots=True)
class Found:
    source: str | None  # fingerprint found in the source (None: absent)
    target: str | None  # fingerprint found in the target
    refused: str | None = None  # why the target would refuse the source's value


def apply_plan(
    plan: Plan,
    backends: Mapping[str, Backend],
    fingerprint: Fingerprint,
    start_journal: Callable[[], Journal],
    progress: Callable[[Outcome], None] = lambda outcome: None,
    stop_requested: Callable[[], bool] = lambda: False,
    hold_bytes: int = DEFAULT_BUDGET,
) -> list[Outcome]:
    """Carry out `plan`. Raises before any write (and before any journal exists) if the
    plan has errors, is stale, or a manager refuses the preflight.

    Values the staleness check reads are kept for the actions (up to `hold_bytes`), so
    that an action need not read them again (see held.py and `execute`)."""
    refuse_errors(plan)
    changes = plan.changes
    managers = Managers(backends)
    held = HeldValues(hold_bytes)
    already = check_current(changes, managers, fingerprint, held=held)
    if len(already) == len(changes):
        return all_already(changes, progress)
    preflight(changes, backends)
    journal = start_journal()
    return run_actions(changes, already, managers, fingerprint, journal, progress, stop_requested, held=held)


def refuse_errors(plan: Plan) -> None:
    """A plan with errors is never applied, not even in part."""
    if plan.errors:
        raise PlanError(f"the plan has {len(plan.errors)} error(s) and cannot be applied")


def all_already(changes, progress: Callable[[Outcome], None]) -> list[Outcome]:
    """Every action was found carried out already: nothing to write, nothing to journal."""
    outcomes = [Outcome(action, "already") for action in changes]
    for outcome in outcomes:
        progress(outcome)
    return outcomes


def run_actions(changes, already: set[int], managers: Managers, fingerprint, journal: Journal,
                progress=lambda outcome: None, stop_requested=lambda: False,
                started: frozenset[int] = frozenset(), held: HeldValues | None = None) -> list[Outcome]:
    """Execute `changes` under `journal`, many at once (each manager within its
    parallelism); actions on the same secret run in plan order, progress is reported
    in plan order, and the journal records how the run ends.

    `started` are the actions an earlier run of this same apply began (a resume): one
    of those found already done was written by this apply, and the journal must say so
    for rollback to undo it. `held` has values the staleness check read (see held.py)."""
    report = InOrder(changes, progress)
    try:
        failure = carry_out(by_secret(changes), changes, already, managers, fingerprint, journal, report.done,
                            stop_requested, started, held)
    except BaseException as interrupt:  # noqa: BLE001 - a second Ctrl-C: no more work was taken
        failure = interrupt
    return finish_run(changes, report, journal, failure)


def carry_out(groups: list[list[int]], changes, already: set[int], managers: Managers, fingerprint,
              journal: Journal, done: Callable[[int, str], None], stop_requested: Callable[[], bool],
              started: frozenset[int] = frozenset(), held: HeldValues | None = None,
              abort: threading.Event | None = None, failed: dict[int, BaseException] | None = None,
              ) -> BaseException | None:
    """Run `groups` of action indexes (each group one secret's actions, in plan order) on
    the managers' threads; `done(index, status)` as each action ends. Returns the error of
    the earliest group that failed, None when none did; no action is taken once one
    failed, `abort` is set or `stop_requested()`. `failed` gets each failed action's error
    by its index."""
    abort = abort or threading.Event()

    def run_group(indexes: list[int]) -> None:
        for index in indexes:
            if abort.is_set() or stop_requested():
                return
            try:
                if index in already:
                    if index in started and changes[index].writes_target:
                        journal.step(index, "written")
                    journal.step(index, "already")
                    status = "already"
                else:
                    execute(index, changes[index], managers, fingerprint, journal,
                            held.take(index) if held is not None else None, resumed=index in started)
                    status = "done"
            except BaseException as error:
                if failed is not None:
                    failed[index] = error
                raise
            done(index, status)

    return run_pulling(lambda _, group: run_group(group), groups, managers.workers, abort)


def finish_run(changes, report: InOrder, journal: Journal, failure: BaseException | None) -> list[Outcome]:
    """Report what is left, record in the journal how the run ended, and raise its failure
    (Interrupted when it stopped early without one)."""
    outcomes = report.finish()
    if failure is None and len(outcomes) < len(changes):
        failure = Interrupted(len(outcomes), len(changes))
    if failure is not None:
        status = "interrupted" if isinstance(failure, (Interrupted, KeyboardInterrupt)) else "failed"
        journal.end(status, done=len(outcomes), total=len(changes),
                    error=str(failure) if isinstance(failure, SecretShiftError) else type(failure).__name__)
        raise failure
    journal.end("complete", done=len(outcomes), total=len(changes))
    return outcomes


def by_secret(changes) -> list[list[int]]:
    """Action indexes grouped by secret (in plan order): one secret's actions never overlap."""
    groups: dict[SecretId, list[int]] = {}
    for index, action in enumerate(changes):
        groups.setdefault(action.id, []).append(index)
    return list(groups.values())


class InOrder:
    """Collects outcomes from many threads and reports them in plan order."""

    def __init__(self, changes, progress: Callable[[Outcome], None]):
        self._changes, self._progress = changes, progress
        self._status: dict[int, str] = {}
        self._next = 0
        self._lock = threading.Lock()

    def done(self, index: int, status: str) -> None:
        with self._lock:
            self._status[index] = status
            while self._next in self._status:
                self._progress(Outcome(self._changes[self._next], self._status[self._next]))
                self._next += 1

    def finish(self) -> list[Outcome]:
        """Every outcome, in plan order (those not yet reported are reported now)."""
        with self._lock:
            for index in sorted(i for i in self._status if i >= self._next):
                self._progress(Outcome(self._changes[index], self._status[index]))
            return [Outcome(self._changes[i], self._status[i]) for i in sorted(self._status)]


def check_current(changes, managers: Managers, fingerprint: Fingerprint,
                  partial: frozenset[int] = frozenset(), held: HeldValues | None = None) -> set[int]:
    """Compare what every action was planned from with what the managers hold now.

    Returns the indexes of actions already fully carried out (by an interrupted earlier
    run); raises StalePlan, naming the secrets, when anything else differs. `partial`
    are actions an interrupted run left writing earlier versions (`history: all`): their
    target may hold any of those. What it read is offered to `held` for the actions to use.
    """
    return classify(changes, gather(changes, range(len(changes)), managers, fingerprint, held), partial)


def gather(changes, indexes, managers: Managers, fingerprint: Fingerprint, held: HeldValues | None) -> list[Found]:
    """What the managers hold now for the actions at `indexes` (fingerprints), read
    concurrently; the values are offered to `held`."""
    return parallel_map(lambda index: _found(index, changes[index], managers, fingerprint, held), indexes,
                        managers.workers)


def classify(changes, found: list[Found], partial: frozenset[int] = frozenset()) -> set[int]:
    """check_current's verdict on what `gather` found for every action."""
    stale, done, refused = [], set(), []
    for index, (action, state) in enumerate(zip(changes, found)):
        if _is_done(action, state):
            done.add(index)
        elif not _is_pending(action, state) and not (index in partial and state.source == action.source_fingerprint):
            stale.append(_describe_drift(action, state))
        elif state.refused:
            refused.append(f"{action.id} cannot be written to manager {action.target!r} at {action.target_location}: "
                           f"{state.refused}")
    if refused:
        shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise PlanError(f"nothing was written: {shown}")
    if stale:
        shown = "; ".join(stale[:5]) + (f"; and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise StalePlan(f"stale plan, nothing was written: {shown}. Run plan again")
    return done


def _found(index: int, action: Action, managers: Managers, fingerprint: Fingerprint,
           held: HeldValues | None) -> Found:
    source = managers.read(action.source, action.id) if action.source else None
    version = None
    if held is not None and action.writes_target:
        target, version = managers.read_versioned(action.target, action.id)
    else:
        target = managers.read(action.target, action.id)
    if held is not None:  # a move reads its source again (below), so only a copy's is kept
        held.offer(index, Held(None if action.delete_source else source, target, version))
    refused = managers[action.target].value_problem(action.id, source) \
        if source is not None and action.writes_target else None
    return Found(source=None if source is None else fingerprint(source.data),
                  target=None if target is None else fingerprint(target.data), refused=refused)


def _is_pending(action: Action, found: Found) -> bool:
    """The managers still hold what the plan saw (or an interrupted run's partial write)."""
    if found.source != action.source_fingerprint:
        return False
    if found.target == action.target_fingerprint:
        return True
    # written and verified by an earlier run, source not yet deleted
    return action.writes_target and action.delete_source and found.target == action.source_fingerprint


def _is_done(action: Action, found: Found) -> bool:
    if found.target != action.source_fingerprint:
        return False
    if action.delete_source:
        return found.source is None
    return found.source == action.source_fingerprint


def _describe_drift(action: Action, found: Found) -> str:
    if found.source != action.source_fingerprint:
        what = "is gone from" if found.source is None else "changed in"
        return f"{action.id} {what} manager {action.source!r}"
    what = "appeared in" if action.target_fingerprint is None else (
        "is gone from" if found.target is None else "changed in")
    return f"{action.id} {what} manager {action.target!r}"


def access_needs(changes) -> dict[str, tuple[list[SecretId], list[SecretId]]]:
    """Per manager, the secrets the plan writes to it and deletes from it."""
    needs: dict[str, tuple[list[SecretId], list[SecretId]]] = {}
    for action in changes:
        if action.writes_target:
            needs.setdefault(action.target, ([], []))[0].append(action.id)
        if action.delete_source:
            needs.setdefault(action.source, ([], []))[1].append(action.id)
    return dict(sorted(needs.items()))


def preflight(changes, backends: Mapping[str, Backend]) -> None:
    """Ask every manager whether it will accept the planned writes and deletes."""
    for manager, (writes, deletes) in access_needs(changes).items():
        backends[manager].check_access(writes, deletes)


def access_problems(changes, backends: Mapping[str, Backend]) -> list[Problem]:
    """The preflight as plan errors: what the managers' credentials would refuse."""
    problems = []
    for manager, (writes, deletes) in access_needs(changes).items():
        for secret, reason in backends[manager].access_problems(writes, deletes):
            problems.append(Problem("read_only", secret, f"manager {manager!r} would refuse: {reason}"))
    return problems


def execute(index: int, action: Action, managers: Managers, fingerprint: Fingerprint,
            journal: Journal, held: Held | None = None, resumed: bool = False) -> None:
    """One action, each step journaled: write and verify the target, then delete the source.

    With `held` (what the staleness check read, that check having passed) a copy reads
    nothing again before its write: the value written is the one the check read, whose
    fingerprint the plan shows. A move (which deletes the source) reads its source again
    first, as without `held`. The target is written only if it still holds what the
    check saw: a conditional write where the manager has one, else it is read again.

    `resumed`: an earlier run of this apply started the action; with `history: all` the
    target may hold part of the earlier versions it wrote, which are written again.
    """
    journal.step(index, "started")
    if held is None:
        (value, current), version = _read_both(action, managers, fingerprint), None
    else:
        value, current, version = held.source, held.target, held.target_version
        if action.delete_source:
            value = _read_source(action, managers, fingerprint)
        if action.writes_target and version is None:  # no conditional write: look again
            current = managers.read(action.target, action.id)
    current_fp = None if current is None else fingerprint(current.data)
    partial = resumed and action.history == "all" and current_fp != action.target_fingerprint
    if action.writes_target and current_fp != action.source_fingerprint:
        if current_fp != action.target_fingerprint and not partial:
            raise StalePlan(f"stale plan: {action.id} changed in manager {action.target!r} during apply")
        if current is not None and not partial:  # an overwrite: keep the old value so rollback can put it back
            journal.step(index, "target_previous", keep=current)
        history_note = None
        if action.history == "all":
            journal.step(index, "history_started")  # from here the target may hold earlier versions
            history_note = travel.write_history(managers, action)
            version = None  # those writes moved the target past the version the check saw
        _write(action, managers, fingerprint, value, version)
        travel.carry_metadata(managers, action, history_note)
        current = managers.read(action.target, action.id)
    elif held is not None and action.delete_source:  # nothing written: look at the target again
        current = managers.read(action.target, action.id)
    if action.writes_target:
        journal.step(index, "written")
    if current is None or current != value:
        raise VerificationFailed(
            f"{action.id} read back from manager {action.target!r} at {action.target_location} "
            f"does not match what was written; the source copy in {action.source!r} was kept"
        )
    journal.step(index, "verified")
    if action.delete_source:
        journal.step(index, "source_value", keep=value)
        managers.delete(action.source, action.id)
        journal.step(index, "source_deleted")
    journal.step(index, "done")


def _read_both(action: Action, managers: Managers, fingerprint: Fingerprint):
    """The source's value (which must still be the planned one) and the target's."""
    return _read_source(action, managers, fingerprint), managers.read(action.target, action.id)


def _read_source(action: Action, managers: Managers, fingerprint: Fingerprint) -> SecretValue:
    """The source's value, which must still be the planned one."""
    value = managers.read(action.source, action.id)
    if value is None or fingerprint(value.data) != action.source_fingerprint:
        raise StalePlan(f"stale plan: {action.id} changed in manager {action.source!r} during apply")
    return value


def _write(action: Action, managers: Managers, fingerprint: Fingerprint, value, version) -> None:
    """Write the target; with a version token, only if the target is still at that version.
    If it is not, the target is read again: it may hold our value already (a retried write
    whose first answer was lost), or still what the plan saw (a version the token did not
    describe, e.g. a destroyed one): only then is it written; anything else is stale."""
    if version is not None and managers.write_if_version(action.target, action.id, value, version):
        return
    if version is not None:
        now = managers.fingerprint(action.target, action.id, fingerprint)
        if now == action.source_fingerprint:
            return
        if now != action.target_fingerprint:
            raise StalePlan(f"stale plan: {action.id} changed in manager {action.target!r} during apply")
    managers.write(action.target, action.id, value)
