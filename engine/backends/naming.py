"""Name mapping: a secret's identity (the name references use) versus its physical name
in one manager.

Harness-style names, Vault paths and AWS names do not share one alphabet, so a manager
may declare `name_map` (character replacements, e.g. `{" ": "+"}`) and a secret entry
may declare `rename: {MANAGER: physical-name}`. The backend stores the secret at the
physical name and, when listing, maps physical names back:

- an explicit rename wins, both ways;
- otherwise each replacement string in the physical name is turned back into its
  character (left to right, longest replacement first);
- a physical name that does not map back to an identity which maps to it again (say,
  `db password` with a space while space is mapped to `+`) is not one of that manager's
  secrets: it is left out of its listing.

An identity whose physical name would read back as another identity (with
`{" ": "+"}`, the name `a+b` reads back as `a b`) cannot be stored in that manager:
`round_trip_problem` says so, and the plan reports it as `invalid_name`.

Pure: no I/O. Backends hold one `NameMap` each (`Backend.names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.model import Kind, SecretId


@dataclass(frozen=True)
class NameMap:
    """How one manager names secrets physically. The empty map is the identity."""

    chars: Mapping[str, str] = field(default_factory=dict)  # identity character -> replacement
    renames: Mapping[SecretId, str] = field(default_factory=dict)  # identity -> physical name

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> NameMap:
        """From a manager's `name_map` setting and the `renames` config.py collects for it
        from the secrets entries (`{SecretId: physical name}`)."""
        return cls(dict(settings.get("name_map") or {}), dict(settings.get("renames") or {}))

    def physical(self, secret: SecretId) -> str:
        """The name this manager stores `secret` under."""
        renamed = self.renames.get(secret)
        if renamed is not None:
            return renamed
        if not self.chars:
            return secret.name
        return "".join(self.chars.get(char, char) for char in secret.name)

    def identity(self, kind: Kind, physical: str) -> SecretId | None:
        """The secret a physical name stands for, or None when it maps back to no
        secret that this manager would store under that name."""
        for secret, renamed in self.renames.items():
            if secret.kind is kind and renamed == physical:
                return secret
        secret = SecretId(kind, self._reverse(physical))
        if secret in self.renames or self.physical(secret) != physical:
            return None
        return secret

    def round_trip_problem(self, secret: SecretId, manager: str = "MANAGER") -> str | None:
        """Why `manager` cannot hold `secret` under the mapping (its physical name reads
        back as another secret), or None."""
        physical = self.physical(secret)
        back = self.identity(secret.kind, physical)
        if back is None or back == secret or back in self.renames:
            return None  # a clash with a renamed secret: the plan reports both as a conflict
        return (f"its physical name {physical!r} reads back as {back.name!r} under this manager's "
                f"name_map; give the secret rename: {{{manager}: NEW-NAME}}, or map to characters its "
                "names do not use")

    def _reverse(self, physical: str) -> str:
        if not self.chars:
            return physical
        back = sorted(((r, c) for c, r in self.chars.items()), key=lambda rc: -len(rc[0]))
        out, i = [], 0
        while i < len(physical):
            for replacement, char in back:
                if physical.startswith(replacement, i):
                    out.append(char)
                    i += len(replacement)
                    break
            else:
                out.append(physical[i])
                i += 1
        return "".join(out)


IDENTITY = NameMap()


def name_map_problems(name_map: Mapping[str, str]) -> list[str]:
    """Why a `name_map` setting cannot be reversed unambiguously (config checks)."""
    problems = []
    replacements = list(name_map.values())
    for char, replacement in name_map.items():
        if not isinstance(replacement, str) or not replacement:
            continue
        if replacements.count(replacement) > 1:
            problems.append(f"several characters map to {replacement!r}, so listing cannot tell them apart")
        clash = [c for c in name_map if c in replacement]
        if clash:
            problems.append(f"the replacement {replacement!r} for {char!r} contains {clash[0]!r}, "
                            "which is itself replaced")
    return list(dict.fromkeys(problems))
