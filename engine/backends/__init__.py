"""The manager types secretshift knows, keyed by the `type:` name used in the config.

Adding a manager type is one module in this package, one line in REGISTRY, and the
backend contract suite (tests/backends) passing against it.
"""

from __future__ import annotations

from engine.backends.base import Backend
from engine.backends.builtin import BuiltinBackend
from engine.backends.vault import VaultBackend

REGISTRY: dict[str, type[Backend]] = {
    "builtin": BuiltinBackend,
    "vault": VaultBackend,
}
