"""One apply at a time per config: a lock file beside it, with who holds it.

The lock file (`.secretshift/apply.lock`) is created atomically (O_EXCL) and names its
owner, host, process and start time. A lock left by a process that is gone from this
same host is stale and is broken automatically (it cannot be running any more); a lock
held from another host, or by a live process, is reported with its id, and only
`--force-unlock ID` breaks it.

What locking cannot cover: two different configs (or two machines with separate copies
of one config) writing the same manager. The lock lives beside the config, so they do not
see each other's lock; per-action staleness checks still refuse to overwrite a value that
changed since the plan, but nothing serialises them.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import SecretShiftError

LOCK_FILE = "apply.lock"


class LockHeld(SecretShiftError):
    """Another apply holds the lock."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds the lock."""

    id: str
    owner: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        return f"lock {self.id} held by {self.owner}@{self.host} (pid {self.pid}) since {self.since}"


class ApplyLock:
    """Context manager holding the config's apply lock."""

    def __init__(self, state_dir: Path, force_unlock: str | None = None, notice=lambda message: None):
        self.path = state_dir / LOCK_FILE
        self.force_unlock = force_unlock
        self.notice = notice
        self.info: LockInfo | None = None

    def __enter__(self) -> ApplyLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for _ in range(3):  # a lock broken under us by another process: try again
            if self._try_create():
                return self
            self._break_if_allowed(self._holder())
        raise LockHeld(f"cannot take the apply lock {self.path}")

    def __exit__(self, *exc) -> None:
        holder = self._holder()
        if holder is not None and self.info is not None and holder.id == self.info.id:
            self.path.unlink(missing_ok=True)

    def _try_create(self) -> bool:
        info = LockInfo(
            id=uuid.uuid4().hex[:12], owner=_user(), host=socket.gethostname(), pid=os.getpid(),
            since=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(info.__dict__, handle)
            handle.flush()
            os.fsync(handle.fileno())
        self.info = info
        return True

    def _holder(self) -> LockInfo | None:
        try:
            return LockInfo(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):  # torn or foreign: treat as held by nobody known
            return LockInfo(id="unreadable", owner="?", host="?", pid=0, since="?")

    def _break_if_allowed(self, holder: LockInfo | None) -> None:
        if holder is None:
            return
        if self.force_unlock is not None and self.force_unlock == holder.id:
            self.notice(f"Breaking {holder.describe()} as asked (--force-unlock).")
        elif holder.host == socket.gethostname() and holder.pid and not _alive(holder.pid):
            self.notice(f"Breaking stale {holder.describe()}: that process is gone.")
        else:
            raise LockHeld(
                f"another apply is running on this config: {holder.describe()}; "
                f"wait for it, or if it is dead, run apply again with --force-unlock {holder.id}"
            )
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
