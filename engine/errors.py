"""Every error secretshift reports on purpose derives from `SecretShiftError`.

Each subclass carries structured fields (file and line, manager, secret) and words
itself as one sentence. No message ever contains a secret value: callers pass names,
paths and sizes, never `SecretValue` contents.
"""

from __future__ import annotations

from dataclasses import dataclass


class SecretShiftError(Exception):
    """Root of the errors the CLI turns into one line on stderr and exit code 1."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a config file: where it is and what is wrong."""

    file: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class ConfigError(SecretShiftError):
    """The config (or another input file) is invalid; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(SecretShiftError):
    """The command line asked for something that cannot be done as asked."""


class BackendError(SecretShiftError):
    """A manager refused or failed an operation. `location` names the path at fault."""

    def __init__(self, manager: str, message: str, location: str | None = None):
        self.manager = manager
        self.location = location
        self.detail = message
        where = f"manager {manager!r}"
        if location:
            where += f" at {location}"
        super().__init__(f"{where}: {message}")


class UnreadableValue(BackendError):
    """The manager holds the secret in a shape secretshift cannot take as one value
    (Vault fields besides "value", a file that is not base64, an AWS SecretBinary named
    as text): refresh records it as `Unavailable` ("unreadable") and leaves it alone."""


class ManagerUnreachable(BackendError):
    """The manager cannot be reached at all (connection refused, DNS, TLS)."""


class PermissionDenied(BackendError):
    """The manager answered that the credentials may not do this (Vault 403, AWS AccessDenied)."""


class ReadOnlyManager(BackendError):
    """A write or delete was about to reach a manager that must not be written."""


class DecryptError(BackendError):
    """A stored value could not be decrypted, most often because the key is wrong."""


class TransientError(BackendError):
    """The manager is temporarily unable to answer (sealed, rate limited, 5xx): retry later."""


class RateLimited(TransientError):
    """The manager asked for fewer requests (HTTP 429): retry later, and send fewer at once."""


class ValueTooLarge(BackendError):
    """A value exceeds what the target manager accepts."""


class InvalidName(SecretShiftError):
    """A secret name that no manager can store safely."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"invalid secret name {name!r}: {reason}")


class PlanError(SecretShiftError):
    """A plan cannot be applied (it has errors, it is stale, it is malformed)."""


class StalePlan(PlanError):
    """What a saved plan was computed from has changed since; nothing was written."""


class VerificationFailed(SecretShiftError):
    """A value read back from the target differed from what was written; the source is kept."""
