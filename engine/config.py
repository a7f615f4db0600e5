"""The typed config model, and `load_config` which turns secretshift.yaml into it.

Loading collects every problem before reporting (one ConfigError with all of them), each
naming file:line:column and the key path. Credentials (`{env: X}`, `{file: P}`) are
resolved here and held as `SecretValue`, so a Config can be printed without leaking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine import crypto, schema
from engine.errors import ConfigError, ConfigProblem
from engine.model import Kind, SecretId, SecretValue
from engine.yamlmarks import config_error, parse_yaml


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
    soft_deleted: str = "skip"  # skip | fail: a source copy kept only soft-deleted
    rename: tuple[tuple[str, str], ...] = ()  # (manager id, physical name) pairs
    vault_path: str | None = None  # in a Vault it names: this path (not the Harness layout)
    vault_key: str | None = None  # ...and this one key of it (None: the whole secret as JSON)


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
    soft_deleted: str = "skip"
    history: str = "current"  # all: carry every readable earlier version too, oldest first


@dataclass(frozen=True)
class Policy:
    """The `policy:` section: gates every plan must pass (policy.py checks them)."""

    no_deletes: bool = False
    no_overwrite_unmanaged: bool = False
    max_changes: int | None = None
    source_only: tuple[str, ...] = ()


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
    policy: Policy = Policy()

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the config are resolved against."""
        return self.path.parent


# ---- loading ------------------------------------------------------------------------

MAX_CONFIG_BYTES = 1 << 20
MAX_CREDENTIAL_BYTES = 64 << 10
MIN_FINGERPRINT_KEY_BYTES = 16


def load_config(path: str | Path) -> Config:
    """Read, check and resolve a config file; raise ConfigError listing every problem.

    Credentials are read here (from the environment or files relative to the config's
    folder) and kept as SecretValue; no message ever contains their content.
    """
    path = Path(path)
    shown = str(path)
    raw = _read_config_bytes(path, shown)
    data, marks, problems = parse_yaml(raw, shown)
    # A value the YAML reader already refused (a tag, an alias loop) is not reported twice.
    refused = {(p.line, p.column) for p in problems}
    unreadable = schema.check_text(data, marks, shown)
    checked = schema.check_schema(data, marks, shown) + schema.check_semantics(data, marks, shown)
    # where a specific check (a secret name's rules) spoke, the generic text check stays quiet
    specific = {(p.line, p.column) for p in checked}
    unreadable_only = [p for p in unreadable if (p.line, p.column) not in specific]
    problems += [p for p in unreadable_only + checked if (p.line, p.column) not in refused]
    credentials = {}
    if not unreadable:  # no file name with a NUL or a lone surrogate is ever opened
        resolver = _Resolver(path.absolute().parent, marks, shown)
        credentials = resolver.credentials(data)
        resolver.check_files(data)
        problems += resolver.problems
    if problems:
        raise ConfigError(_sorted_unique(problems))
    return _build(path.absolute(), data, marks, credentials, hashlib.sha256(raw).hexdigest())


def _sorted_unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))


def _read_config_bytes(path: Path, shown: str) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise config_error(shown, "no such file (use -c/--config to name another)") from None
    except IsADirectoryError:
        raise config_error(shown, "is a folder, not a config file") from None
    except PermissionError:
        raise config_error(shown, "cannot be read (permission denied)") from None
    except OSError as error:
        raise config_error(shown, f"cannot be read ({error.strerror or 'I/O error'})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise config_error(shown, "is larger than 1 MiB; a config file this big is refused")
    return raw


# ---- credentials and paths ------------------------------------------------------------

_PATH_SETTINGS = ("path", "ca_cert")  # resolved against the config file's folder


class _Resolver:
    """Reads credentials and checks files named by the config, collecting problems.

    Messages name the variable, the file and the key path; never the content read.
    """

    def __init__(self, base_dir: Path, marks: schema.Marks, shown: str):
        self.base_dir = base_dir
        self.marks = marks
        self.shown = shown
        self.problems: list[ConfigProblem] = []

    def credentials(self, data: Any) -> dict[schema.KeyPath, SecretValue]:
        """Every well-formed credential of the config, read and decoded, by key path."""
        resolved = {}
        for path, spec, decode in _credential_specs(data):
            raw = self._read(path, spec)
            if raw is None:
                continue
            origin = f"environment variable {spec['env']}" if "env" in spec else f"file {spec['file']}"
            try:
                resolved[path] = decode(raw, origin)
            except ValueError as error:
                self._problem(path, f"{schema.path_text(path)} is not usable: {error}")
        return resolved

    def check_files(self, data: Any) -> None:
        """Files that must exist already (a CA certificate) do exist."""
        for manager_id, settings in _managers(data).items():
            ca_cert = settings.get("ca_cert")
            if settings.get("type") == "vault" and isinstance(ca_cert, str) and ca_cert:
                path = ("managers", manager_id, "ca_cert")
                if not resolve_path(self.base_dir, ca_cert).is_file():
                    self._problem(path, f"file {ca_cert} ({schema.path_text(path)}) does not exist")


    def _read(self, path: schema.KeyPath, spec: dict) -> bytes | None:
        where = schema.path_text(path)
        if "env" in spec:
            value = os.environ.get(spec["env"])
            if value is None or not value.strip():
                state = "is not set" if value is None else "is empty"
                return self._problem(path + ("env",), f"environment variable {spec['env']} ({where}) {state}")
            return os.fsencode(value)
        shown = f"file {spec['file']} ({where})"
        try:
            with resolve_path(self.base_dir, spec["file"]).open("rb") as handle:
                raw = handle.read(MAX_CREDENTIAL_BYTES + 1)
        except FileNotFoundError:
            return self._problem(path + ("file",), f"{shown} does not exist")
        except IsADirectoryError:
            return self._problem(path + ("file",), f"{shown} is a folder, not a file")
        except OSError as error:
            reason = error.strerror or "I/O error"
            return self._problem(path + ("file",), f"{shown} cannot be read ({reason})")
        if len(raw) > MAX_CREDENTIAL_BYTES:
            message = f"{shown} is larger than 64 KiB; it should hold one key or token"
            return self._problem(path + ("file",), message)
        if not raw.strip():
            return self._problem(path + ("file",), f"{shown} is empty")
        return raw

    def _problem(self, path: schema.KeyPath, message: str) -> None:
        self.problems.append(schema.problem(self.shown, self.marks.value(path), message))


def resolve_path(base_dir: Path, written: str) -> Path:
    """A path from the config, made absolute against the config file's folder."""
    return base_dir / Path(written).expanduser()


def _managers(data: Any) -> dict[str, dict]:
    managers = data.get("managers") if isinstance(data, dict) else None
    if not isinstance(managers, dict):
        return {}
    return {k: v for k, v in managers.items() if isinstance(v, dict)}


def _credential_specs(data: Any) -> Iterator[tuple[schema.KeyPath, dict, Any]]:
    """(key path, {env|file: ...}, decoder) for each credential the schema accepts."""
    for manager_id, settings in _managers(data).items():
        manager_type = settings.get("type")
        if manager_type not in schema.manager_types():
            continue
        for key in schema.credential_keys(manager_type):
            if _is_credential_spec(settings.get(key)):
                decode = _master_key if (manager_type, key) == ("builtin", "key") else _token
                yield ("managers", manager_id, key), settings[key], decode
    if isinstance(data, dict) and _is_credential_spec(data.get("fingerprint_key")):
        yield ("fingerprint_key",), data["fingerprint_key"], _fingerprint_key


def _is_credential_spec(value: Any) -> bool:
    """True for a credential the schema accepts; the schema reports any other."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    if isinstance(value.get("file"), str):
        return bool(value["file"])
    return isinstance(value.get("env"), str) and schema.is_environment_name(value["env"])


def _master_key(raw: bytes, origin: str) -> SecretValue:
    """A builtin store's master key: base64 of exactly 32 bytes."""
    return SecretValue(crypto.decode_key(raw, origin))


def _token(raw: bytes, origin: str) -> SecretValue:
    """A token: the text, without surrounding white space (a key file's newline). It
    travels in an HTTP header, so it is one line of printable characters."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"the token from {origin} is not UTF-8 text") from None
    if not text.isprintable():
        what = "several lines" if any(c in text for c in "\r\n") else "a control character"
        raise ValueError(f"the token from {origin} holds {what}; it must be the token alone, on one line")
    return SecretValue.from_text(text)


def _fingerprint_key(raw: bytes, origin: str) -> SecretValue:
    """The fingerprint HMAC key: base64 of 32 bytes, else the bytes as given (>= 16)."""
    try:
        return SecretValue(crypto.decode_key(raw, origin))
    except ValueError:
        pass
    if len(raw) < MIN_FINGERPRINT_KEY_BYTES:
        raise ValueError(
            f"the key from {origin} must be base64 of 32 bytes or at least "
            f"{MIN_FINGERPRINT_KEY_BYTES} bytes, not {len(raw)}"
        )
    return SecretValue(raw)


# ---- the typed model ------------------------------------------------------------------


def _build(path: Path, data: dict, marks: schema.Marks,
           credentials: dict[schema.KeyPath, SecretValue], digest: str) -> Config:
    """The Config of a config file that passed every check."""
    managers = {
        manager_id: _manager(manager_id, settings, path.parent, credentials, marks)
        for manager_id, settings in data["managers"].items()
    }
    secrets = tuple(
        SecretPlacement(
            name=entry["name"], kind=Kind(entry.get("kind", "text")), manager=entry["manager"],
            source=entry.get("from"), mode=entry.get("mode", "move"), line=_line(marks, ("secrets", i)),
            soft_deleted=entry.get("soft_deleted", "skip"), rename=tuple((entry.get("rename") or {}).items()),
            vault_path=entry.get("vault_path"), vault_key=entry.get("vault_key"),
        )
        for i, entry in enumerate(data.get("secrets") or [])
    )
    migrations = tuple(
        Migration(
            source=entry["from"], target=entry["to"], mode=entry["mode"],
            kinds=tuple(Kind(k) for k in entry.get("kinds", ("text", "file"))),
            include=tuple(entry.get("include", ("*",))), exclude=tuple(entry.get("exclude", ())),
            line=_line(marks, ("migrations", i)), soft_deleted=entry.get("soft_deleted", "skip"),
            history=entry.get("history", "current"),
        )
        for i, entry in enumerate(data.get("migrations") or [])
    )
    managers = _with_renames(managers, secrets)
    return Config(
        path=path, managers=managers, secrets=secrets, migrations=migrations,
        on_conflict=data.get("on_conflict", "fail"),
        reference_paths=tuple((data.get("references") or {}).get("paths", ())),
        digest=digest, fingerprint_key=credentials.get(("fingerprint_key",)),
        policy=_policy(data.get("policy") or {}),
    )


def _policy(written: dict) -> Policy:
    return Policy(no_deletes=bool(written.get("no_deletes", False)),
                  no_overwrite_unmanaged=bool(written.get("no_overwrite_unmanaged", False)),
                  max_changes=written.get("max_changes"),
                  source_only=tuple(dict.fromkeys(written.get("source_only", ()))))


def _with_renames(managers: dict[str, ManagerConfig],
                  secrets: tuple[SecretPlacement, ...]) -> dict[str, ManagerConfig]:
    """Each manager's `renames` setting ({SecretId: physical name}) from the `rename:`
    of the secrets entries, so its backend names those secrets physically."""
    renames: dict[str, dict] = {}
    for entry in secrets:
        for manager_id, physical in entry.rename:
            renames.setdefault(manager_id, {})[SecretId(entry.kind, entry.name)] = physical
    return {m: dataclasses.replace(c, settings=MappingProxyType({**c.settings, "renames": renames[m]}))
            if m in renames else c for m, c in managers.items()}


def _manager(manager_id: str, written: dict, base_dir: Path,
             credentials: dict[schema.KeyPath, SecretValue], marks: schema.Marks) -> ManagerConfig:
    settings = schema.manager_keys(written["type"])
    settings.update((k, v) for k, v in written.items() if k != "type")
    for key in _PATH_SETTINGS:
        if isinstance(settings.get(key), str):
            settings[key] = str(resolve_path(base_dir, settings[key]))
    for key in schema.credential_keys(written["type"]):
        settings[key] = credentials.get(("managers", manager_id, key))
    return ManagerConfig(
        id=manager_id, type=written["type"], read_only=bool(settings["read_only"]),
        settings=MappingProxyType(settings), line=_line(marks, ("managers", manager_id), key=True),
    )


def _line(marks: schema.Marks, path: schema.KeyPath, key: bool = False) -> int | None:
    mark = marks.key(path) if key else marks.value(path)
    return mark[0] if mark else None
