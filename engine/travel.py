"""What travels with a secret besides its current value: metadata, and (on request) history.

Called by the applier around the one write of an action; the read-back verification of
the current value stays the applier's. Managers that keep no metadata (builtin, Vault KV
v1) simply have no `read_metadata`/`write_metadata`, and nothing travels to or from them.
"""

from __future__ import annotations

from engine.managers import Managers
from engine.plan import Action


def carry_metadata(managers: Managers, action: Action) -> None:
    """Copy the description, user tags and format marker from the source to the target,
    when both managers keep metadata and the source has some."""
    source, target = managers[action.source], managers[action.target]
    read = getattr(source, "read_metadata", None)
    write = getattr(target, "write_metadata", None)
    if read is None or write is None:
        return
    metadata = read(action.id)
    if metadata:
        write(action.id, metadata)
