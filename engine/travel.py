"""What travels with a secret besides its current value: metadata, and (on request) history.

Called by the applier around the one write of an action; the read-back verification of
the current value stays the applier's. Managers that keep no metadata (builtin, Vault KV
v1) keep none: builtin has no `read_metadata`/`write_metadata`, KV v1 reads and writes none.
"""

from __future__ import annotations

import dataclasses

from engine.backends.metadata import SecretMetadata
from engine.managers import Managers
from engine.plan import Action


def carry_metadata(managers: Managers, action: Action, history_note: str | None = None) -> None:
    """Copy the description, user tags and format marker from the source to the target
    (when both managers keep metadata), with the note of how history was carried."""
    source, target = managers[action.source], managers[action.target]
    read = getattr(source, "read_metadata", None)
    write = getattr(target, "write_metadata", None)
    if write is None:
        return
    metadata = read(action.id) if read is not None else SecretMetadata()
    if history_note:
        metadata = dataclasses.replace(metadata, history=history_note)
    if metadata:
        write(action.id, metadata)


def write_history(managers: Managers, action: Action) -> str:
    """Write every readable earlier version of the source to the target, oldest first,
    as successive versions (the caller writes the current value last). Returns a note
    for the target's metadata: how many versions were carried and which were skipped."""
    read = getattr(managers[action.source], "read_history", None)
    if read is None:
        return f"no earlier versions: {action.source} keeps none"
    history = read(action.id)
    target, skipped, carried = managers[action.target], list(history.skipped), 0
    for label, value in history.values:
        if target.size_problem(action.id, len(value)):
            skipped.append(f"{label} does not fit")  # too large (or empty) for the target
            continue
        managers.write(action.target, action.id, value)
        carried += 1
    note = f"carried {carried} earlier version{'' if carried == 1 else 's'} from {action.source}"
    return note + (f" - skipped {' '.join(skipped)}" if skipped else "")


def history_in_progress(state) -> frozenset[int]:
    """Actions of a journal (JournalState) that were writing earlier versions when the
    apply stopped: their target may hold any of those versions."""
    return frozenset(i for i, record in state.actions.items()
                     if "history_started" in record.steps and "written" not in record.steps)
