"""One apply at a time per config: a lock file beside it, with who holds it.

The lock is a kernel lock (flock) on `.secretshift/apply.lock`, so it is released the
instant its holder exits, even on SIGKILL: a lock can only be held by a live process, and
two processes can never both take it. The file also names the holder (owner, host, pid,
start time, lock id) for the messages. When a holder died, the next apply takes over and
says so. When the file names a holder on another host (a config on a shared folder,
where flock may not reach across machines), secretshift cannot tell whether it still
runs: it refuses, and `--force-unlock ID` takes over.

What locking cannot cover: two different configs (or two copies of one config) writing
the same manager. Each lock lives beside its own config, so they do not see each other;
per-action staleness checks still refuse to overwrite a value that changed since its
plan, but nothing serialises them.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import SecretShiftError

LOCK_FILE = "apply.lock"

# The lock descriptors this process holds. A forked worker (workers.py) closes its copies
# at once: the lock is then released the moment the apply's own process ends, even when
# a worker takes a few more milliseconds to die.
_HELD: set[int] = set()


def _forget_in_child() -> None:
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class LockHeld(SecretShiftError):
    """Another apply holds the lock."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or last held) the lock."""

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
        self._fd: int | None = None

    def __enter__(self) -> ApplyLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD.add(fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.ftruncate(self._fd, 0)  # an empty file: nobody holds it
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            who = holder.describe() if holder else "a process that has not written its name yet"
            raise LockHeld(f"another apply is running on this config ({who}); wait for it to finish") from None
        previous = _holder(fd)
        if previous is not None:
            self._take_over(previous)
        self.info = LockInfo(id=uuid.uuid4().hex[:12], owner=current_user(), host=socket.gethostname(),
                             pid=os.getpid(), since=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(self.info)).encode(), 0)
        os.fsync(fd)

    def _take_over(self, previous: LockInfo) -> None:
        """The file names a holder, yet the kernel lock was free."""
        if self.force_unlock is not None and self.force_unlock == previous.id:
            self.notice(f"Breaking {previous.describe()} as asked (--force-unlock).")
        elif previous.host == socket.gethostname():
            self.notice(f"Taking over the stale {previous.describe()}: that process is gone.")
        else:
            raise LockHeld(
                f"the apply lock names another host: {previous.describe()}; if that apply is not "
                f"running any more, run again with --force-unlock {previous.id}"
            )


def _holder(fd: int) -> LockInfo | None:
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        return LockInfo(**json.loads(raw))
    except (ValueError, TypeError):
        return LockInfo(id="unreadable", owner="?", host="?", pid=0, since="?")


def current_user() -> str:
    """The login name, or the uid where there is none (containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
