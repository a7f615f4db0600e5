"""PURE: the plan's rules for secrets kept without a current value, and for two secrets
that would share one physical name, applied on top of planner.py's decisions.

A manager may keep a secret without a readable current value (`Inventory.unavailable`):
KV v2 with its latest version deleted or destroyed, AWS pending deletion (recovery
window) or without a value, or in a shape that is not one value (`unreadable`: a Vault
secret with fields besides "value", an AWS SecretBinary named as text). Here is what
the plan does with them:

- as a source: skipped with a `soft_deleted` (or `unreadable`) warning, or a plan error
  when the entry says `soft_deleted: fail`; nothing is said when the target already
  holds the secret (what a finished move leaves behind). A secret without a value is a
  `missing` error, and so is a secrets entry whose only copy is one of these.
- as a target: KV v2 takes a new version over a deleted one (the action stays, with a
  `replaces_deleted` warning); AWS refuses a name pending deletion (a `conflict` error
  that says how to restore or free it); a target secret without a value is `missing`;
  writing over an unreadable one would drop what it holds (a `conflict`).

No I/O, no clock: the same inputs give the same findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import groupby

from engine.config import Config, Migration
from engine.inventory import Inventory
from engine.model import SecretId, Unavailable
from engine.plan import Action, PlanWarning, Problem

Matches = Callable[[Migration, SecretId], bool]


def review(config: Config, inventory: Inventory, actions: Iterable[Action], errors: Iterable[Problem],
           matches: Matches) -> tuple[list[Action], list[Problem], list[PlanWarning]]:
    """The actions that may stay, every error, and the warnings, once the rules above
    and the one-secret-per-physical-name rule are applied."""
    errors, warnings = list(errors), []
    kept = []
    for action in actions:
        finding = _target_finding(action, inventory.unavailable_in(action.target, action.id))
        if isinstance(finding, PlanWarning):
            warnings.append(finding)
        elif finding is not None:
            errors.append(finding)
            continue
        kept.append(action)
    kept, clashes = _without_collisions(kept)
    errors += clashes
    found = _migration_sources(config, inventory, matches) + _explicit_sources(config, inventory, errors)
    replaced = {f.id for f in found if f.id is not None}
    errors = [e for e in errors if not (e.code == "missing" and e.id in replaced and _explicit(config, e.id))]
    errors += [f for f in found if isinstance(f, Problem)]
    warnings += [f for f in found if isinstance(f, PlanWarning)]
    return kept, errors, sorted(warnings, key=lambda w: (w.id, w.manager or "", w.code))


def describe(state: Unavailable) -> str:
    """What a manager's copy is, in one clause (`its latest version (3) is deleted ...`)."""
    version = f" ({state.version})" if state.version else ""
    if state.state == "deleted":
        since = f" since {state.when}" if state.when else ""
        return f"its latest version{version} is soft-deleted{since}"
    if state.state == "destroyed":
        return f"its latest version{version} is destroyed"
    if state.state == "pending_deletion":
        until = f" until {state.when[:10]}" if state.when else ""
        return f"it is pending deletion{until} (AWS recovery window)"
    if state.state == "unreadable":
        return f"it is not held as one value ({state.detail})"
    return "its current version holds no value (neither SecretString nor SecretBinary)"


def restore_hint(state: Unavailable, purpose: str = "migrate") -> str:
    """How to make the copy readable again, so a plan can migrate (or adopt) it."""
    if state.state == "deleted":
        return f"undelete that version (vault kv undelete) to {purpose} it"
    if state.state == "destroyed":
        return f"its value is gone; write a new version to {purpose} it"
    if state.state == "pending_deletion":
        return f"restore it with `aws secretsmanager restore-secret --secret-id {state.location}` to {purpose} it"
    if state.state == "unreadable":
        return "secretshift leaves it alone"
    return f"give it a value (aws secretsmanager put-secret-value) to {purpose} it"


def _target_finding(action: Action, state: Unavailable | None) -> Problem | PlanWarning | None:
    if state is None or not action.writes_target:
        return None
    where = f"manager {action.target!r} at {state.location}"
    if state.state == "pending_deletion":
        after = f"after {state.when[:10]}, when AWS deletes it for good" if state.when else \
            "once AWS deletes it for good at the end of its recovery window"
        return Problem("conflict", action.id, (
            f"{action.id} cannot be written to {where}: that name is pending deletion"
            f"{' until ' + state.when[:10] if state.when else ''} and AWS refuses to reuse it meanwhile. "
            f"Restore it with `aws secretsmanager restore-secret --secret-id {state.location}` (its old "
            f"value comes back; plan again and on_conflict decides), or plan again {after}, or free the "
            f"name now with `aws secretsmanager delete-secret --secret-id {state.location} "
            "--force-delete-without-recovery`"))
    if state.state == "no_value":
        return Problem("missing", action.id, (
            f"{action.id} cannot be written to {where}: the secret there has no current value "
            "(created with neither SecretString nor SecretBinary); give it a value or delete it, "
            "then plan again"))
    if state.state == "unreadable":
        return Problem("conflict", action.id, (
            f"{action.id} cannot be written to {where}: {describe(state)}, and a write would replace "
            "all of it; move it aside or delete it, then plan again"))
    return PlanWarning("replaces_deleted", action.id, action.target, (
        f"{action.id} is written to {where} as a new version over the copy kept there: {describe(state)}"))


def _without_collisions(actions: list[Action]) -> tuple[list[Action], list[Problem]]:
    """Two secrets bound for one physical location of one manager: a `conflict` naming
    both, and neither is written."""
    def place(action: Action) -> tuple[str, str]:
        return action.target, action.target_location

    clashing, errors = set(), []
    for (target, location), group in groupby(sorted(actions, key=place), key=place):
        secrets = sorted({a.id for a in group})
        if len(secrets) < 2:
            continue
        clashing.add((target, location))
        others = ", ".join(str(s) for s in secrets[1:])
        errors.append(Problem("conflict", secrets[0], (
            f"{secrets[0]} and {others} would both be stored at {location} in manager {target!r} "
            f"(name mapping); give one of them rename: {{{target}: ...}} or change the manager's name_map")))
    return [a for a in actions if not (place(a) in clashing and a.is_change)], errors


def _migration_sources(config: Config, inventory: Inventory, matches: Matches) -> list[Problem | PlanWarning]:
    explicit = {SecretId(p.kind, p.name) for p in config.secrets}
    found, seen = [], set()
    for migration in config.migrations:
        for secret, state in sorted(inventory.unavailable.get(migration.source, {}).items()):
            if secret in explicit or (migration.source, secret) in seen or not matches(migration, secret):
                continue
            seen.add((migration.source, secret))
            if state.state != "no_value" and migration.target in inventory.holders(secret):
                continue  # the target holds it: what a finished move leaves in the source
            origin = f"the migration at line {migration.line}" if migration.line else "the migration"
            found.append(_source_finding(state, migration.source, migration.target, migration.soft_deleted, origin))
    return found


def _explicit_sources(config: Config, inventory: Inventory, errors: list[Problem]) -> list[Problem | PlanWarning]:
    """For explicit entries found nowhere readable: the copies kept without a value
    instead, elsewhere or in the entry's own manager."""
    missing = {e.id for e in errors if e.code == "missing"}
    found = []
    for entry in config.secrets:
        secret = SecretId(entry.kind, entry.name)
        if secret not in missing:
            continue
        holders = [entry.source] if entry.source else [m for m in config.managers if m != entry.manager]
        states = [(m, inventory.unavailable_in(m, secret)) for m in holders]
        states = [(m, s) for m, s in states if s is not None]
        if states:
            origin = f"the secrets entry at line {entry.line}" if entry.line else "the secrets entry"
            manager, state = states[0]
            found.append(_source_finding(state, manager, entry.manager, entry.soft_deleted, origin))
        elif (state := inventory.unavailable_in(entry.manager, secret)) is not None:
            found.append(_in_place_finding(state, entry.manager))
    return found


def _in_place_finding(state: Unavailable, manager: str) -> Problem | PlanWarning:
    """The only copy is where the entry places it, kept without a readable value."""
    copy = f"{state.id} in manager {manager!r} ({state.location})"
    if state.state == "no_value":
        return Problem("missing", state.id, f"{copy} is where the config places it, but {describe(state)}; "
                                            f"{restore_hint(state, 'adopt')}")
    code = "unreadable" if state.state == "unreadable" else "soft_deleted"
    return PlanWarning(code, state.id, manager, f"{copy} is where the config places it, but {describe(state)}; "
                                                "nothing is done with it")


def _source_finding(state: Unavailable, source: str, target: str, policy: str, origin: str) -> Problem | PlanWarning:
    copy = f"{state.id} in manager {source!r} ({state.location})"
    if state.state == "no_value":
        return Problem("missing", state.id, f"{copy} cannot be migrated to {target!r}: {describe(state)}; "
                                            f"{restore_hint(state)}")
    if policy == "fail":
        return Problem("missing", state.id, f"{copy} cannot be migrated to {target!r}: {describe(state)}, "
                                            f"and {origin} says soft_deleted: fail; {restore_hint(state)}")
    code = "unreadable" if state.state == "unreadable" else "soft_deleted"
    return PlanWarning(code, state.id, source, f"{copy} is skipped, not migrated to {target!r}: "
                                               f"{describe(state)}; {restore_hint(state)}")


def _explicit(config: Config, secret: SecretId) -> bool:
    return any(SecretId(p.kind, p.name) == secret for p in config.secrets)
