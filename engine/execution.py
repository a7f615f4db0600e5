"""The apply and rollback use cases: lock, journal, resume, interruption.

`commands.apply` and `commands.rollback` are these. Only one apply or rollback runs per
config at a time (lock.py); every apply that gets as far as writing has a journal; an
apply whose journal is unfinished (killed, interrupted, failed) is resumed by the next
`apply`, or undone by `rollback`, before any other plan may be applied.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from engine import __version__, history, rewrite, workers
from engine.applier import Outcome, apply_plan, check_current, preflight, run_actions
from engine.errors import PlanError, StalePlan, UsageError
from engine.journal import Journal, JournalState, changed_anything, journal_key, journals, latest, read_journal
from engine.lock import ApplyLock, current_user
from engine.managers import Managers
from engine.plan import Plan
from engine.planfile import load_plan
from engine.planner import disagreements
from engine.planning import compute_plan, read_recorded_state, state_file
from engine.policy import check_policy
from engine.render import RENDERERS
from engine.render.text import action_line
from engine.rollback import Undo, plan_rollback, run_rollback, started_only, wrote_unrecorded
from engine.state import recorded_apply, recorded_rollback
from engine.travel import history_in_progress
from engine.workspace import Workspace

EXIT_OK, EXIT_ERROR = 0, 1


def apply(ws_factory: Callable[[], Workspace], plan_file: str | None, auto_approve: bool, console,
          force_unlock: str | None = None, rewrite_references: bool = False) -> int:
    """Resume an unfinished apply, or apply a saved plan, or plan now, show, ask, apply;
    with `rewrite_references`, also rewrite the references the plan breaks (rewrite.py)."""
    with ws_factory() as ws, ApplyLock(ws.state_dir, force_unlock, console.err):
        unfinished_apply = unfinished(ws)
        if unfinished_apply is not None:
            with _recorded(ws, "resume", console, lambda: unfinished_apply.path, unfinished_apply.plan):
                return _resume(ws, unfinished_apply, plan_file, auto_approve, console, rewrite_references)
        to_apply = _plan_to_apply(ws, plan_file, console)
        if not to_apply.has_changes:
            if plan_file:
                console.out("No changes in this plan; nothing to apply.")
            elif rewrite_references and not rewrite.finish_last(ws, latest(ws.journal_dir), auto_approve, console):
                return EXIT_ERROR
            return EXIT_OK
        rewrites = rewrite.prepare_and_show(ws, to_apply, console) if rewrite_references else []
        processes = workers.processes_for(to_apply)
        if not plan_file and not auto_approve and not console.ask(
            f"Apply these {_count(len(to_apply.changes), 'change')}? Only 'yes' will be accepted: "
        ):
            console.err("Apply cancelled; nothing was changed.")
            return EXIT_ERROR
        started: list[Journal] = []

        def start_journal() -> Journal:
            started.append(_new_journal(ws, to_apply, processes))
            return started[0]

        def journal_path() -> Path | None:
            return started[0].path if started else None

        with _recorded(ws, "apply", console, journal_path, to_apply), _tracked(ws, to_apply, journal_path, console), \
                _stop_on_interrupt(console) as stop_requested:
            run = functools.partial(workers.apply_plan, processes=processes) if processes > 1 else apply_plan
            outcomes = run(
                to_apply, ws.backends(), ws.fingerprint,
                start_journal=start_journal,
                progress=_reporter(to_apply.changes, console),
                stop_requested=stop_requested,
            )
        if rewrite_references:
            rewrite.write(rewrites)
    console.out(_apply_summary(outcomes))
    rewrite.say(console, rewrite.summary(to_apply, rewrite_references))
    return EXIT_OK


def _plan_to_apply(ws: Workspace, plan_file: str | None, console) -> Plan:
    if plan_file:  # reviewed already: apply it as it is, without asking again
        to_apply = load_plan(plan_file)
        _check_policy(to_apply, ws, plan_file)
        _check_saved_plan(to_apply, ws, plan_file)
    else:
        to_apply = compute_plan(ws, warn=console.err)
        console.out(RENDERERS["text"](to_apply, color=console.color))
    if to_apply.errors:
        first = to_apply.errors[0]
        raise PlanError(f"the plan has {len(to_apply.errors)} error(s), nothing was applied; "
                        f"the first: {first.code}: {first.message}")
    return to_apply


def _check_saved_plan(saved: Plan, ws: Workspace, plan_file: str) -> None:
    if _release(saved.secretshift_version) != _release(__version__):
        raise PlanError(f"{plan_file} was made by secretshift {saved.secretshift_version or 'of unknown version'}, "
                        f"which this secretshift {__version__} does not apply; nothing was written. "
                        f"Run plan again with this version")
    if saved.config_digest != ws.config.digest:
        raise StalePlan(f"stale plan: {plan_file} was made from another version of the config than "
                        f"{ws.config.path.name} (edited since, or another config); nothing was written. "
                        f"Run plan again")
    if saved.fingerprint_key_id != ws.fingerprint_key_id:
        raise StalePlan(f"{plan_file} was made with another fingerprint key; nothing was written "
                        f"(set fingerprint_key in the config so plan and apply share one)")
    problems = disagreements(saved, ws.config, ws.backends())
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PlanError(f"{plan_file} does not match {ws.config.path.name}, nothing was written: "
                        f"{problems[0]}{more}")


def _check_policy(saved: Plan, ws: Workspace, plan_file: str) -> None:
    """The config's policy, checked again on a saved plan (made, maybe, before the policy
    was tightened) against the state of now."""
    violations = check_policy(saved.changes, ws.config.policy, read_recorded_state(ws), ws.fingerprint_key_id)
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise PlanError(f"{plan_file} breaks the policy of {ws.config.path.name}, nothing was written: "
                        f"{violations[0].message}{more}")


def _tracked(ws: Workspace, plan: Plan, journal_path: Callable[[], Path | None], console):
    """The state file's record of this apply or resume, written however it ends (state.py)."""
    return recorded_apply(state_file(ws), ws.config.path.name, ws.fingerprint_key_id, plan,
                          journal_path, lambda manager: ws.backend(manager).list_ids(), console.err)


def _release(version: str) -> tuple[str, ...]:
    """The part of a version that must match for a plan to apply: major.minor (0.x
    releases may change what a plan means), or major from 1.0 on."""
    parts = version.split(".")
    return tuple(parts[:2]) if parts[0] == "0" else tuple(parts[:1])


def unfinished(ws: Workspace) -> JournalState | None:
    """The last apply, if it did not finish (killed, interrupted, failed)."""
    state = latest(ws.journal_dir)
    return None if state is None or state.finished else state


def _resume(ws: Workspace, state: JournalState, plan_file: str | None, auto_approve: bool, console,
            rewrite_references: bool = False) -> int:
    """Finish the apply a journal says was not finished, without redoing verified steps."""
    if plan_file and load_plan(plan_file).changes != state.plan.changes:
        raise UsageError(f"apply {state.apply_id} did not finish ({state.status}); resume it with "
                         f"`secretshift apply` (no plan file) or undo it with `secretshift rollback` first")
    if state.plan.config_digest != ws.config.digest:
        raise UsageError(f"cannot resume apply {state.apply_id}: {ws.config.path.name} changed since it "
                         f"started; restore the config, or undo the apply with `secretshift rollback`")
    _check_key(ws, state)
    changes = state.plan.changes
    done = sum(1 for record in state.actions.values() if "done" in record.steps or "already" in record.steps)
    console.out(f"Resuming apply {state.apply_id} ({state.status} after {done} of {len(changes)} actions).")
    backends = ws.backends()
    managers = Managers(backends)
    try:
        already = check_current(changes, managers, ws.fingerprint, partial=history_in_progress(state))
    except StalePlan as stale:
        raise StalePlan(f"cannot resume apply {state.apply_id}: {stale}; undo it with `secretshift rollback`") from None
    preflight(changes, backends)
    rewrites = rewrite.prepare_and_show(ws, state.plan, console) if rewrite_references else []
    left = [a for i, a in enumerate(changes) if i not in already]
    if not plan_file and not auto_approve:
        width = max((len(a.id.name) for a in left), default=0)
        console.out("\n".join(action_line(a, console.color, width) for a in left) + "\n")
        if not console.ask(f"Finish these {_count(len(left), 'action')}? Only 'yes' will be accepted: "):
            console.err("Resume cancelled; nothing was changed. `secretshift rollback` undoes what was done.")
            return EXIT_ERROR
    journal = Journal(state.path, state.apply_id, journal_key(ws.fingerprint_key))
    journal.write({"event": "resume", **_about()})
    with _tracked(ws, state.plan, lambda: state.path, console), _stop_on_interrupt(console) as stop_requested:
        started = frozenset(i for i, record in state.actions.items() if "started" in record.steps)
        outcomes = run_actions(changes, already, managers, ws.fingerprint, journal,
                               progress=_reporter(changes, console),
                               stop_requested=stop_requested, started=started)
    if rewrite_references:
        rewrite.write(rewrites)
    console.out(_apply_summary(outcomes))
    rewrite.say(console, rewrite.summary(state.plan, rewrite_references))
    return EXIT_OK


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _new_journal(ws: Workspace, plan: Plan, processes: int = 1) -> Journal:
    """The journal of a new apply; its begin record says who runs it, and in how many
    worker processes (1: in the apply's own)."""
    apply_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]
    return Journal.create(ws.journal_dir, apply_id, journal_key(ws.fingerprint_key), plan,
                          {**_about(), "processes": processes})


def _recorded(ws: Workspace, kind: str, console, journal_path: Callable[[], Path | None], plan: Plan):
    """The history record of this run (of `plan`), written however it ends (see history.py)."""
    return history.recorded(history.history_file(ws.state_dir, ws.config.path.name), kind, _about(),
                            journal_path, console.err, plan)


def _about() -> dict:
    user = current_user()
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "user": user,
            "host": socket.gethostname(), "pid": os.getpid(), "secretshift_version": __version__}


@contextmanager
def _stop_on_interrupt(console) -> Iterator[Callable[[], bool]]:
    """Ctrl-C once: start no other step, finish the running ones, stop with a resumable
    journal. Twice: the same, ending in KeyboardInterrupt. A third press abandons the
    steps running (the journal still says how far they got)."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return
    presses = 0

    def handler(signum, frame):
        nonlocal presses
        presses += 1
        if presses == 1:
            requested.set()
            console.err("Stopping after the current step (press Ctrl-C twice more to abandon the steps running)...")
            return
        if presses == 2:
            console.err("Still waiting for the steps running to end (press Ctrl-C once more to abandon them)...")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _apply_summary(outcomes: list[Outcome]) -> str:
    done = Counter(o.action.action for o in outcomes if o.status == "done")
    already = sum(1 for o in outcomes if o.status == "already")
    found = f" {already} found already done." if already else ""
    return (f"Apply complete! {done['move']} moved, {done['copy']} copied, {done['update']} updated, "
            f"{done['delete']} deleted; every write was read back and matched.{found}")


def _reporter(changes, console) -> Callable[[Outcome], None]:
    """Prints one aligned line per finished action."""
    width = max((len(a.id.name) for a in changes), default=0)

    def report(outcome: Outcome) -> None:
        suffix = "  done, verified" if outcome.status == "done" else "  already done"
        console.out(action_line(outcome.action, console.color, width) + suffix)

    return report


# --- rollback ---------------------------------------------------------------------

def rollback(ws_factory: Callable[[], Workspace], auto_approve: bool, console,
             force_unlock: str | None = None) -> int:
    """Undo the last apply recorded in the journal."""
    with ws_factory() as ws, ApplyLock(ws.state_dir, force_unlock, console.err):
        state = _last_apply(ws)
        with _recorded(ws, "rollback", console, lambda: state.path, state.plan), \
                recorded_rollback(state_file(ws), ws.config.path.name, state.path,
                                  lambda manager: ws.backend(manager).list_ids(), console.err):
            return _rollback(ws, state, auto_approve, console)


def _rollback(ws: Workspace, state: JournalState, auto_approve: bool, console) -> int:
    """Check, show, ask, then undo the apply `state` records."""
    journal = Journal(state.path, state.apply_id, journal_key(ws.fingerprint_key))
    managers = Managers(ws.backends())
    undos = plan_rollback(state, journal, managers, ws.fingerprint, console.err)
    if not undos:
        journal.end("rolled_back", undone=0)
        console.out(f"Apply {state.apply_id} changed nothing that is still in place; nothing to undo.")
        return EXIT_OK
    console.out(f"Rollback of apply {state.apply_id} ({state.begin.get('time', '?')}):\n")
    console.out("\n".join(_undo_line(u) for u in undos) + "\n")
    if not auto_approve and not console.ask(f"Undo these {_count(len(undos), 'action')}? "
                                            f"Only 'yes' will be accepted: "):
        console.err("Rollback cancelled; nothing was changed.")
        return EXIT_ERROR
    run_rollback(undos, managers, journal)
    console.out(f"Rollback complete! {len(undos)} action(s) undone; every restored value was read back and matched.")
    return EXIT_OK


def _last_apply(ws: Workspace) -> JournalState:
    """The last apply that changed anything (applies that found everything done do not
    count; an unfinished one that changed nothing is closed on the way)."""
    for path in reversed(journals(ws.journal_dir)):
        state = read_journal(path)
        if changed_anything(state) or _wrote_unrecorded(ws, state):
            if state.status == "rolled_back":
                raise UsageError(f"the last apply ({state.apply_id}) was already rolled back")
            _check_usable(ws, state)
            return state
        if not state.finished:
            Journal(state.path, state.apply_id, journal_key(ws.fingerprint_key)).end("rolled_back", undone=0)
    raise UsageError(f"nothing to roll back: no apply beside {ws.config.path.name} changed anything")


def _wrote_unrecorded(ws: Workspace, state: JournalState) -> bool:
    """An apply stopped between a write and its record changed something its journal
    does not say: the targets tell (rollback.wrote_unrecorded)."""
    if state.status == "rolled_back" or not any(map(started_only, state.actions.values())):
        return False
    _check_usable(ws, state, "may have written")
    return wrote_unrecorded(state, Managers(ws.backends()), ws.fingerprint)


def _check_usable(ws: Workspace, state: JournalState, wrote: str = "wrote") -> None:
    """The journal can be read with this config: same fingerprint key, every manager."""
    _check_key(ws, state)
    unknown = sorted({m for a in state.plan.changes for m in (a.source, a.target)} - set(ws.config.managers))
    if unknown:
        raise UsageError(f"the last apply ({state.apply_id}) {wrote} to manager {unknown[0]!r}, which "
                         f"{ws.config.path.name} no longer defines; restore it to roll back")


def _check_key(ws: Workspace, state: JournalState) -> None:
    """The journal's values and fingerprints need the key the apply used."""
    if state.plan.fingerprint_key_id and state.plan.fingerprint_key_id != ws.fingerprint_key_id:
        raise UsageError(f"apply {state.apply_id} used another fingerprint key than this config has now, "
                         f"so its journal cannot be read: restore the key it used "
                         f"(id {state.plan.fingerprint_key_id})")


def _undo_line(undo: Undo) -> str:
    a = undo.action
    parts = []
    if undo.restore_source is not None:
        parts.append(f"restore in {a.source}")
    if undo.restore_target is not None:
        parts.append(f"put back the previous value in {a.target}")
    elif undo.remove_target:
        parts.append(f"remove from {a.target} ({a.target_location})")
    return f"  < undo {a.action:<6} {a.id.kind.value:<4} {a.id.name}: " + ", ".join(parts)
