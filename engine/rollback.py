"""Undo an apply from its journal: put back deleted sources and overwritten targets
from the values the journal sealed, remove what the apply created, verify each step.

Everything is checked before anything is changed: a secret changed by someone else since
the apply makes rollback refuse, naming it, with nothing touched. Like apply, rollback is
journaled and state-based, so an interrupted rollback can simply be run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.applier import Fingerprint
from engine.errors import BackendError, SecretShiftError, VerificationFailed
from engine.journal import Journal, JournalState
from engine.managers import Managers
from engine.model import SecretValue
from engine.plan import Action


class RollbackRefused(SecretShiftError):
    """A secret the apply touched was changed since; nothing was rolled back."""


@dataclass(frozen=True)
class Undo:
    """What rollback does for one action."""

    index: int
    action: Action
    restore_source: SecretValue | None  # the value to write back to the source, if deleted
    restore_target: SecretValue | None  # the target's value before an overwrite
    remove_target: bool  # the apply created the target copy: delete it (recoverably)
    unrecorded: bool = False  # its write reached the target but not the journal (see _unrecorded)

    @property
    def needed(self) -> bool:
        return self.restore_source is not None or self.restore_target is not None or self.remove_target


def plan_rollback(state: JournalState, journal: Journal, backends: Managers, fingerprint: Fingerprint,
                  notice: Callable[[str], None] = lambda message: None) -> list[Undo]:
    """The undo steps, last action first; raises RollbackRefused if anything changed since.
    Reads only: run_rollback records what it found (see Undo.unrecorded). An action that
    may or may not have written, whose target has changed since, is left alone, with a
    `notice`: the value there is someone else's either way."""
    changes = state.plan.changes
    undos, problems = [], []
    for index in sorted(state.actions, reverse=True):
        record, action = state.actions[index], changes[index]
        steps = set(record.steps)
        unrecorded = _unrecorded(action, record, backends, fingerprint) if started_only(record) else ""
        if unrecorded == "changed":
            notice(f"Leaving {action.id} in manager {action.target!r} as it is: it changed there since the apply, "
                   f"which stopped before it could record whether it had written it.")
            continue
        written = "written" in steps or unrecorded == "written"
        if not (written or {"source_value", "history_started"} & steps):
            continue  # this action never changed anything
        undo = _undo(index, action, record, written, journal, backends, fingerprint, problems)
        if undo is not None and undo.needed:
            undos.append(replace(undo, unrecorded=unrecorded == "written"))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise RollbackRefused(f"rollback refused, nothing was changed: {shown}")
    return undos


def wrote_unrecorded(state: JournalState, backends: Managers, fingerprint: Fingerprint) -> bool:
    """Whether an action of this apply journaled as started, and no further, may have
    written its target all the same (see _unrecorded): then the apply changed something."""
    return any(_unrecorded(state.plan.changes[index], record, backends, fingerprint)
               for index, record in state.actions.items() if started_only(record))


def started_only(record) -> bool:
    """The journal says the action started, and not that it wrote (an unfinished
    `history: all` has its own record, history_started)."""
    return "started" in record.steps and not {"written", "history_started"} & set(record.steps)


def _unrecorded(action: Action, record, backends: Managers, fingerprint: Fingerprint) -> str:
    """For an action journaled as started and no further (the apply was killed, or lost
    an answer, between a write and its record): "written" when the target holds the
    source's value, which it did not when planned; "changed" when it holds neither that
    nor what was planned (written and changed since, or never written and changed by
    someone else: the value is someone else's either way); "" when the write did not
    happen. An overwrite seals the earlier value in the journal before it writes:
    without that record, it did not."""
    if not action.writes_target or action.target_fingerprint == action.source_fingerprint:
        return ""
    if action.target_fingerprint is not None and "target_previous" not in record.sealed:
        return ""
    found = backends.fingerprint(action.target, action.id, fingerprint)
    if found == action.source_fingerprint:
        return "written"
    return "changed" if found != action.target_fingerprint else ""


def _undo(index, action, record, written, journal, backends, fingerprint, problems) -> Undo | None:
    source_fp = backends.fingerprint(action.source, action.id, fingerprint)
    target_fp = backends.fingerprint(action.target, action.id, fingerprint)
    previous = (journal.unseal(index, "target_previous", record.sealed["target_previous"])
                if "target_previous" in record.sealed else None)
    restore_source = remove_target = False
    if action.delete_source and source_fp is None:
        if "source_value" not in record.sealed:
            problems.append(f"{action.id} is gone from manager {action.source!r}, and the journal kept no value of it")
            return None
        restore_source = True
    elif action.delete_source and source_fp != action.source_fingerprint:
        problems.append(f"{action.id} changed in manager {action.source!r} since the apply")
        return None
    # interrupted while writing earlier versions (history: all): the target holds one of them
    partial = "history_started" in record.steps and "written" not in record.steps
    ours = False
    if written or partial:
        undone_fp = fingerprint(previous.data) if previous is not None else None
        ours = target_fp == action.source_fingerprint or (partial and target_fp != undone_fp)
        if ours:
            remove_target = previous is None
        elif target_fp != undone_fp:
            problems.append(f"{action.id} changed in manager {action.target!r} since the apply")
            return None
        else:
            previous = None  # already put back
    return Undo(
        index, action,
        restore_source=journal.unseal(index, "source_value", record.sealed["source_value"]) if restore_source else None,
        restore_target=previous if ours else None,
        remove_target=remove_target,
    )


def run_rollback(undos: list[Undo], backends: Managers, journal: Journal,
                 progress: Callable[[Undo], None] = lambda undo: None) -> None:
    """Carry out the undo steps, sources first, each verified and journaled."""
    for undo in undos:  # before anything changes: once undone, the targets no longer tell
        if undo.unrecorded:
            journal.step(undo.index, "written")
    journal.write({"event": "rollback_begin", "actions": len(undos)})
    try:
        for undo in undos:
            action = undo.action
            if undo.restore_source is not None:
                _restore_source(backends, action, undo.restore_source)
                journal.write({"event": "rollback_step", "index": undo.index, "step": "source_restored"})
            if undo.restore_target is not None:
                _write_verified(backends, action.target, action, undo.restore_target)
                journal.write({"event": "rollback_step", "index": undo.index, "step": "target_restored"})
            elif undo.remove_target:
                backends.delete(action.target, action.id)
                journal.write({"event": "rollback_step", "index": undo.index, "step": "target_removed"})
            progress(undo)
    except BaseException as error:  # noqa: BLE001 - the journal must say how rollback ended
        journal.end("rollback_failed",
                    error=str(error) if isinstance(error, SecretShiftError) else type(error).__name__)
        raise
    journal.end("rolled_back", undone=len(undos))


def _restore_source(managers: Managers, action: Action, value: SecretValue) -> None:
    """Undelete the source where its manager can (AWS refuses writes to a name in its
    recovery window), else write the journal's copy back; verified either way."""
    try:
        restored = managers.restore(action.source, action.id)
    except BackendError:
        restored = False
    if not (restored and managers.read(action.source, action.id) == value):
        _write_verified(managers, action.source, action, value)


def _write_verified(managers: Managers, manager: str, action: Action, value: SecretValue) -> None:
    managers.write(manager, action.id, value)
    if managers.read(manager, action.id) != value:
        raise VerificationFailed(f"{action.id} read back from manager {manager!r} "
                                 f"does not match what rollback wrote")
