"""Execute a plan: check it is still current, preflight every manager, then for each
action write the target, read it back and compare, and only then delete the source.

Every step is journaled (see journal.py) before the next one is taken, so an apply
killed at any instant can be resumed or rolled back. Each action is also idempotent
against the state it leaves: an action found already carried out is verified, not
repeated, so running the same plan again finishes the work instead of duplicating it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.backends.base import Backend
from engine.errors import PlanError, SecretShiftError, StalePlan, VerificationFailed
from engine.journal import Journal
from engine.model import SecretId
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


@dataclass(frozen=True)
class Outcome:
    """What happened to one action: `done`, or `already` (found carried out)."""

    action: Action
    status: str


@dataclass(frozen=True)
class _Found:
    source: str | None  # fingerprint found in the source (None: absent)
    target: str | None  # fingerprint found in the target


def apply_plan(
    plan: Plan,
    backends: Mapping[str, Backend],
    fingerprint: Fingerprint,
    start_journal: Callable[[], Journal],
    progress: Callable[[Outcome], None] = lambda outcome: None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Carry out `plan`. Raises before any write (and before any journal exists) if the
    plan has errors, is stale, or a manager refuses the preflight."""
    if plan.errors:
        raise PlanError(f"the plan has {len(plan.errors)} error(s) and cannot be applied")
    changes = plan.changes
    already = check_current(changes, backends, fingerprint)
    preflight(changes, backends)
    journal = start_journal()
    return run_actions(changes, already, backends, fingerprint, journal, progress, stop_requested)


def run_actions(changes, already: set[int], backends, fingerprint, journal: Journal,
                progress=lambda outcome: None, stop_requested=lambda: False) -> list[Outcome]:
    """Execute `changes` in order under `journal`, recording how the run ends."""
    outcomes: list[Outcome] = []
    try:
        for index, action in enumerate(changes):
            if stop_requested():
                raise Interrupted(len(outcomes), len(changes))
            if index in already:
                journal.step(index, "already")
                outcome = Outcome(action, "already")
            else:
                execute(index, action, backends, fingerprint, journal)
                outcome = Outcome(action, "done")
            outcomes.append(outcome)
            progress(outcome)
    except Interrupted as stopped:
        journal.end("interrupted", done=stopped.done, total=stopped.total)
        raise
    except BaseException as error:  # noqa: BLE001 - the journal must say how the run ended
        journal.end("failed", done=len(outcomes), total=len(changes),
                    error=str(error) if isinstance(error, SecretShiftError) else type(error).__name__)
        raise
    journal.end("complete", done=len(outcomes), total=len(changes))
    return outcomes


def check_current(changes, backends: Mapping[str, Backend], fingerprint: Fingerprint) -> set[int]:
    """Compare what every action was planned from with what the managers hold now.

    Returns the indexes of actions already fully carried out (by an interrupted earlier
    run); raises StalePlan, naming the secrets, when anything else differs.
    """
    stale, done = [], set()
    for index, action in enumerate(changes):
        found = _found(action, backends, fingerprint)
        if _is_done(action, found):
            done.add(index)
        elif not _is_pending(action, found):
            stale.append(_describe_drift(action, found))
    if stale:
        shown = "; ".join(stale[:5]) + (f"; and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise StalePlan(f"stale plan, nothing was written: {shown}. Run plan again")
    return done


def fingerprint_in(backend: Backend | None, secret: SecretId, fingerprint: Fingerprint) -> str | None:
    """The fingerprint of what `backend` holds for `secret`, or None."""
    if backend is None:
        return None
    value = backend.read(secret)
    return None if value is None else fingerprint(value.data)


def _found(action: Action, backends: Mapping[str, Backend], fingerprint: Fingerprint) -> _Found:
    return _Found(
        source=fingerprint_in(backends.get(action.source), action.id, fingerprint) if action.source else None,
        target=fingerprint_in(backends[action.target], action.id, fingerprint),
    )


def _is_pending(action: Action, found: _Found) -> bool:
    """The managers still hold what the plan saw (or an interrupted run's partial write)."""
    if found.source != action.source_fingerprint:
        return False
    if found.target == action.target_fingerprint:
        return True
    # written and verified by an earlier run, source not yet deleted
    return action.writes_target and action.delete_source and found.target == action.source_fingerprint


def _is_done(action: Action, found: _Found) -> bool:
    if found.target != action.source_fingerprint:
        return False
    if action.delete_source:
        return found.source is None
    return found.source == action.source_fingerprint


def _describe_drift(action: Action, found: _Found) -> str:
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


def execute(index: int, action: Action, backends: Mapping[str, Backend], fingerprint: Fingerprint,
            journal: Journal) -> None:
    """One action, each step journaled: write and verify the target, then delete the source."""
    source, target = backends[action.source], backends[action.target]
    journal.step(index, "started")
    value = source.read(action.id)
    if value is None or fingerprint(value.data) != action.source_fingerprint:
        raise StalePlan(f"stale plan: {action.id} changed in manager {action.source!r} during apply")
    current = target.read(action.id)
    current_fp = None if current is None else fingerprint(current.data)
    if action.writes_target and current_fp != action.source_fingerprint:
        if current_fp != action.target_fingerprint:
            raise StalePlan(f"stale plan: {action.id} changed in manager {action.target!r} during apply")
        if current is not None:  # an overwrite: keep the old value so rollback can put it back
            journal.step(index, "target_previous", keep=current)
        target.write(action.id, value)
        current = target.read(action.id)
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
        source.delete(action.id)
        journal.step(index, "source_deleted")
    journal.step(index, "done")
