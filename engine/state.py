"""The state file: what secretshift placed where, as fingerprints, never values.

`.secretshift/state/<config file name>.json` (beside the journal and the history, one per
config) records, for each secret an apply placed, the manager, kind, name, location,
the keyed fingerprint of the value secretshift wrote there (the HMAC plans use), when,
and by which apply; and, per manager an apply wrote into, the secrets that manager listed
afterwards. `plan` compares the live managers with it to report drift (drift.py), and
the `no_overwrite_unmanaged` policy rule asks it whether secretshift wrote a value.

How it changes:
- after every apply or resumed apply, however it ends: each action the journal shows
  verified (or found already carried out) records its secret with the fingerprint the
  plan moved; the entries the applied plan reported deleted are forgotten (its reviewers
  saw that), and the managers written into are listed again, which accepts the secrets
  added to them meanwhile;
- after a rollback: the entries of the actions it undid are removed, or put back to the
  entry they replaced, and those managers are listed again.
A value changed outside secretshift stays reported until secretshift writes it again:
the entry keeps what secretshift wrote (the no_overwrite_unmanaged rule relies on it).

Written atomically (temp file, fsync, rename), mode 0600, under the apply lock. Not
for deciding what apply does: the plan and the journal do that.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import SecretShiftError
from engine.journal import fsync_folder, read_journal, records
from engine.jsonstream import chunks
from engine.model import Kind, SecretId
from engine.plan import Action, Plan

FORMAT_VERSION = 1
STATE_DIR = "state"
Key = tuple[str, SecretId]  # (manager, secret)


class StateError(SecretShiftError):
    """The state file cannot be read or written."""


@dataclass(frozen=True, slots=True)
class Placed:
    """One secret secretshift placed: where, the fingerprint of what it wrote, when."""

    manager: str
    id: SecretId
    location: str
    fingerprint: str
    applied_at: str
    apply_id: str | None
    replaced: Placed | None = None  # the entry this apply replaced: rollback puts it back

    def to_dict(self) -> dict[str, Any]:
        """The state file's form of this entry."""
        data = {"manager": self.manager, "kind": self.id.kind.value, "name": self.id.name,
                "location": self.location, "fingerprint": self.fingerprint,
                "applied_at": self.applied_at, "apply_id": self.apply_id}
        if self.replaced is not None:
            data["replaced"] = self.replaced.to_dict()
        return data


@dataclass(frozen=True)
class State:
    """The whole state file as data (empty before the first apply)."""

    fingerprint_key_id: str = ""
    secrets: Mapping[Key, Placed] = field(default_factory=dict)
    listings: Mapping[str, frozenset[SecretId]] = field(default_factory=dict)

    def placed(self, manager: str, secret: SecretId) -> Placed | None:
        """What secretshift recorded for `secret` in `manager`, or None."""
        return self.secrets.get((manager, secret))


def state_file(state_dir: Path, config_name: str) -> Path:
    """Where the state of the config named `config_name` is kept (as history.py names its file)."""
    return state_dir / STATE_DIR / f"{config_name}.json"


# --- pure transitions ---------------------------------------------------------------

def after_apply(state: State, plan: Plan, placed: Iterable[Action], apply_id: str | None, now: str,
                listings: Mapping[str, frozenset[SecretId]], key_id: str) -> State:
    """The state once apply `apply_id` of `plan` carried out the actions in `placed` and
    listed the managers in `listings` again. Entries `plan` reported deleted are forgotten."""
    secrets = dict(state.secrets) if key_id == state.fingerprint_key_id or not state.secrets else {}
    for gone in plan.drift:
        if gone.change == "deleted":
            secrets.pop((gone.manager, gone.id), None)
    for action in placed:
        key = (action.target, action.id)
        previous = secrets.get(key)
        if previous is not None and previous.apply_id == apply_id:  # a resumed apply records again
            previous = previous.replaced
        elif previous is not None:
            previous = replace(previous, replaced=None)
        secrets[key] = Placed(action.target, action.id, action.target_location, action.source_fingerprint or "",
                              now, apply_id, previous)
    return State(key_id, secrets, {**state.listings, **listings})


def after_rollback(state: State, undone: Iterable[Action], apply_id: str,
                   listings: Mapping[str, frozenset[SecretId]]) -> State:
    """The state once rollback undid the actions in `undone` of apply `apply_id`."""
    secrets = dict(state.secrets)
    for action in undone:
        key = (action.target, action.id)
        entry = secrets.get(key)
        if entry is None or entry.apply_id != apply_id:
            continue
        if entry.replaced is not None:
            secrets[key] = entry.replaced
        else:
            del secrets[key]
    return replace(state, secrets=secrets, listings={**state.listings, **listings})


# --- the file ---------------------------------------------------------------------

def to_dict(state: State, config_name: str, now: str, with_secrets: bool = True) -> dict[str, Any]:
    """The state file's JSON document (sorted, so that equal states give equal files).
    Without `with_secrets`, "secrets" is None in its place (write_state streams them)."""
    listings = {}
    for manager, ids in sorted(state.listings.items()):
        listings[manager] = {kind.value: sorted(s.name for s in ids if s.kind is kind) for kind in Kind}
    return {
        "format_version": FORMAT_VERSION,
        "config": config_name,
        "fingerprint_key_id": state.fingerprint_key_id,
        "updated": now,
        "secrets": [state.secrets[key].to_dict() for key in sorted(state.secrets)] if with_secrets else None,
        "listings": listings,
    }


def read_state(path: Path) -> State:
    """The state recorded in `path` (an empty State when there is none yet); a damaged
    file is one StateError naming it."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return State()
    except OSError as error:
        raise StateError(f"cannot read the state file {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise _damaged(path, f"not JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    except UnicodeDecodeError:
        raise _damaged(path, "not JSON: not UTF-8 text") from None
    try:
        return _from_dict(document)
    except KeyError as error:
        raise _damaged(path, f"the key {error.args[0]!r} is missing") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise _damaged(path, str(error) or type(error).__name__) from None


def _damaged(path: Path, why: str) -> StateError:
    return StateError(f"{path}: the secretshift state file is damaged ({why}); restore it from a backup, "
                      f"or delete it to start recording drift again from the next apply")


def _from_dict(document: Any) -> State:
    if not isinstance(document, dict):
        raise TypeError("not a JSON object")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version {document.get('format_version')!r}, this secretshift reads "
                         f"{FORMAT_VERSION}")
    secrets = {}
    for item in document["secrets"]:
        entry = _placed(item)
        secrets[(entry.manager, entry.id)] = entry
    listings = {}
    for manager, by_kind in document["listings"].items():
        listings[_text(manager)] = frozenset(SecretId(Kind(kind), _text(name))
                                             for kind, names in by_kind.items() for name in names)
    return State(_text(document["fingerprint_key_id"]), secrets, listings)


def _placed(item: dict[str, Any]) -> Placed:
    replaced = _placed(item["replaced"]) if item.get("replaced") is not None else None
    apply_id = item["apply_id"]
    return Placed(_text(item["manager"]), SecretId(Kind(item["kind"]), _text(item["name"])),
                  _text(item["location"]), _text(item["fingerprint"]), _text(item["applied_at"]),
                  None if apply_id is None else _text(apply_id), replaced)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, found {type(value).__name__}")
    return value


def write_state(path: Path, state: State, config_name: str) -> None:
    """Replace the state file atomically (temp file, fsync, rename); folder 0700, file 0600."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    secrets = (state.secrets[key].to_dict() for key in sorted(state.secrets))
    pieces = chunks(to_dict(state, config_name, now, with_secrets=False), {"secrets": secrets}, indent=1)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(os.dup(fd), "w", encoding="utf-8") as handle:  # buffered: many small pieces
                handle.writelines(pieces)
                handle.write("\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StateError(f"cannot write the state file {path}: {error.strerror}") from None


# --- recording apply and rollback runs ----------------------------------------------

ListIds = Callable[[str], Iterable[SecretId]]


@contextlib.contextmanager
def recorded_apply(file: Path, config_name: str, key_id: str, plan: Plan,
                   journal_path: Callable[[], Path | None], list_ids: ListIds,
                   warn: Callable[[str], None]) -> Iterator[None]:
    """Record in `file` what the apply (or resume) run in the body placed, however it ends.

    The journal at `journal_path()` says which actions were verified; a run that needed no
    journal (every action found carried out already) placed all of `plan`'s changes. A state that
    cannot be recorded is a warning: it never hides the run's own error. A run stopped at
    once (Ctrl-C twice) lists no manager: the earlier listings stay."""
    failed = stopped = False
    try:
        yield
    except KeyboardInterrupt:
        failed = stopped = True
        raise
    except BaseException:
        failed = True
        raise
    finally:
        try:
            path = journal_path()
            apply_id, placed = None, [] if failed else list(plan.changes)
            if path is not None:
                journal = read_journal(path, sealed=False, plan=plan)
                apply_id = journal.apply_id
                placed = [journal.plan.changes[i] for i, record in sorted(journal.actions.items())
                          if {"verified", "already"} & set(record.steps)]
            if placed:
                listings = {} if stopped else _listings(sorted({a.target for a in placed}), list_ids, warn)
                now = datetime.now(UTC).isoformat(timespec="seconds")
                new = after_apply(read_state(file), plan, placed, apply_id, now, listings, key_id)
                write_state(file, new, config_name)
        except (OSError, SecretShiftError) as error:
            warn(f"warning: the state (for drift and policy) could not be recorded in {file}: {_reason(error)}")


@contextlib.contextmanager
def recorded_rollback(file: Path, config_name: str, journal_path: Path, list_ids: ListIds,
                      warn: Callable[[str], None]) -> Iterator[None]:
    """Forget in `file` what the rollback run in the body undid, however it ends: the
    actions with a rollback step in the journal, and every action that changed something
    once the rollback finished."""
    try:
        yield
    finally:
        try:
            journal = read_journal(journal_path, sealed=False)
            undone = {r["index"] for r in records(journal_path) if r.get("event") == "rollback_step"}
            if journal.status == "rolled_back":
                undone |= {i for i, r in journal.actions.items() if {"written", "source_value"} & set(r.steps)}
            actions = [journal.plan.changes[i] for i in sorted(undone)]
            if actions and file.exists():
                listings = _listings(sorted({a.target for a in actions}), list_ids, warn)
                write_state(file, after_rollback(read_state(file), actions, journal.apply_id, listings), config_name)
        except (OSError, SecretShiftError) as error:
            warn(f"warning: the state (for drift and policy) could not be updated in {file}: {_reason(error)}")


def _listings(managers: list[str], list_ids: ListIds, warn: Callable[[str], None]) -> dict[str, frozenset[SecretId]]:
    """What each manager lists now. One that cannot be listed (it went away with the run's
    own failure) keeps its earlier listing: what was placed is recorded all the same."""
    listings = {}
    for manager in managers:
        try:
            listings[manager] = frozenset(list_ids(manager))
        except SecretShiftError as error:
            warn(f"warning: could not list manager {manager!r} for the state ({_reason(error)}); the next plan "
                 "may report secrets added there since the previous apply as drift")
    return listings


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)
