"""The typed config model, and `load_config` which turns secretshift.yaml into it.

Loading collects every problem before reporting (one ConfigError with all of them), each
naming file:line:column and the key path. Credentials (`{env: X}`, `{file: P}`) are
resolved here and held as `SecretValue`, so a Config can be printed without leaking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.model import Kind

MODES = ("move", "copy")
ON_CONFLICT = ("fail", "overwrite", "skip")


@dataclass(frozen=True)
class ManagerConfig:
    """One entry of `managers:`.

    `settings` holds the type-specific keys, validated and resolved: relative paths made
    absolute against the config folder, credentials (`token`, `key`) as SecretValue,
    defaults filled in. `read_only` is also present in `settings`.
    """

    id: str
    type: str
    read_only: bool
    settings: Mapping[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class SecretPlacement:
    """One entry of `secrets:`: secret (kind, name) must live in `manager`.

    `source` is the config's `from` (None: found by searching every other manager).
    """

    name: str
    kind: Kind
    manager: str
    source: str | None = None
    mode: str = "move"
    line: int | None = None


@dataclass(frozen=True)
class Migration:
    """One entry of `migrations:`: bulk placement from `source` to `target`."""

    source: str
    target: str
    mode: str
    kinds: tuple[Kind, ...] = (Kind.TEXT, Kind.FILE)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Config:
    """A validated secretshift.yaml.

    `digest` is the sha256 hex of the file's bytes (saved plans record it);
    `fingerprint_key` is the resolved `fingerprint_key` setting, or None to use the
    default key file (commands.py owns creating it).
    """

    path: Path
    managers: Mapping[str, ManagerConfig]
    secrets: tuple[SecretPlacement, ...] = ()
    migrations: tuple[Migration, ...] = ()
    on_conflict: str = "fail"
    reference_paths: tuple[str, ...] = ()
    digest: str = ""
    fingerprint_key: Any = None  # SecretValue | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the config are resolved against."""
        return self.path.parent
