"""The apply journal: every step of an apply, recorded durably before moving on.

One JSON-lines file per apply under `.secretshift/journal/`. The first record holds the
plan (fingerprints, never values); then one record per step of each action; last, how
the apply ended. Values the journal must keep to undo a step (a source's last value
before it is deleted, a target's value before it is overwritten) are sealed with
AES-256-GCM under a key derived from the fingerprint key, bound to (apply, action, step).
Nothing is ever kept in clear. Each record is in the file before the next step is taken,
and fsynced before any change it announces (see Journal), so a crash leaves a journal
that tells how far it got.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import itertools
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine import crypto
from engine.errors import PlanError, SecretShiftError
from engine.model import SecretValue
from engine.plan import Plan
from engine.render.json import json_chunks

FINISHED = ("complete", "rolled_back")
# Steps taken just before a manager is changed: fsynced before that change.
BEFORE_A_CHANGE = frozenset({"started", "target_previous", "source_value"})


class JournalError(SecretShiftError):
    """A journal file cannot be read or trusted."""


@dataclass(slots=True)
class ActionRecord:
    """What the journal says about one action: its steps, in order."""

    steps: list[str] = field(default_factory=list)
    sealed: dict[str, str] = field(default_factory=dict)  # step -> sealed value (base64)


@dataclass
class JournalState:
    """A journal read back: the plan, each action's steps, and how it ended."""

    apply_id: str
    path: Path
    begin: dict[str, Any]  # the begin record, without its plan (that is `plan`)
    plan: Plan
    actions: dict[int, ActionRecord]
    status: str  # running (no end record: killed), complete, failed, interrupted, rolled_back...

    @property
    def finished(self) -> bool:
        """True when nothing is left to resume."""
        return self.status in FINISHED


class Journal:
    """Appends records to one apply's journal file (thread-safe).

    Every record is in the file (written to the kernel, so it survives the process being
    killed) before `write` returns. Records announcing a change to a manager (`started`
    before a write, the kept values before an overwrite or a delete, begin, end, resume
    and rollback records) are also fsynced before `write` returns, so they survive a
    crash of the machine. The records that only say how far an action got after a change
    (written, verified, source_deleted, done, already) are fsynced with the next such
    record, a few milliseconds later in a busy apply and at the latest with `end`: a
    machine crash in that moment leaves an action recorded as `started`, which resume
    sorts out by looking at the managers, as it does after any crash.

    Concurrent writers share fsyncs (group commit): one fsync covers every record
    written while the previous one ran, so a busy apply pays one disk flush per batch.
    """

    def __init__(self, path: Path, apply_id: str, key: bytes):
        self.path = path
        self.apply_id = apply_id
        self.key = key  # seals the values kept before a change
        self._cond = threading.Condition()
        self._written = self._synced = 0  # sequence numbers of records in the file / on disk
        self._flushing = False
        self._fd: int | None = None
        self._failed: OSError | None = None

    @classmethod
    def create(cls, folder: Path, apply_id: str, key: bytes, plan: Plan, about: dict) -> Journal:
        """Start the journal of a new apply in `folder`, recording the plan it carries out."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{apply_id}.jsonl"
        # begin, then the plan as a record of its own, written a piece at a time (readers
        # that know the plan skip it unparsed, see _records), into a file that takes the
        # journal's name only once both are on disk: a journal always has its plan.
        starting = path.with_name(path.name + ".starting")
        begin = (_line({"event": "begin", "apply_id": apply_id, **about}) + "\n").encode("utf-8")
        try:
            fd = os.open(starting, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for piece in [begin, *_pieces([PLAN_RECORD_START, *json_chunks(plan, compact=True), "}\n"])]:
                    write_whole(fd, piece)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(starting, path)
            fsync_folder(folder)
        except OSError as error:
            with contextlib.suppress(OSError):
                starting.unlink(missing_ok=True)
            raise JournalError(f"cannot write the journal {path}: {error.strerror}; nothing was written") from None
        return cls(path, apply_id, key)

    def write(self, record: dict[str, Any], sync: bool = True) -> None:
        """Append one record; with `sync`, make it durable (fsync) before returning.
        Records without a "time" get one (UTC, milliseconds): history derives each
        action's duration from it."""
        line = (_line(record) + "\n").encode("utf-8")
        with self._cond:
            self._check_failed()
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                write_whole(self._fd, line)
            except OSError as error:
                self._failed = error
                self._check_failed()
            self._written += 1
            mine = self._written
            while sync and self._synced < mine:
                self._check_failed()
                if self._flushing:
                    self._cond.wait()
                else:
                    self._sync()

    def _check_failed(self) -> None:
        if self._failed is not None:
            raise JournalError(f"cannot write the journal {self.path}: {self._failed.strerror}; "
                               f"stopping before the next step")

    def _sync(self) -> None:
        """fsync everything written so far; called holding the condition, releases it
        while the disk works so that other writers can append the next batch."""
        upto, fd = self._written, self._fd
        self._flushing = True
        self._cond.release()
        failed: OSError | None = None
        try:
            os.fsync(fd)
        except OSError as error:
            failed = error
        finally:
            self._cond.acquire()
            self._flushing = False
            self._cond.notify_all()
        if failed is not None:  # every waiter of this batch fails: its step must not be taken
            self._failed = failed
        else:
            self._synced = max(self._synced, upto)

    def close(self) -> None:
        """Release the file (records already written stay durable)."""
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def step(self, index: int, step: str, keep: SecretValue | None = None) -> None:
        """Record that action `index` reached `step`; `keep` is sealed into the record.
        Steps that announce a change (see BEFORE_A_CHANGE) are durable on return."""
        record: dict[str, Any] = {"event": "step", "index": index, "step": step}
        if keep is not None:
            sealed = crypto.seal(self.key, keep.data, self._bound(index, step))
            record["sealed"] = base64.b64encode(sealed).decode("ascii")
        self.write(record, sync=step in BEFORE_A_CHANGE or keep is not None)

    def end(self, status: str, **details: Any) -> None:
        """Record how the apply (or rollback) ended, and close the file."""
        self.write({"event": "end", "status": status, **details})
        self.close()

    def unseal(self, index: int, step: str, sealed: str) -> SecretValue:
        """The value kept at `step` of action `index`."""
        try:
            return SecretValue(crypto.unseal(self.key, base64.b64decode(sealed), self._bound(index, step)))
        except (crypto.WrongKey, ValueError):
            raise JournalError(
                f"{self.path}: the value kept for action {index} ({step}) cannot be decrypted "
                f"(the fingerprint key changed, or the journal was altered)"
            ) from None

    def _bound(self, index: int, step: str) -> bytes:
        return f"secretshift journal\x00{self.apply_id}\x00{index}\x00{step}".encode()


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (journal, state file and rewritten files use it)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PLAN_RECORD_START = '{"event":"plan","plan":'
RECORD_START = b'{"event":'


def _line(record: dict[str, Any]) -> str:
    """One record as compact JSON, with its "time" (UTC, milliseconds) when it has none."""
    if "time" not in record:
        record = {**record, "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _pieces(chunks: Iterable[str], size: int = 1 << 20) -> Iterator[bytes]:
    """`chunks` encoded and joined into pieces of about `size` bytes (fewer writes)."""
    buffered, length = [], 0
    for chunk in chunks:
        buffered.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(buffered).encode("utf-8")
            buffered, length = [], 0
    if buffered:
        yield "".join(buffered).encode("utf-8")


def journal_key(fingerprint_key: bytes) -> bytes:
    """The key journal values are sealed with, derived from the fingerprint key."""
    return crypto.derive_key(fingerprint_key, "journal v1")


def read_journal(path: Path, sealed: bool = True, plan: Plan | None = None) -> JournalState:
    """Parse a journal file; a torn last line (a crash mid-write) is ignored. Without
    `sealed` the sealed values are left out (all that resume and rollback need them for):
    the journal of a large move holds every source value, sealed. `plan`: the plan this
    journal records, when the caller has it (the run that wrote it): it is not parsed
    again, which for 50,000 actions is a large transient tree of dicts."""
    records = _records(path, parse_plan=plan is None)
    begin = next(records, None)
    if begin is None or begin.get("event") != "begin":
        raise JournalError(f"{path}: not a secretshift journal (no begin record)")
    recorded = begin.pop("plan", None)  # journals of earlier releases keep the plan in begin
    first = 2 if recorded is not None else 3  # the line number of the first step record
    if recorded is None:
        record = next(records, None)
        if record is None or record.get("event") != "plan":
            raise JournalError(f"{path}: the plan in this journal cannot be read (no plan record)")
        recorded = record.get("plan")
    try:
        plan = plan if plan is not None else Plan.from_dict(recorded)
    except (KeyError, TypeError, ValueError, AttributeError, PlanError) as error:
        raise JournalError(f"{path}: the plan in this journal cannot be read ({error})") from None
    actions: dict[int, ActionRecord] = {}
    status = "running"
    count = len(plan.changes)
    for number, record in enumerate(records, first):
        event = record.get("event")
        if event in ("step", "rollback_step"):
            index, step = record.get("index"), record.get("step")
            if not (isinstance(index, int) and 0 <= index < count and isinstance(step, str)
                    and isinstance(record.get("sealed", ""), str)):
                raise JournalError(f"{path}:{number}: the journal is damaged (a step record needs an "
                                   f"action index below {count}, a step name and sealed text)")
        if event == "step":
            entry = actions.setdefault(index, ActionRecord())
            entry.steps.append(step)
            if sealed and "sealed" in record:
                entry.sealed[step] = record["sealed"]
        elif event == "end":
            status = record["status"]
        elif event == "rollback_begin":
            status = "rolling_back"
    return JournalState(begin["apply_id"], path, begin, plan, actions, status)


def records(path: Path) -> list[dict[str, Any]]:
    """Every record of a journal file, in order, as written (a torn last line is left out)."""
    return list(_records(path))


def iter_records(path: Path, since: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a journal file from number `since` on (0: the first), read as the
    file is, not all at once."""
    return itertools.islice(_records(path), since, None)


def _records(path: Path, parse_plan: bool = False) -> Iterator[dict[str, Any]]:
    """The records in order; the plan record as `{"event": "plan"}` alone unless
    `parse_plan` (only a reader without the plan at hand needs it parsed)."""
    try:
        file = path.open("rb")
    except OSError as error:
        raise JournalError(f"cannot read journal {path}: {error.strerror}") from None
    start = PLAN_RECORD_START.encode("utf-8")
    with file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            if not parse_plan and line.startswith(start) and line.endswith(b"}\n"):
                yield {"event": "plan"}
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if not line.endswith(b"\n"):  # an unterminated last line, torn by a crash: that step never happened
                    return
                record = _after_torn(line)
                if record is None:
                    raise JournalError(f"{path}:{number}: the journal is damaged (not a JSON record)") from None
            if not isinstance(record, dict):
                raise JournalError(f"{path}:{number}: the journal is damaged (not a JSON object)")
            yield record


def write_whole(fd: int, data: bytes) -> None:
    """os.write, failing when the kernel took only part of `data` (a full disk, a file
    size limit): the record is then torn, and no step may follow as if it were on disk."""
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(errno.EIO, f"only {written} of {len(data)} bytes could be written (is the disk full?)")


def _after_torn(line: bytes) -> dict[str, Any] | None:
    """The record that ends `line` when what comes before it is a torn record: a worker
    process (workers.py) killed in the middle of writing one, after which its siblings
    went on appending. The torn step never happened (its change waits for the whole
    record on disk). Every record starts with `{"event":`, which no record holds inside
    (values are sealed and base64), so the last one in the line starts there."""
    start = line.rfind(RECORD_START)
    if start <= 0:
        return None
    try:
        record = json.loads(line[start:])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def journals(folder: Path) -> list[Path]:
    """Every journal in `folder` (one config's), oldest first (apply ids sort by time)."""
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def latest(folder: Path) -> JournalState | None:
    """The most recent journal, or None."""
    paths = journals(folder)
    return read_journal(paths[-1]) if paths else None


def changed_anything(state: JournalState) -> bool:
    """True when the apply wrote a target or deleted a source."""
    return any({"written", "source_value", "history_started"} & set(record.steps) for record in state.actions.values())
