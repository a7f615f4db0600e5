"""`secretshift discover`: what one manager holds, as YAML to paste into secretshift.yaml.

Discovery lists the manager, and reads each secret once to check that it holds one value
secretshift can move (a Vault secret with fields besides "value", an AWS SecretBinary
named as text, a secret without a value are left out, with the reason); values are
fingerprinted with a throw-away key and dropped at once. Vault mounts are also walked
under base_path for secrets outside the Harness layout (`app/db` with keys username and
password): those are read once to learn their keys. No value is ever printed.

Without a target the YAML is a `secrets:` block adopting every secret where it is (mode
copy, so it never deletes a copy another manager holds); merged into the config it plans
only no-ops. With a target it is a `migrations:` block (plus `secrets:` entries for what
a migration cannot address by name: Vault secrets outside the Harness layout). Whatever
is left out is listed with its reason, as YAML comments at the top.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from engine import crypto
from engine.backends.base import Backend, common_name_problem
from engine.backends.vault_keys import WHOLE_SECRET_FORMAT
from engine.errors import UsageError
from engine.inventory import read_states
from engine.model import Kind, SecretId, Unavailable
from engine.planchecks import describe, restore_hint
from engine.workspace import Workspace

VAULT_LAYOUT_FOLDERS = ("SECRET_TEXT/", "CONFIG_FILE/")
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Found:
    """One secret discovered; `vault_path`/`vault_key` when it is outside the Harness layout."""

    id: SecretId
    vault_path: str | None = None
    vault_key: str | None = None


@dataclass
class Discovery:
    """What a manager holds that secretshift can place, and what it left out and why."""

    manager: str
    found: list[Found] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)


def discover(ws: Workspace, manager_id: str, migrate_to: str | None = None,
             mode: str = "copy", vault_keys: str = "auto") -> tuple[str, str]:
    """The YAML to paste, and a one-line summary for stderr.

    `vault_keys` says what a Vault secret outside the Harness layout becomes: `split`
    (one text secret per key), `whole` (one JSON text secret), or `auto`: whole when
    migrating to AWS (one JSON SecretString), split otherwise."""
    backend = ws.backend(manager_id)
    target = ws.backend(migrate_to) if migrate_to else None
    if migrate_to == manager_id:
        raise UsageError("--migrate-to must name another manager than the one discovered")
    discovery = Discovery(manager_id)
    if vault_keys == "auto":
        vault_keys = "whole" if target is not None and target.type_name == "aws_secrets_manager" else "split"
    if backend.type_name == "vault":
        _discover_vault(backend, discovery, vault_keys)
    else:
        discovery.found = [Found(s) for s in backend.list_ids()]
    purpose = "adopt" if target is None else "migrate"
    fingerprint = crypto.Fingerprinter(crypto.new_key())  # compares values within this run only
    held = _skip_unreadable(backend, discovery, purpose, fingerprint)
    if backend.type_name == "aws_secrets_manager":
        _aws_unmapped(backend, discovery)
        if target is not None and target.type_name == "vault":
            _aws_json_objects_to_vault_paths(backend, discovery)
    _skip_already_placed(ws, discovery)
    if target is None:
        _skip_held_differently_elsewhere(ws, discovery, held, fingerprint)
        text = _secrets_yaml(discovery)
    else:
        text = _migration_yaml(discovery, migrate_to, target, mode)
    summary = (f"discover: {len(discovery.found)} secret(s) in manager {manager_id!r}, "
               f"{len(discovery.skipped)} skipped" + (" (reasons in the comments at the top of the output)"
                                                       if discovery.skipped else ""))
    return text, summary


# --------------------------------------------------------------------------- per manager type

def _discover_vault(backend, discovery: Discovery, vault_keys: str) -> None:
    """Harness-layout secrets by listing, then every other path under base_path by key."""
    layout_ids = set(backend.list_ids())
    discovery.found = [Found(s) for s in sorted(layout_ids)]
    taken = {s.name for s in layout_ids if s.kind is Kind.TEXT}
    mapped = backend.paths.mapped_paths()  # already addressed by the config's secrets entries
    for path in backend.paths.walk():
        where = "/".join(p for p in (backend.secret_engine, backend.base_path, path) if p)
        if path in mapped:
            continue
        if path.startswith(VAULT_LAYOUT_FOLDERS):
            continue  # listed by list_ids, sub-folders included
        data, _ = backend.paths.read_data(path)
        if data is None:
            discovery.skipped.append((where, "its current version is deleted or destroyed"))
            continue
        if not data:
            discovery.skipped.append((where, "it holds no keys"))
            continue
        for found, problem in _vault_secrets(path, data, vault_keys):
            if problem is None and found.id.name in taken:
                problem = f"the name {found.id.name!r} is already taken by another secret of this manager"
            if problem is not None:
                key = f"#{found.vault_key}" if found.vault_key else ""
                discovery.skipped.append((where + key, problem))
                continue
            taken.add(found.id.name)
            discovery.found.append(found)
        del data  # values are not kept beyond learning the keys


def _vault_secrets(path: str, data: dict, vault_keys: str):
    """(Found, problem or None) for one Vault secret outside the layout."""
    base = UNSAFE_NAME_CHARS.sub("_", path.strip("/").replace("/", "_"))
    if vault_keys == "whole":
        found = Found(SecretId(Kind.TEXT, base), path, None)
        return [(found, common_name_problem(base))]
    result = []
    for key in sorted(data):
        name = base if list(data) == ["value"] else f"{base}_{UNSAFE_NAME_CHARS.sub('_', key)}"
        found = Found(SecretId(Kind.TEXT, name), path, key)
        problem = common_name_problem(name)
        if problem is None and not isinstance(data[key], str):
            problem = (f"the key holds a {_json_type(data[key])}, not a string; "
                       "`--vault-keys whole` carries the whole secret as one JSON text")
        result.append((found, problem))
    return result


def _skip_unreadable(backend: Backend, discovery: Discovery, purpose: str,
                     fingerprint: Callable[[bytes], str]) -> dict[SecretId, str]:
    """Leave out what a plan could not move: secrets kept without a current value (listed
    as such: soft-deleted, pending deletion), and those that read back as no value or not
    one value. The layout's secrets are read for this (batched where the manager can);
    returns their fingerprints."""
    def skip(state: Unavailable) -> None:
        discovery.skipped.append((state.location, f"{describe(state)}; {restore_hint(state, purpose)}"))

    for state in backend.list_unavailable():
        skip(state)
    in_layout = [f.id for f in discovery.found if f.vault_path is None]
    readable, unavailable = read_states(backend, in_layout, fingerprint, backend.parallelism)
    for state in sorted(unavailable.values(), key=lambda u: u.id):
        skip(state)
    discovery.found = [f for f in discovery.found if f.vault_path is not None or f.id in readable]
    return {secret: entry.fingerprint for secret, entry in readable.items()}


def _skip_held_differently_elsewhere(ws: Workspace, discovery: Discovery, held: dict[SecretId, str],
                                     fingerprint: Callable[[bytes], str]) -> None:
    """An adopting entry names no source, so where another manager holds the same secret
    with another value the plan would see a conflict: such secrets are left to the user
    (equal copies are adopted: they plan as no-ops)."""
    differs: dict[SecretId, list[str]] = {}
    for manager in ws.config.managers:
        if manager == discovery.manager:
            continue
        other = ws.backend(manager)
        overlap = sorted(set(other.list_ids()) & held.keys())
        entries, unavailable = read_states(other, overlap, fingerprint, other.parallelism)
        for secret in overlap:
            if secret in unavailable or (secret in entries and entries[secret].fingerprint != held[secret]):
                differs.setdefault(secret, []).append(manager)
    kept = []
    for found in discovery.found:
        if found.id in differs:
            managers = ", ".join(repr(m) for m in differs[found.id])
            discovery.skipped.append((str(found.id), (
                f"manager {managers} holds another value under this name, so an entry adopting it here "
                f"would plan a conflict: decide which value wins and place it by hand")))
        else:
            kept.append(found)
    discovery.found = kept



def _aws_unmapped(backend, discovery: Discovery) -> None:
    """AWS names under the prefix outside secretshift's layout."""
    for name in backend.unmapped_names():
        discovery.skipped.append((name, ("not a secret name under the prefix (text secrets are "
                                        "<prefix>NAME, files <prefix>files/NAME; no empty, '.' or '..' "
                                        "folder)")))


def _aws_json_objects_to_vault_paths(backend, discovery: Discovery) -> None:
    """AWS JSON texts secretshift wrote from a whole multi-key Vault secret (tagged
    vault-json-object) go back to a Vault path as that multi-key secret."""
    metadata = backend.listed_metadata()
    discovery.found = [
        Found(f.id, metadata[f.id].vault_path or f.id.name) if f.id in metadata
        and metadata[f.id].format == WHOLE_SECRET_FORMAT else f
        for f in discovery.found
    ]


def _skip_already_placed(ws: Workspace, discovery: Discovery) -> None:
    """Secrets the config already places: repeating them would be a duplicate entry."""
    placed = {SecretId(p.kind, p.name): p.line for p in ws.config.secrets}
    kept = []
    for found in discovery.found:
        if found.id in placed:
            discovery.skipped.append((str(found.id), (f"already placed by secrets entry at line {placed[found.id]} "
                                                     f"of {ws.config.path.name}")))
        else:
            kept.append(found)
    discovery.found = kept


# --------------------------------------------------------------------------- YAML

def _secrets_yaml(discovery: Discovery) -> str:
    entries = [_entry(f, manager=discovery.manager, mode="copy") for f in discovery.found]
    header = [f"secretshift discover {discovery.manager}: {len(entries)} secret(s), adopted where they are",
              "(mode copy: adopting a secret never deletes a copy another manager holds)"]
    return _document(header, discovery.skipped, {"secrets": entries})


def _migration_yaml(discovery: Discovery, target_id: str, target: Backend, mode: str) -> str:
    """The migrations: block; what the target cannot hold joins `discovery.skipped`."""
    skipped = discovery.skipped
    movable, excluded = [], []
    for found in discovery.found:
        problem = target.name_problem(found.id)
        if problem:
            skipped.append((str(found.id), f"manager {target_id!r} cannot hold this name: {problem}"))
            if found.vault_path is None:
                excluded.append(found.id.name)
            continue
        movable.append(found)
    discovery.found = movable
    in_layout = [f for f in movable if f.vault_path is None]
    document: dict = {}
    if in_layout:
        kinds = sorted({f.id.kind.value for f in in_layout})
        document["migrations"] = [{"from": discovery.manager, "to": target_id, "mode": mode, "kinds": kinds,
                                   "include": ["*"], "exclude": sorted(set(map(_glob_literal, excluded)))}]
    mapped = [f for f in movable if f.vault_path is not None]
    if mapped:
        document["secrets"] = [_entry(f, manager=target_id, source=discovery.manager, mode=mode) for f in mapped]
    header = [(f"secretshift discover {discovery.manager} --migrate-to {target_id}: {len(movable)} secret(s), "
              f"mode {mode}")]
    return _document(header, skipped, document or {"migrations": []})


def _entry(found: Found, manager: str, mode: str, source: str | None = None) -> dict:
    entry = {"name": found.id.name, "kind": found.id.kind.value, "manager": manager}
    if source:
        entry["from"] = source
    entry["mode"] = mode
    if found.vault_path is not None:
        entry["vault_path"] = found.vault_path
        if found.vault_key is not None:
            entry["vault_key"] = found.vault_key
    return entry


def _document(header: list[str], skipped: list[tuple[str, str]], body: dict) -> str:
    lines = [f"# {line}" for line in header]
    if skipped:
        lines.append(f"# skipped {len(skipped)}:")
        lines += [f"#   {_one_line(what)}: {_one_line(why)}" for what, why in skipped]
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return "\n".join(lines) + "\n" + text


def _one_line(text: str) -> str:
    """Safe inside a YAML comment: no line breaks."""
    return " ".join(str(text).split()) or repr(text)


def _glob_literal(name: str) -> str:
    """A migration glob that matches exactly `name` (fnmatch: `[`, `*`, `?` escaped)."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)


def _json_type(value: object) -> str:
    return {bool: "boolean", int: "number", float: "number", dict: "object", list: "list"}.get(
        type(value), "null" if value is None else type(value).__name__)
