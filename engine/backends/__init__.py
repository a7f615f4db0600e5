"""The manager types secretshift knows, keyed by the `type:` name used in the config.

Adding a manager type is one module in this package, one line in REGISTRY, and the
backend contract suite (tests/backends) passing against it. Modules are imported on
first use, so a command that only touches the builtin store never loads an SDK.
"""

from __future__ import annotations

from importlib import import_module

from engine.backends.base import Backend
from engine.errors import SecretShiftError

# The pip extra that brings the SDK of manager types whose SDK is optional.
EXTRAS = {"aws_secrets_manager": "aws"}
# type name -> "module:Class", imported on first use.
REGISTRY: dict[str, str] = {
    "builtin": "engine.backends.builtin:BuiltinBackend",
    "vault": "engine.backends.vault:VaultBackend",
    "aws_secrets_manager": "engine.backends.aws:AwsSecretsManagerBackend",
}


def backend_class(type_name: str) -> type[Backend]:
    """The Backend subclass for a manager type (imported on demand)."""
    module_name, class_name = REGISTRY[type_name].split(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as missing:
        extra = EXTRAS.get(type_name)
        if extra is None or (missing.name or "").startswith("engine"):
            raise
        raise SecretShiftError(f"managers of type {type_name} need the {missing.name} package: "
                               f"pip install 'secretshift[{extra}]'") from None
    return getattr(module, class_name)
