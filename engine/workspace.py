"""A loaded config with its managers' backends and the fingerprint key.

This is where config meets backends: commands open one Workspace and close it when
done. Backends are built lazily, so a command that needs one manager connects to one.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine import crypto, vault_mapping
from engine.backends import backend_class
from engine.backends.base import Backend
from engine.config import Config, load_config
from engine.errors import UsageError

DEFAULT_CONFIG = "secretshift.yaml"
STATE_DIR = ".secretshift"
FINGERPRINT_KEY_FILE = "fingerprint.key"


class Workspace:
    """Config + backends + fingerprinter for one command run. Use as a context manager."""

    def __init__(self, config_path: str | os.PathLike | None):
        self.config: Config = load_config(Path(config_path or DEFAULT_CONFIG))
        self._backends: dict[str, Backend] = {}
        self._fingerprinter: crypto.Fingerprinter | None = None
        self._key_id = ""
        self._key: bytes | None = None
        self._distinct_checked = False

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        for backend in self._backends.values():
            backend.close()

    @property
    def state_dir(self) -> Path:
        """`.secretshift/` beside the config: keys, state, history."""
        return self.config.base_dir / STATE_DIR

    @property
    def journal_dir(self) -> Path:
        """This config's apply journals (two configs in one folder keep separate ones)."""
        return self.state_dir / "journal" / self.config.path.name

    def backend(self, manager_id: str) -> Backend:
        """The backend of one configured manager."""
        if manager_id not in self.config.managers:
            known = ", ".join(self.config.managers) or "none"
            raise UsageError(f"unknown manager {manager_id!r} in {self.config.path.name} (defined: {known})")
        if manager_id not in self._backends:
            manager = self.config.managers[manager_id]
            settings = dict(manager.settings)
            mapped = vault_mapping.mapped_for(self.config.secrets, manager_id, self.config.managers)
            if mapped:
                settings["mapped"] = mapped
            self._backends[manager_id] = backend_class(manager.type).from_settings(manager_id, settings)
        return self._backends[manager_id]

    def backends(self) -> dict[str, Backend]:
        """Every configured manager's backend, in config order; refuses two managers that
        are one store under two names (a move between them would delete the only copy)."""
        built = {m: self.backend(m) for m in self.config.managers}
        if self._distinct_checked:
            return built
        seen: dict[tuple, str] = {}
        for manager_id, backend in built.items():
            for key in backend.storage_keys():
                if key in seen and seen[key] != manager_id:
                    raise UsageError(f"managers {seen[key]!r} and {manager_id!r} in {self.config.path.name} "
                                     f"are the same store under two names; keep one of them")
                seen[key] = manager_id
        self._distinct_checked = True  # once per run: storage keys may resolve host names
        return built

    @property
    def fingerprint(self) -> crypto.Fingerprinter:
        """The keyed fingerprint function (the key comes from the config or a local file)."""
        if self._fingerprinter is None:
            key = self.fingerprint_key
            self._fingerprinter = crypto.Fingerprinter(key)
            self._key_id = crypto.key_check_value(key)[:16]
        return self._fingerprinter

    @property
    def fingerprint_key_id(self) -> str:
        """A short identifier of the fingerprint key (not the key), recorded in plans."""
        self.fingerprint  # noqa: B018 - loads the key
        return self._key_id

    @property
    def fingerprint_key(self) -> bytes:
        """The raw fingerprint key (the journal's encryption key is derived from it)."""
        if self._key is None:
            self._key = self._fingerprint_key()
        return self._key

    def _fingerprint_key(self) -> bytes:
        if self.config.fingerprint_key is not None:
            return self.config.fingerprint_key.data
        path = self.state_dir / FINGERPRINT_KEY_FILE
        if not path.exists():
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(crypto.encode_key(crypto.new_key()) + "\n")
        return crypto.decode_key(path.read_text(), str(path))
