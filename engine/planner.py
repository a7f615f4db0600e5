"""PURE: make_plan(config, inventory, rules, references) -> Plan.

No I/O, no clock, no randomness: the same inputs give the same plan, in a stable order.
`rules` gives, per manager, what the planner may ask without I/O: where a secret would
live (`location`), whether a name or a size fits (`name_problem`, `size_problem`), and
`read_only`. Backends satisfy that protocol; tests may pass simple stand-ins.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine import planchecks
from engine.config import Config, Migration, SecretPlacement
from engine.inventory import Inventory
from engine.model import InventoryEntry, Kind, SecretId
from engine.plan import Action, Plan, Problem


class PlacementRules(Protocol):
    """What the planner needs to know about a manager, answered without I/O."""

    read_only: bool

    def location(self, secret: SecretId) -> str: ...

    def name_problem(self, secret: SecretId) -> str | None: ...

    def size_problem(self, secret: SecretId, size: int) -> str | None: ...


@dataclass(frozen=True)
class Placement:
    """Where one secret must go, resolved from an explicit entry or a migration."""

    id: SecretId
    source: str | None  # the manager holding the copy to place (None: none found)
    target: str
    mode: str
    origin: str  # "secrets entry at line 12" / "migration harness -> vault at line 20"
    history: str = "current"


def make_plan(
    config: Config,
    inventory: Inventory,
    rules: Mapping[str, PlacementRules],
    referenced: Iterable[SecretId] = (),
    first_site: Mapping[SecretId, str] | None = None,
    reference_sites: Mapping[SecretId, Sequence[str]] | None = None,
) -> Plan:
    """Compute the actions that bring every manager to the config's placement.

    `referenced` lists the secret of every reference found in the scanned files (one
    item per reference); a reference to a secret no manager holds is a plan error, named
    by `first_site` (file:line:col of its first reference) when given. `reference_sites`
    gives, per secret, the file:line:col of each of its references, carried into the
    secret's action as they are.
    """
    reference_counts = Counter(referenced)
    placements, errors = _placements(config, inventory)
    actions = []
    for placement in placements:
        action, problems = _decide(placement, config, inventory, rules)
        errors.extend(problems)
        if action is not None:
            actions.append(_with_references(action, reference_counts, reference_sites or {}))
    errors.extend(_unresolved_references(reference_counts, inventory, first_site or {}))
    actions, errors, warnings = planchecks.review(config, inventory, actions, errors, _matches)
    actions.sort(key=lambda a: (a.source or "", a.target, a.id))
    errors.sort(key=_problem_order)
    return Plan(actions=tuple(actions), errors=tuple(errors), warnings=tuple(warnings))


def reads_needed(config: Config, listing: Mapping[str, frozenset[SecretId]]) -> dict[str, set[SecretId]]:
    """Which values refresh must read (to fingerprint them) for `make_plan` to decide.

    Given only what each manager lists: every copy of an explicitly placed secret, and
    for migrations each matching source secret plus the target's copy of it, if any. A
    secret no placement concerns is never read, so a plan over a large, settled manager
    costs a listing, not a read per secret.
    """
    needed: dict[str, set[SecretId]] = {m: set() for m in listing}
    explicit = {SecretId(p.kind, p.name) for p in config.secrets}
    for secret in explicit:
        for manager, held in listing.items():
            if secret in held:
                needed[manager].add(secret)
    for migration in config.migrations:
        target = listing.get(migration.target, frozenset())
        for secret in listing.get(migration.source, frozenset()):
            if secret not in explicit and _matches(migration, secret):
                needed[migration.source].add(secret)
                if secret in target:
                    needed[migration.target].add(secret)
    return needed


_DELETES_SOURCE = {"move": True, "copy": False, "delete": True}  # update: either, by mode


def disagreements(plan: Plan, config: Config, rules: Mapping[str, PlacementRules]) -> list[str]:
    """Why a saved plan's actions are not ones this config could have produced (an edited
    or mangled plan file): unknown managers, a move onto itself, a location that is not
    the target's, or a secret the config does not place there that way."""
    problems = []
    explicit = {SecretId(p.kind, p.name): p for p in config.secrets}
    seen: set[tuple[SecretId, str | None]] = set()
    for action in plan.changes:
        unknown = [m for m in (action.source, action.target) if m not in config.managers]
        if (action.id, action.source) in seen:
            problems.append(f"{action.id} from manager {action.source!r} is listed twice")
        elif unknown:
            problems.append(f"{action.id} names manager {unknown[0]!r}, which the config does not define")
        elif action.source == action.target:
            problems.append(f"{action.id} moves from manager {action.source!r} onto itself")
        elif action.target_location != rules[action.target].location(action.id):
            problems.append(f"{action.id} names {action.target_location} as its place in {action.target!r}, "
                            f"which puts it at {rules[action.target].location(action.id)}")
        elif _DELETES_SOURCE.get(action.action, action.delete_source) != action.delete_source:
            problems.append(f"{action.id}: a {action.action} action with delete_source "
                            f"{str(action.delete_source).lower()}")
        elif (history := _placed_so(action, explicit.get(action.id), config)) is None:
            problems.append(f"{action.id}: the config does not place it in {action.target!r} from "
                            f"{action.source!r} by {'move' if action.delete_source else 'copy'}")
        elif action.history != history:
            problems.append(f"{action.id}: history {action.history} where the config says history {history}")
        elif action.overwrites and action.action != "update":
            problems.append(f"{action.id}: a {action.action} onto the different value manager {action.target!r} "
                            "holds; only an update may overwrite it")
        elif action.action == "update" and not action.overwrites:
            problems.append(f"{action.id}: an update with no different value in manager {action.target!r} "
                            "to overwrite")
        elif action.action == "update" and config.on_conflict != "overwrite":
            problems.append(f"{action.id}: an update overwrites the value in manager {action.target!r}, "
                            f"which on_conflict: {config.on_conflict} does not allow")
        seen.add((action.id, action.source))
    return problems


def _placed_so(action, entry: SecretPlacement | None, config: Config) -> str | None:
    """The `history` setting of what places `action`'s secret in its target from its
    source in its mode; None when nothing in the config does."""
    mode = "move" if action.delete_source else "copy"
    if entry is not None:
        placed = entry.manager == action.target and entry.source in (None, action.source) and entry.mode == mode
        return "current" if placed else None
    return next((m.history for m in config.migrations if m.source == action.source and m.target == action.target
                 and m.mode == mode and _matches(m, action.id)), None)


def _problem_order(problem: Problem) -> tuple:
    secret = problem.id
    return (secret is None, secret.kind.value if secret else "", secret.name if secret else "",
            problem.code, problem.message)


def _placements(config: Config, inventory: Inventory) -> tuple[list[Placement], list[Problem]]:
    """Resolve explicit entries and migrations into one placement per secret."""
    placements: list[Placement] = []
    errors: list[Problem] = []
    explicit = {SecretId(p.kind, p.name) for p in config.secrets}
    for entry in config.secrets:
        placement, problem = _explicit_placement(entry, inventory)
        if problem:
            errors.append(problem)
        elif placement:
            placements.append(placement)
    claims: dict[SecretId, list[tuple[Migration, str]]] = {}
    for migration in config.migrations:
        for secret in inventory.ids(migration.source):
            if secret not in explicit and _matches(migration, secret):
                claims.setdefault(secret, []).append((migration, migration.source))
    for secret, claimed in sorted(claims.items()):
        placement, extra, problem = _migration_placement(secret, claimed, inventory)
        if problem:
            errors.append(problem)
            continue
        placements.append(placement)
        placements.extend(extra)
    return placements, errors


def _explicit_placement(entry: SecretPlacement, inventory: Inventory):
    secret = SecretId(entry.kind, entry.name)
    origin = f"secrets entry at line {entry.line}" if entry.line else "secrets entry"
    in_target = inventory.get(entry.manager, secret) is not None
    if entry.source is not None:
        if inventory.get(entry.source, secret) is None:
            if in_target:
                return Placement(secret, None, entry.manager, entry.mode, origin), None
            return None, Problem(
                "missing", secret,
                f"{secret} is not in manager {entry.source!r} (from) nor in {entry.manager!r}",
            )
        return Placement(secret, entry.source, entry.manager, entry.mode, origin), None
    elsewhere = [m for m in inventory.holders(secret) if m != entry.manager]
    if len(elsewhere) > 1:
        return None, Problem(
            "ambiguous", secret,
            f"{secret} is held by {', '.join(elsewhere)}; name the one to use with 'from:'",
        )
    if not elsewhere and not in_target:
        return None, Problem("missing", secret, f"{secret} is not held by any manager")
    source = elsewhere[0] if elsewhere else None
    return Placement(secret, source, entry.manager, entry.mode, origin), None


def _matches(migration: Migration, secret: SecretId) -> bool:
    if secret.kind not in migration.kinds:
        return False
    included = any(fnmatch.fnmatchcase(secret.name, g) for g in migration.include)
    return included and not any(fnmatch.fnmatchcase(secret.name, g) for g in migration.exclude)


def _migration_placement(secret: SecretId, claimed: list, inventory: Inventory):
    """One placement for a secret matched by one or more migrations.

    Several migrations may gather the same secret from several sources into one target
    when every copy is identical: the first moves it, the others only clean up.
    """
    targets = {m.target for m, _ in claimed}
    describe = ", ".join(f"{m.source} -> {m.target} (line {m.line})" for m, _ in claimed)
    if len(targets) > 1:
        return None, [], Problem("ambiguous", secret, f"{secret} is placed by several migrations: {describe}")
    fingerprints = {inventory.get(source, secret).fingerprint for _, source in claimed}
    if len(fingerprints) > 1:
        return None, [], Problem(
            "ambiguous", secret,
            f"{secret} has different values in {', '.join(s for _, s in claimed)}, all migrated to the same manager",
        )
    first, *others = claimed
    as_placement = lambda m: Placement(secret, m.source, m.target, m.mode, f"migration at line {m.line}",  # noqa: E731
                                       m.history)
    return as_placement(first[0]), [as_placement(m) for m, _ in others], None


def _decide(placement: Placement, config: Config, inventory: Inventory, rules: Mapping[str, PlacementRules]):
    """The action for one placement, or the errors that prevent it."""
    secret, target = placement.id, placement.target
    target_rules = rules[target]
    target_entry = inventory.get(target, secret)
    source_entry = inventory.get(placement.source, secret) if placement.source else None
    location = target_rules.location(secret)
    base = dict(
        id=secret, source=placement.source, target=target, target_location=location,
        target_fingerprint=target_entry.fingerprint if target_entry else None,
        source_location=source_entry.location if source_entry else None,
        history=placement.history,
    )
    if source_entry is None:  # already in place, nothing elsewhere
        return Action("noop", source_fingerprint=target_entry.fingerprint, **base), []
    move = placement.mode == "move"
    if target_entry is not None and target_entry.fingerprint == source_entry.fingerprint:
        if not move:
            return Action("noop", source_fingerprint=source_entry.fingerprint, **base), []
        problems = _read_only_problems(placement, rules, writes=False, deletes=True)
        action = Action("delete", source_fingerprint=source_entry.fingerprint, delete_source=True, **base)
        return (None if problems else action), problems
    if target_entry is not None:
        if config.on_conflict == "skip":
            return Action("noop", source_fingerprint=source_entry.fingerprint, **base), []
        if config.on_conflict == "fail":
            return None, [Problem(
                "conflict", secret,
                f"manager {target!r} already holds a different value for {secret} at {location}; "
                f"set on_conflict: overwrite or skip to decide",
            )]
    kind = "update" if target_entry is not None else ("move" if move else "copy")
    problems = _read_only_problems(placement, rules, writes=True, deletes=move)
    problems += _fit_problems(placement, source_entry, target_rules)
    if problems:
        return None, problems
    return Action(kind, source_fingerprint=source_entry.fingerprint, delete_source=move, **base), []


def _read_only_problems(placement: Placement, rules, *, writes: bool, deletes: bool) -> list[Problem]:
    problems = []
    if writes and rules[placement.target].read_only:
        problems.append(Problem(
            "read_only", placement.id,
            f"{placement.id} must be written to manager {placement.target!r}, which is read_only",
        ))
    if deletes and rules[placement.source].read_only:
        problems.append(Problem(
            "read_only", placement.id,
            f"moving {placement.id} deletes it from manager {placement.source!r}, which is read_only "
            f"(use mode: copy to leave it there)",
        ))
    return problems


def _fit_problems(placement: Placement, source_entry: InventoryEntry, target_rules) -> list[Problem]:
    problems = []
    name_problem = target_rules.name_problem(placement.id)
    if name_problem:
        problems.append(Problem(
            "invalid_name", placement.id,
            f"manager {placement.target!r} cannot hold {placement.id}: {name_problem}",
        ))
    size_problem = target_rules.size_problem(placement.id, source_entry.size)
    if size_problem:
        problems.append(Problem(
            "too_large", placement.id,
            f"manager {placement.target!r} cannot hold {placement.id}: {size_problem}",
        ))
    return problems


def _with_references(action: Action, counts: Counter, sites: Mapping[SecretId, Sequence[str]]) -> Action:
    count = counts.get(action.id, 0)
    if not count:
        return action
    return dataclasses.replace(action, references=count, reference_sites=tuple(sites.get(action.id, ())))


def _unresolved_references(counts: Counter, inventory: Inventory, first_site: Mapping[SecretId, str]) -> list[Problem]:
    problems = []
    for secret, count in sorted(counts.items()):
        if inventory.holders(secret):
            continue
        where = f" (first at {first_site[secret]})" if secret in first_site else ""
        other = SecretId(Kind.FILE if secret.kind is Kind.TEXT else Kind.TEXT, secret.name)
        hint = f"; a {other.kind.value} secret of that name exists" if inventory.holders(other) else ""
        problems.append(Problem(
            "unresolved_reference", secret,
            f"{count} reference{'s' if count != 1 else ''}{where} name{'' if count != 1 else 's'} {secret}, "
            f"which no manager holds{hint}",
        ))
    return problems
