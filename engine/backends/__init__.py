"""The manager types secretshift knows, keyed by the `type:` name used in the config.

Adding a manager type is one module in this package, one line in REGISTRY, and the
backend contract suite (tests/backends) passing against it. Modules are imported on
first use, so a command that only touches the builtin store never loads an SDK.
"""

from __future__ import annotations

from importlib import import_module

from engine.backends.base import Backend

REGISTRY: dict[str, str] = {
    "builtin": "engine.backends.builtin:BuiltinBackend",
    "vault": "engine.backends.vault:VaultBackend",
    "aws_secrets_manager": "engine.backends.aws:AwsSecretsManagerBackend",
}


def backend_class(type_name: str) -> type[Backend]:
    """The Backend subclass for a manager type (imported on demand)."""
    module_name, class_name = REGISTRY[type_name].split(":")
    return getattr(import_module(module_name), class_name)
