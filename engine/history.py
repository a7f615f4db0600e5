"""The apply history: one record per apply, resume and rollback run, kept beside the config.

`.secretshift/history/<config file name>.jsonl` is append-only and fsynced. Each record
says when the run started and ended, who ran it on which host, the digests of the config
and of the plan, how the run ended and how far it got, and each action's outcome. It
never holds a value or a fingerprint.

A record is built from the journal records the run wrote (journal.py), so the history
says what the journal says. `recorded` writes it however the run ends, a failure or a
Ctrl-C included. A run that wrote nothing to a journal (refused before any write, cancelled
at the prompt, or finding everything done already) changed nothing and is not recorded.
A run killed outright (SIGKILL, power loss) leaves no record, but the resume or rollback
that follows it does.

Not for deciding anything: resume and rollback read the journal, never the history.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import SecretShiftError
from engine.journal import JournalState, iter_records, read_journal, write_whole
from engine.plan import Plan
from engine.render.json import json_chunks

HISTORY_DIR = "history"
APPLY_OUTCOMES = ("done", "already", "failed", "not started")
ROLLBACK_OUTCOMES = ("undone", "already", "not undone", "unchanged")


class HistoryError(SecretShiftError):
    """The history file cannot be read."""


def history_file(state_dir: Path, config_name: str) -> Path:
    """Where the history of the config named `config_name` is kept (two configs in one
    folder keep separate histories, as they keep separate journals)."""
    return state_dir / HISTORY_DIR / f"{config_name}.jsonl"


def plan_digest(plan: Plan) -> str:
    """sha256 (hex) of the plan's canonical JSON: equal digests mean the same plan."""
    digest = hashlib.sha256()
    for chunk in json_chunks(plan, compact=True, sort_keys=True):  # not one string: plans grow large
        digest.update(chunk.encode("utf-8"))
    return digest.hexdigest()


# --- writing ----------------------------------------------------------------------

@contextmanager
def recorded(file: Path, kind: str, about: dict[str, Any], journal_path: Callable[[], Path | None],
             warn: Callable[[str], None], plan: Plan | None = None) -> Iterator[None]:
    """Append to `file` the record of the run carried out in the body, however it ends.

    `kind` is apply, resume or rollback; `about` says who runs it (user, host,
    secretshift_version); `journal_path` names the run's journal once there is one;
    `plan` is the one it carries out, when the caller has it (see read_journal).
    A history that cannot be written is a warning: it never hides the run's own error,
    nor turns a finished apply into a failed one."""
    started, clock = datetime.now(timezone.utc), time.monotonic()
    path = journal_path()
    since = sum(1 for _ in iter_records(path)) if path is not None and path.exists() else 0
    failure: BaseException | None = None
    try:
        yield
    except BaseException as error:  # recorded, then raised again
        failure = error
        raise
    finally:
        path = journal_path()
        if path is not None:
            try:
                record = run_record(path, since, kind, about, started, time.monotonic() - clock, failure, plan)
                if record is not None:
                    append(file, record)
            except (OSError, SecretShiftError) as error:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                warn(f"warning: the history record of this {kind} could not be written to {file}: {reason}")


def run_record(path: Path, since: int, kind: str, about: dict[str, Any], started: datetime,
               seconds: float, failure: BaseException | None, plan: Plan | None = None) -> dict[str, Any] | None:
    """The history record of one run: the journal records from number `since` on are the
    ones it wrote. None when it wrote none (it changed nothing)."""
    event = "rollback_step" if kind == "rollback" else "step"
    steps, ends, count = _this_run(path, since, event)
    if not count:
        return None
    state = read_journal(path, sealed=False, plan=plan)
    status = ends[-1].get("status", "unknown") if ends else _status_of(failure, kind)
    actions = (_rollback_actions(state, steps, status) if kind == "rollback"
               else _apply_actions(state, steps))
    record: dict[str, Any] = {
        "kind": kind,
        "apply_id": state.apply_id,
        "started": _iso(started),
        "finished": _iso(datetime.now(timezone.utc)),
        "seconds": round(seconds, 3),
        "user": about.get("user", "?"),
        "host": about.get("host", "?"),
        "secretshift_version": about.get("secretshift_version", "?"),
        "config_digest": state.plan.config_digest,
        "plan_digest": plan_digest(state.plan),
        "status": status,
        **_progress(kind, actions),
    }
    error = ends[-1].get("error") if ends else _message(failure)
    if error:
        record["error"] = error
    record["actions"] = actions
    return record


def append(file: Path, record: dict[str, Any]) -> None:
    """Append one record to the history and make it durable (folder 0700, file 0600)."""
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        write_whole(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _apply_actions(state: JournalState, steps: dict[int, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    actions = []
    for index, action in enumerate(state.plan.changes):
        mine = steps.get(index, [])
        names = {step for step, _ in mine}
        outcome = ("done" if "done" in names else "already" if "already" in names
                   else "failed" if mine else "not started")
        actions.append({**_identity(action), "outcome": outcome, **_duration(mine)})
    return actions


def _rollback_actions(state: JournalState, steps: dict[int, list[tuple[str, str]]],
                      status: str) -> list[dict[str, Any]]:
    """Undone in this run; else already undone (or nothing left to undo) when the rollback
    finished; else not undone; unchanged: the apply never changed this action's secret."""
    actions = []
    for index, action in enumerate(state.plan.changes):
        changed = {"written", "source_value"} & set(state.actions[index].steps) if index in state.actions else set()
        if index in steps:
            outcome = "undone"
        elif not changed:
            outcome = "unchanged"
        else:
            outcome = "already" if status == "rolled_back" else "not undone"
        actions.append({**_identity(action), "outcome": outcome, **_duration(steps.get(index, []))})
    return actions


def _this_run(path: Path, since: int, event: str) -> tuple[dict[int, list[tuple[str, str]]], list[dict], int]:
    """From the journal records numbered `since` on (the run's own): per action index its
    (step, time) of kind `event` in the order written, the end records, and how many
    records there are."""
    steps: dict[int, list[tuple[str, str]]] = {}
    ends, count = [], 0
    for record in iter_records(path, since):
        count += 1
        if record.get("event") == event:
            steps.setdefault(record["index"], []).append((record["step"], record.get("time", "")))
        elif record.get("event") == "end":
            ends.append(record)
    return steps, ends, count


def _identity(action) -> dict[str, Any]:
    return {"kind": action.id.kind.value, "name": action.id.name, "from": action.source,
            "to": action.target, "action": action.action}


def _duration(steps: list[tuple[str, str]]) -> dict[str, float]:
    """Seconds from an action's first step to its last in this run (none without times)."""
    try:
        first, last = datetime.fromisoformat(steps[0][1]), datetime.fromisoformat(steps[-1][1])
    except (IndexError, ValueError):
        return {}
    return {"seconds": round((last - first).total_seconds(), 3)}


def _progress(kind: str, actions: list[dict[str, Any]]) -> dict[str, int]:
    outcomes = Counter(a["outcome"] for a in actions)
    if kind == "rollback":
        return {"done": outcomes["undone"], "total": len(actions) - outcomes["unchanged"]}
    return {"done": outcomes["done"] + outcomes["already"], "total": len(actions)}


def _status_of(failure: BaseException | None, kind: str) -> str:
    """How a run ended that wrote no end record (it was stopped by the error itself)."""
    if failure is None:
        return "unknown"
    if kind == "rollback":
        return "rollback_failed"
    return "interrupted" if isinstance(failure, KeyboardInterrupt) else "failed"


def _message(failure: BaseException | None) -> str:
    """Engine errors are worded never to hold a value; anything else is named by type only."""
    if failure is None:
        return ""
    return str(failure) if isinstance(failure, SecretShiftError) else type(failure).__name__


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


# --- reading ----------------------------------------------------------------------

def read_history(file: Path) -> list[dict[str, Any]]:
    """Every record of a history file, oldest first ([] when there is none yet); a torn
    last line (a crash mid-write) is left out."""
    try:
        lines = file.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise HistoryError(f"cannot read the history {file}: {error.strerror}") from None
    history = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if number == len(lines):
                break
            raise HistoryError(f"{file}:{number}: the history is damaged (not a JSON record)") from None
        if not isinstance(record, dict):
            raise HistoryError(f"{file}:{number}: the history is damaged (not a JSON object)")
        history.append(record)
    return history


def render_history_json(history: list[dict[str, Any]]) -> str:
    """The records as they are stored, as one JSON array."""
    return json.dumps(history, indent=2, ensure_ascii=False) + "\n"


def render_history_text(history: list[dict[str, Any]], config_name: str) -> str:
    """One line per run, oldest first: start time, kind, apply id, status, progress,
    duration, user@host; a failed run adds the action it failed on and the error."""
    if not history:
        return f"No apply recorded for {config_name} yet.\n"
    return "".join(history_line(record) + "\n" for record in history)


def history_line(record: dict[str, Any]) -> str:
    """One run in one line."""
    outcomes = Counter(a.get("outcome") for a in record.get("actions", []))
    order = ROLLBACK_OUTCOMES[:3] if record.get("kind") == "rollback" else APPLY_OUTCOMES
    counts = ", ".join(f"{outcomes[o]} {o}" for o in order if outcomes[o])
    started = str(record.get("started", "?"))[:19] + ("Z" if record.get("started") else "")
    line = (f"{started}  {record.get('kind', '?'):<8}  {record.get('apply_id', '?')}  "
            f"{record.get('status', '?'):<15}  {record.get('done', '?')}/{record.get('total', '?')}"
            f"{f' ({counts})' if counts else ''}  {float(record.get('seconds', 0)):.1f}s  "
            f"{record.get('user', '?')}@{record.get('host', '?')}")
    failed = [a for a in record.get("actions", []) if a.get("outcome") == "failed"]
    if failed:
        line += f"  failed at: {failed[0].get('kind')} {failed[0].get('name')}"
    if record.get("error"):
        line += f"  error: {record['error']}"
    return line
