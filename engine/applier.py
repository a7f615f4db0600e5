"""Execute a plan: check it is still current, preflight every manager, then for each
action write the target, read it back and compare, and only then delete the source.

Each action is idempotent against the state it leaves: an action whose write already
happened (an interrupted earlier run) is not written again, only verified, so running
the same plan again finishes the work instead of failing or duplicating it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.backends.base import Backend
from engine.errors import PlanError, StalePlan, VerificationFailed
from engine.model import SecretId
from engine.plan import Action, Plan, Problem

Fingerprint = Callable[[bytes], str]


@dataclass(frozen=True)
class Outcome:
    """What happened to one action: `done`, `already` (found done), or `skipped` (noop)."""

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
    progress: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Carry out `plan`. Raises before any write if it has errors, is stale, or a
    manager refuses the preflight."""
    if plan.errors:
        raise PlanError(f"the plan has {len(plan.errors)} error(s) and cannot be applied")
    changes = plan.changes
    already = check_current(changes, backends, fingerprint)
    preflight(changes, backends)
    outcomes = []
    for action in changes:
        if action in already:
            outcome = Outcome(action, "already")
        else:
            execute(action, backends, fingerprint)
            outcome = Outcome(action, "done")
        outcomes.append(outcome)
        progress(outcome)
    return outcomes


def check_current(changes, backends: Mapping[str, Backend], fingerprint: Fingerprint) -> set[Action]:
    """Compare what every action was planned from with what the managers hold now.

    Returns the actions already fully carried out (by an interrupted earlier run);
    raises StalePlan, naming the secrets, when anything else differs.
    """
    stale, done = [], set()
    for action in changes:
        found = _found(action, backends, fingerprint)
        if _is_done(action, found):
            done.add(action)
        elif not _is_pending(action, found):
            stale.append(_describe_drift(action, found))
    if stale:
        shown = "; ".join(stale[:5]) + (f"; and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise StalePlan(f"stale plan, nothing was written: {shown}. Run plan again")
    return done


def _found(action: Action, backends: Mapping[str, Backend], fingerprint: Fingerprint) -> _Found:
    def fp(manager: str | None) -> str | None:
        if manager is None:
            return None
        value = backends[manager].read(action.id)
        return None if value is None else fingerprint(value.data)

    return _Found(source=fp(action.source), target=fp(action.target))


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


def execute(action: Action, backends: Mapping[str, Backend], fingerprint: Fingerprint) -> None:
    """One action: write and verify the target, then delete the source if asked."""
    source, target = backends[action.source], backends[action.target]
    value = source.read(action.id)
    if value is None or fingerprint(value.data) != action.source_fingerprint:
        raise StalePlan(f"stale plan: {action.id} changed in manager {action.source!r} during apply")
    current = target.read(action.id)
    current_fp = None if current is None else fingerprint(current.data)
    if action.writes_target and current_fp != action.source_fingerprint:
        if current_fp != action.target_fingerprint:
            raise StalePlan(f"stale plan: {action.id} changed in manager {action.target!r} during apply")
        target.write(action.id, value)
        current = target.read(action.id)
    if current is None or current != value:
        raise VerificationFailed(
            f"{action.id} read back from manager {action.target!r} at {action.target_location} "
            f"does not match what was written; the source copy in {action.source!r} was kept"
        )
    if action.delete_source:
        source.delete(action.id)
