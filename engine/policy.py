"""PURE: the config's `policy:` gates, checked on a plan's changes.

`plan` turns every violation into a plan error (code `policy`), and `apply` checks the
plan it is about to carry out again (a saved plan included) before any write, against
the policy and the state of that moment. Each message starts with the rule's name:

- policy.no_deletes: no action may delete a source (delete, move, update in move mode);
- policy.no_overwrite_unmanaged: an update may only overwrite a value secretshift wrote
  (the target's fingerprint is the one the state file recorded for it);
- policy.max_changes: at most this many changes (move, copy, update, delete) per plan;
- policy.source_only: managers that are never written (deleting from them, as a move's
  source, is governed by no_deletes).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.config import Policy
from engine.plan import Action, Problem
from engine.state import State


def check_policy(changes: Iterable[Action], policy: Policy, state: State, key_id: str) -> list[Problem]:
    """The policy violations of `changes`, rule by rule, in plan order; `key_id` is the
    fingerprint key's id, for comparing fingerprints with the state's."""
    changes = list(changes)
    problems = []
    if policy.no_deletes:
        problems += [_no_deletes(a) for a in changes if a.delete_source]
    if policy.no_overwrite_unmanaged:
        problems += [p for a in changes if a.overwrites for p in _unmanaged(a, state, key_id)]
    if policy.source_only:
        problems += [_source_only(a) for a in changes if a.writes_target and a.target in policy.source_only]
    if policy.max_changes is not None and len(changes) > policy.max_changes:
        problems.append(Problem(
            "policy", None,
            f"policy.max_changes: the plan has {len(changes)} changes, more than the {policy.max_changes} "
            f"the policy allows; narrow the migrations (include/exclude) to apply it in smaller plans",
        ))
    return problems


def _no_deletes(action: Action) -> Problem:
    return Problem("policy", action.id,
                   f"policy.no_deletes: the {action.action} of {action.id} would delete it from manager "
                   f"{action.source!r}; the policy forbids deletes (mode: copy leaves the source in place)")


def _unmanaged(action: Action, state: State, key_id: str) -> list[Problem]:
    placed = state.placed(action.target, action.id)
    if placed is not None and state.fingerprint_key_id == key_id and placed.fingerprint == action.target_fingerprint:
        return []
    why = ("secretshift never wrote" if placed is None
           else "secretshift recorded under another fingerprint key" if state.fingerprint_key_id != key_id
           else "changed after secretshift wrote it")
    return [Problem("policy", action.id,
                    f"policy.no_overwrite_unmanaged: updating {action.id} would overwrite the value in manager "
                    f"{action.target!r} at {action.target_location}, which {why}")]


def _source_only(action: Action) -> Problem:
    return Problem("policy", action.id,
                   f"policy.source_only: the {action.action} of {action.id} would write it to manager "
                   f"{action.target!r}, which the policy allows only as a source")
