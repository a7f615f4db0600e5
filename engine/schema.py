"""Checking a parsed config: JSON Schema validation plus the cross-reference checks.

Owns turning every jsonschema error into one sentence at `file:line:col` with the key
path of the value at fault, and the pure checks no schema can express (unknown managers,
duplicate placements, names, URLs). It does no I/O beyond loading the schema file:
resolving credentials and paths is config.py's job.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine import vault_mapping
from engine.backends.base import common_name_problem
from engine.backends.naming import name_map_problems
from engine.errors import ConfigProblem

CONFIG_SCHEMA = "config.schema.json"
KeyPath = tuple[str | int, ...]
Mark = tuple[int, int]  # (line, column), both 1-based

NAME_MAPPING_TYPES = ("vault", "aws_secrets_manager")  # managers with name_map and rename
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
_TYPE_WORDS = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "array": "a list", "object": "a mapping", "null": "empty",
}
_PATTERN_HELP = {
    "^[a-z0-9_-]+$": "may only contain lowercase letters a-z, digits 0-9, '_' and '-'",
    "^[A-Za-z_][A-Za-z0-9_]*$":
        "must be an environment variable name (letters, digits and '_', not starting with a digit)",
}
_REQUIRED_HINTS = {"mode": " (move or copy)"}


@dataclass
class Marks:
    """Where each value (and each mapping key) of a parsed YAML file sits.

    `values[path]` is the start of the value at `path`; `keys[path]` the start of the
    key that introduces it (absent for list items and the root).
    """

    values: dict[KeyPath, Mark] = field(default_factory=dict)
    keys: dict[KeyPath, Mark] = field(default_factory=dict)

    def value(self, path: KeyPath) -> Mark | None:
        """The position of the value at `path`, or of its nearest marked ancestor."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return None

    def key(self, path: KeyPath) -> Mark | None:
        """The position of the key naming `path`, falling back to its value."""
        return self.keys.get(path) or self.value(path)


def path_text(path: Iterable[str | int]) -> str:
    """`managers.corp_vault.token`, `secrets[2].name`; the root is "the config"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the config"


def quoted(value: object) -> str:
    """A name shown in a message: double-quoted, control characters escaped."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def problem(file: str, mark: Mark | None, message: str) -> ConfigProblem:
    """A ConfigProblem at `mark` (None: the file as a whole)."""
    line, column = mark if mark else (None, None)
    return ConfigProblem(file, line, column, message)


@functools.lru_cache(maxsize=None)
def load_schema(name: str = CONFIG_SCHEMA) -> dict:
    """A JSON Schema shipped as package data of `engine.schemas` (or from a source checkout)."""
    try:
        text = resources.files("engine.schemas").joinpath(name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        import engine

        text = (Path(engine.__file__).parent.parent / "schemas" / name).read_text("utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _fast_validator():
    """Tells whether a config is valid in about 1 ms, where importing jsonschema and
    building its validator take over 100 ms: every command pays that at start-up. Only
    an invalid config goes on to jsonschema, whose errors are worded below."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(load_schema())


def fast_is_valid(validator, data: Any) -> bool:
    """True when jsonschema-rs calls `data` valid; False when it cannot tell (a YAML date,
    a lone surrogate: it takes only what JSON can hold) or finds a problem."""
    try:
        return validator.is_valid(data)
    except (ValueError, TypeError):
        return False


@functools.lru_cache(maxsize=None)
def _validator():
    import jsonschema  # only for a config with problems: see _fast_validator

    return jsonschema.Draft202012Validator(load_schema())


def manager_types() -> tuple[str, ...]:
    """The manager `type` values the schema accepts."""
    return tuple(load_schema()["$defs"]["manager"]["properties"]["type"]["enum"])


def manager_keys(manager_type: str) -> dict[str, Any]:
    """Every key a manager of `manager_type` may have (except `type`) -> its default or None."""
    properties = load_schema()["$defs"][manager_type]["properties"]
    return {key: spec.get("default") for key, spec in properties.items() if key != "type"}


# ---- schema errors -> sentences ----------------------------------------------------


def check_schema(data: Any, marks: Marks, file: str) -> list[ConfigProblem]:
    """Validate `data` against the config schema; one sentence per problem found."""
    if fast_is_valid(_fast_validator(), data):
        return []
    found: list[tuple] = []
    for error in _validator().iter_errors(data):
        found.extend(_translate(error, marks))
    # A required key reported missing because it was misspelled is explained once, by
    # the "unknown key ... (did you mean ...?)" problem.
    suggested = {(path, key) for path, _, _, key, role in found if role == "suggested"}
    return [
        problem(file, mark, message)
        for path, mark, message, key, role in found
        if not (role == "missing" and (path, key) in suggested)
    ]


def _translate(error, marks: Marks) -> Iterator[tuple]:
    """(path, mark, message, key, role) for one jsonschema error.

    `role` "suggested": `key` is the likely spelling of an unknown key; "missing": `key`
    is a required key that is absent; otherwise `key` is None.
    """
    path: KeyPath = tuple(error.absolute_path)
    where = path_text(path)
    kind, schema, instance = error.validator, error.schema, error.instance
    if isinstance(schema, dict) and schema.get("title") == "credential":
        yield path, marks.value(path), _credential_message(where, instance), None, None
    elif kind == "additionalProperties":
        yield from _unknown_keys(path, schema, instance, marks)
    elif kind == "required":
        for key in error.validator_value:
            if isinstance(instance, dict) and key not in instance:
                message = f"{where} is missing required key '{key}'{_REQUIRED_HINTS.get(key, '')}"
                yield path, marks.key(path), message, key, "missing"
    elif kind == "pattern" and "propertyNames" in error.relative_schema_path:
        help_text = _PATTERN_HELP.get(error.validator_value, "is not allowed")
        message = f"{where} has an invalid id {quoted(instance)}: an id {help_text}"
        yield path, marks.key(path + (instance,)), message, None, None
    else:
        yield path, marks.value(path), f"{where} {_value_problem(error)}", None, None


def _credential_message(where: str, instance: Any) -> str:
    message = f"{where} must be {{env: NAME}} or {{file: PATH}}"
    if isinstance(instance, (str, int, float)) and not isinstance(instance, bool):
        message += ": inline credentials are not allowed in a config file kept in git"
    return message


def _unknown_keys(path: KeyPath, schema: dict, instance: Any, marks: Marks) -> Iterator[tuple]:
    known = sorted(schema.get("properties", {}))
    container = f"in {path_text(path)}" if path else "at the top level"
    for key in instance:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(known)})"
        message = f"unknown key '{key}' {container}{hint}"
        yield path, marks.key(path + (key,)), message, (close[0] if close else None), "suggested"


def _value_problem(error) -> str:
    """What is wrong with a value, in words; never repeats the value itself."""
    kind, expected, schema, instance = error.validator, error.validator_value, error.schema, error.instance
    if kind == "type":
        return _type_problem(expected, instance)
    if kind == "enum":
        return f"must be {_one_of(expected)}{_suggestion(instance, expected)}"
    if kind == "const":
        return f"must be {_plain(expected)}"
    if kind == "pattern":
        return _PATTERN_HELP.get(expected, "has characters that are not allowed")
    if kind in ("minLength", "minItems", "minProperties"):
        return "must not be empty"
    if kind in ("minimum", "maximum") and "minimum" in schema and "maximum" in schema:
        return f"must be between {schema['minimum']} and {schema['maximum']}"
    if kind == "minimum":
        return "must be a positive integer" if expected == 1 else f"must be at least {expected}"
    if kind == "exclusiveMinimum":
        return "must be a positive number" if expected == 0 else f"must be more than {expected}"
    if kind == "maximum":
        return f"must be at most {expected}"
    return f"is not valid here ({kind})"


def _type_problem(expected: str | list[str], instance: Any) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    message = "must be " + _one_of([_TYPE_WORDS.get(n, n) for n in names], plain=False)
    if "string" in names and isinstance(instance, bool):
        message += " (put it in quotes: YAML reads yes, no, on, off, true and false as booleans)"
    return message


def _plain(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _one_of(values: Iterable[Any], plain: bool = True) -> str:
    words = [_plain(v) if plain else str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _suggestion(instance: Any, allowed: Iterable[Any]) -> str:
    if not isinstance(instance, str):
        return ""
    close = difflib.get_close_matches(instance, [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


# ---- checks no schema can express -------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_text(data: Any, marks: Marks, file: str) -> list[ConfigProblem]:
    """Strings no config value can hold: control characters (NUL, newline...) and lone
    surrogates (text that is not valid Unicode, so no file name or Vault path either)."""
    found = []

    def visit(value: Any, path: KeyPath) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(key, path) if isinstance(key, str) else None
                visit(item, path + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, path + (index,))
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                found.append(problem(file, marks.value(path), f"{path_text(path)} is not valid Unicode "
                                                                f"(it holds a lone surrogate)"))
            elif _CONTROL.search(value):
                char = _CONTROL.search(value).group()
                found.append(problem(file, marks.value(path), f"{path_text(path)} contains the control "
                                                                f"character U+{ord(char):04X}"))

    visit(data, ())
    return found


def check_semantics(data: Any, marks: Marks, file: str) -> list[ConfigProblem]:
    """Cross-reference checks on schema-shaped data; tolerant of parts the schema rejected."""
    if not isinstance(data, dict):
        return []
    managers = data.get("managers") if isinstance(data.get("managers"), dict) else {}
    found = []
    found += _check_manager_urls(managers)
    found += _check_secrets(_items(data, "secrets"), list(managers), marks)
    found += _check_migrations(_items(data, "migrations"), list(managers))
    found += _check_policy_managers(data.get("policy"), list(managers))
    found += naming_checks(managers, _items(data, "secrets"))
    found += vault_mapping.check_entries(_items(data, "secrets"), managers)
    return [problem(file, marks.value(path), message) for path, message in found]


def naming_checks(managers: dict, secrets: list[tuple[KeyPath, dict]]) -> list[tuple[KeyPath, str]]:
    """`name_map` settings that cannot be reversed, and `rename:` entries naming a
    manager that is not defined or does not map names (builtin)."""
    found = []
    for manager_id, settings in managers.items():
        name_map = settings.get("name_map") if isinstance(settings, dict) else None
        if isinstance(name_map, dict):
            path = ("managers", manager_id, "name_map")
            found += [(path, f"{path_text(path)}: {p}") for p in name_map_problems(name_map)]
    for base, entry in secrets:
        rename = entry.get("rename")
        for manager_id in rename if isinstance(rename, dict) else ():
            path = base + ("rename", manager_id)
            settings = managers.get(manager_id)
            if not isinstance(settings, dict):
                found.append((path, (f"{path_text(path)}: unknown manager {quoted(manager_id)} "
                                     f"(defined: {', '.join(managers) or 'none'})")))
            elif settings.get("type") not in NAME_MAPPING_TYPES:
                found.append((path, (f"{path_text(path)}: manager {quoted(manager_id)} is of type "
                                     f"{settings.get('type')}, which keeps names as they are (rename "
                                     f"works for {' and '.join(NAME_MAPPING_TYPES)})")))
    return found


def _items(data: dict, key: str) -> list[tuple[KeyPath, dict]]:
    entries = data.get(key)
    if not isinstance(entries, list):
        return []
    return [((key, i), entry) for i, entry in enumerate(entries) if isinstance(entry, dict)]


def _check_manager_urls(managers: dict) -> list[tuple[KeyPath, str]]:
    found = []
    for manager_id, settings in managers.items():
        if not isinstance(settings, dict):
            continue
        for key in ("address", "endpoint_url"):
            if isinstance(settings.get(key), str):
                path = ("managers", manager_id, key)
                message = url_problem(settings[key])
                if message:
                    found.append((path, f"{path_text(path)} {message}"))
    return found


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a manager address (http(s), TLS unless loopback), or None."""
    try:
        parts = urlsplit(url.strip())
        host, _ = parts.hostname, parts.port
    except ValueError:
        return "must be an http:// or https:// URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (credentials go in token)"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return (
            f"uses plain http to {host}: values are only sent over TLS; use https:// "
            "(plain http is allowed for 127.0.0.1, ::1 and localhost only)"
        )
    return None


def _manager_ref_problems(entry: dict, base: KeyPath, keys: tuple[str, ...],
                          defined: list[str]) -> list[tuple[KeyPath, str]]:
    found = []
    listed = ", ".join(defined) if defined else "none"
    for key in keys:
        name = entry.get(key)
        if isinstance(name, str) and name and name not in defined:
            path = base + (key,)
            found.append((path, f"{path_text(path)}: unknown manager {quoted(name)} (defined: {listed})"))
    first, second = (entry.get(k) for k in keys)
    if isinstance(first, str) and first and first == second:
        path = base + (keys[1],)
        found.append((path, f"{path_text(path)} must differ from {keys[0]} (both are {quoted(first)})"))
    return found


def _check_secrets(entries: list[tuple[KeyPath, dict]], defined: list[str],
                   marks: Marks) -> list[tuple[KeyPath, str]]:
    found = []
    placed: dict[tuple[str, str], KeyPath] = {}
    for base, entry in entries:
        found += _manager_ref_problems(entry, base, ("manager", "from"), defined)
        name, kind = entry.get("name"), entry.get("kind", "text")
        if not isinstance(name, str) or kind not in ("text", "file"):
            continue
        name_path = base + ("name",)
        reason = common_name_problem(name)
        if reason:
            message = f"{path_text(name_path)} {quoted(name)} is not a valid secret name: {reason}"
            found.append((name_path, message))
        elif (kind, name) in placed:
            lines = [(marks.value(p) or (0, 0))[0] for p in (placed[(kind, name)], name_path)]
            found.append((name_path, f"{path_text(base)} places {kind} secret {quoted(name)} a "
                                     f"second time (lines {lines[0]} and {lines[1]})"))
        else:
            placed[(kind, name)] = name_path
    return found


def _check_migrations(entries: list[tuple[KeyPath, dict]], defined: list[str]) -> list[tuple[KeyPath, str]]:
    found = []
    for base, entry in entries:
        found += _manager_ref_problems(entry, base, ("from", "to"), defined)
        kinds = entry.get("kinds")
        if isinstance(kinds, list):
            seen = set()
            for i, kind in enumerate(kinds):
                if not isinstance(kind, str):
                    continue
                if kind in seen:
                    path = base + ("kinds", i)
                    found.append((path, f"{path_text(base + ('kinds',))} lists {quoted(kind)} twice"))
                seen.add(kind)
    return found + _chained_migrations(entries)


def _chained_migrations(entries: list[tuple[KeyPath, dict]]) -> list[tuple[KeyPath, str]]:
    """A manager both migrated into and migrated out of: one apply would move a secret one
    hop and the next plan another, so a settled config would never plan "no changes"."""
    targets = {}
    for base, entry in entries:
        if isinstance(entry.get("to"), str):
            targets.setdefault(entry["to"], base)
    found = []
    for base, entry in entries:
        source = entry.get("from")
        if isinstance(source, str) and source in targets and source != entry.get("to"):
            found.append((base + ("from",), f"{path_text(base + ('from',))} {quoted(source)} is also the target of "
                          f"{path_text(targets[source])}: chained migrations are not supported; "
                          f"migrate straight to the final manager"))
    return found


def _check_policy_managers(policy: Any, defined: list[str]) -> list[tuple[KeyPath, str]]:
    """Every manager named by policy.source_only is defined."""
    names = policy.get("source_only") if isinstance(policy, dict) else None
    if not isinstance(names, list):
        return []
    listed = ", ".join(defined) if defined else "none"
    return [(("policy", "source_only", i), f"policy.source_only[{i}]: unknown manager {quoted(name)} (defined: {listed})")
            for i, name in enumerate(names) if isinstance(name, str) and name and name not in defined]


def credential_keys(manager_type: str) -> tuple[str, ...]:
    """The settings of `manager_type` that hold a credential ({env: X} or {file: P})."""
    properties = load_schema()["$defs"][manager_type]["properties"]
    return tuple(k for k, spec in properties.items() if spec.get("$ref") == "#/$defs/credential")


def is_environment_name(name: str) -> bool:
    """Whether `name` is what the schema accepts in `{env: NAME}`."""
    pattern = load_schema()["$defs"]["credential"]["properties"]["env"]["pattern"]
    return re.fullmatch(pattern.strip("^$"), name) is not None
