"""The use cases behind each CLI command: the only place that wires config, backends,
inventory, planner, renderers and applier together.

Each function takes plain arguments, returns what to print (or raises a
SecretShiftError), and never prints by itself except through the Console it is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import discover as discover_mod
from engine import execution
from engine import history as history_mod
from engine import references as refs_mod
from engine.errors import BackendError, SecretShiftError, UsageError
from engine.model import Kind, SecretId, SecretValue
from engine.planfile import load_plan, save_plan
from engine.planning import compute_plan, display_path, read_recorded_state, read_text, scan_reference_files, secret_of
from engine.render import RENDERERS
from engine.workspace import DEFAULT_CONFIG, STATE_DIR, Workspace

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@dataclass
class Console:
    """Where a command writes and how it asks: injected so commands stay testable."""

    out: Callable[[str], None]
    err: Callable[[str], None]
    ask: Callable[[str], bool]
    color: bool = False


# --- validate ---------------------------------------------------------------------

def validate(config_path) -> str:
    """Check the config and that every manager is reachable with its credentials."""
    with Workspace(config_path) as ws:
        failures = []
        for manager_id, backend in ws.backends().items():
            try:
                backend.ping()
            except BackendError as error:
                failures.append(str(error))
        if failures:
            raise SecretShiftError("; ".join(failures))
        names = ", ".join(ws.config.managers)
        return f"{ws.config.path.name} is valid; {len(ws.config.managers)} manager(s) reachable: {names}"


# --- plan -------------------------------------------------------------------------

def plan(config_path, fmt: str = "text", out_file: str | None = None,
         detailed_exitcode: bool = False, color: bool = False,
         warn: Callable[[str], None] = lambda message: None, refresh_only: bool = False,
         write_check: bool = True) -> tuple[str, int]:
    """The plan rendered in `fmt`, and the exit code the contract gives it; `warn` hears
    about an apply that did not finish (it must be resumed or rolled back first).
    `refresh_only`: the drift since the last apply alone (exit 2 with `detailed_exitcode`
    when there is any); it makes nothing to apply, so `out_file` is refused.
    `write_check` False: the credentials' write rights are not asked (read_only errors
    then come from apply's preflight, before any write)."""
    if refresh_only and out_file:
        raise UsageError("plan --refresh-only reports drift and makes no plan to apply, so --out is refused; "
                         "save its --format json output instead")
    with Workspace(config_path) as ws:
        unfinished = execution.unfinished(ws)
        if unfinished is not None:
            warn(f"warning: apply {unfinished.apply_id} did not finish ({unfinished.status}); `secretshift apply` "
                 f"resumes it and `secretshift rollback` undoes it; no other plan can be applied until then")
        result = compute_plan(ws, refresh_only=refresh_only, warn=warn, write_check=write_check)
        untracked = refresh_only and not result.drift and not read_recorded_state(ws).secrets
        config_name = ws.config.path.name
    if out_file:
        save_plan(Path(out_file), result)
    if refresh_only:
        code = EXIT_CHANGES if detailed_exitcode and result.drift else EXIT_OK
        if untracked and fmt != "json":  # "No drift" would claim more than anyone checked
            why = (f"no secret placed by an apply of {config_name} is recorded here (.secretshift/state/; "
                   "none was applied, or rollback undid it), and nothing was added where one was.")
            return (f"Nothing tracked yet: {why}\n" if fmt == "text" else
                    f"## secretshift drift report\n\n**Nothing tracked yet**: {why}\n"), code
        return RENDERERS[fmt](result, color=color), code
    if result.errors:
        code = EXIT_ERROR
    else:
        code = EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK
    return RENDERERS[fmt](result, color=color), code


def show(plan_file: str, fmt: str = "text", color: bool = False) -> str:
    """A saved plan file rendered in `fmt`. Reads only that file (validated by load_plan):
    no config, no manager, so a reviewer or a CI job can render any plan anywhere."""
    return RENDERERS[fmt](load_plan(plan_file), color=color)


# --- apply / rollback -------------------------------------------------------------

def apply(config_path, plan_file: str | None, auto_approve: bool, console: Console,
          force_unlock: str | None = None, rewrite_references: bool = False) -> int:
    """Resume an unfinished apply, apply a saved plan, or plan now, show it, ask, and apply
    (and with `rewrite_references`, rewrite the references naming a location it deletes)."""
    return execution.apply(lambda: Workspace(config_path), plan_file, auto_approve, console, force_unlock,
                           rewrite_references)


def rollback(config_path, auto_approve: bool, console: Console, force_unlock: str | None = None) -> int:
    """Undo the last apply from its journal."""
    return execution.rollback(lambda: Workspace(config_path), auto_approve, console, force_unlock)


def history(config_path, fmt: str = "text") -> str:
    """Every apply, resume and rollback run beside the config, oldest first. Reads only
    the history file: the config is not loaded, so neither managers nor credentials are
    needed, and a CI job or an auditor can list it anywhere the folder is."""
    config = Path(config_path or DEFAULT_CONFIG)
    if not config.is_file():
        raise UsageError(f"{config}: no such config file (use -c/--config to name another)")
    records = history_mod.read_history(history_mod.history_file(config.absolute().parent / STATE_DIR, config.name))
    if fmt == "json":
        return history_mod.render_history_json(records)
    return history_mod.render_history_text(records, config.name)


# --- put / get / list -------------------------------------------------------------

def put(config_path, manager: str, name: str, kind: str, data: bytes) -> str:
    """Store a value in one manager (a new version if it exists)."""
    secret = SecretId(Kind(kind), name)
    if secret.kind is Kind.TEXT:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the value for text secret {name!r} is not UTF-8; use --kind file") from None
    with Workspace(config_path) as ws:
        backend = ws.backend(manager)
        problem = backend.name_problem(secret) or backend.size_problem(secret, len(data))
        if problem:
            raise UsageError(f"cannot store {secret} in manager {manager!r}: {problem}")
        backend.check_access([secret], [])
        backend.write(secret, SecretValue(data))
        size = "1 byte" if len(data) == 1 else f"{len(data)} bytes"
        return f"Stored {secret} ({size}) in manager {manager!r} at {backend.location(secret)}"


def get(config_path, manager: str, name: str, kind: str) -> bytes:
    """The raw bytes of one secret."""
    secret = SecretId(Kind(kind), name)
    with Workspace(config_path) as ws:
        value = ws.backend(manager).read(secret)
    if value is None:
        raise UsageError(f"{secret} not found in manager {manager!r}")
    return value.data


def list_secrets(config_path, manager: str, fmt: str = "text") -> str:
    """Kinds and names held by one manager, no values."""
    with Workspace(config_path) as ws:
        ids = sorted(ws.backend(manager).list_ids())
    if fmt == "json":
        items = [{"kind": s.kind.value, "name": s.name} for s in ids]
        return json.dumps({"manager": manager, "secrets": items}, indent=2, ensure_ascii=False) + "\n"
    return "".join(f"{s.kind.value:<4}  {s.name}\n" for s in ids)


# --- discover ---------------------------------------------------------------------

def discover(config_path, manager: str, migrate_to: str | None = None, mode: str = "copy",
             vault_keys: str = "auto") -> tuple[str, str]:
    """YAML placing what `manager` holds (a secrets: block, or with `migrate_to` a
    migrations: block), and a one-line summary of what was found and skipped."""
    with Workspace(config_path) as ws:
        return discover_mod.discover(ws, manager, migrate_to, mode, vault_keys)


# --- references -------------------------------------------------------------------

class _Resolver:
    """Finds the value a reference resolves to: the first manager, in config order, that
    lists the secret and still returns a value (a listed Vault key may be soft-deleted)."""

    def __init__(self, ws: Workspace):
        self._backends = ws.backends()
        self._listed = {m: set(b.list_ids()) for m, b in self._backends.items()}
        self._cache: dict[SecretId, bool] = {}

    def value(self, secret: SecretId) -> bytes | None:
        for manager_id, listed in self._listed.items():
            if secret in listed:
                value = self._backends[manager_id].read(secret)
                if value is not None:
                    return value.data
        return None

    def resolves(self, secret: SecretId) -> bool:
        if secret not in self._cache:
            self._cache[secret] = self.value(secret) is not None
        return self._cache[secret]


def refs(config_path, paths: list[str] | None, fmt: str = "text") -> tuple[str, int]:
    """Every reference with file:line:col and whether it resolves in some manager."""
    with Workspace(config_path) as ws:
        found, unresolvable = scan_reference_files(ws, paths)
        resolver = _Resolver(ws)
        resolves = [resolver.resolves(secret_of(r)) for r in found]
    if fmt == "json":
        document = {
            "references": [{**r.to_dict(), "resolves": ok} for r, ok in zip(found, resolves)],
            "unresolvable": [u.to_dict() for u in unresolvable],
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n", EXIT_OK
    lines = []
    for r, ok in zip(found, resolves):
        state = "resolves" if ok else "DOES NOT RESOLVE"
        scope = f" scope={r.scope}" if r.scope else ""
        lines.append(f"{r.file}:{r.line}:{r.column}  {r.function}(\"{r.name}\")  {r.kind.value}{scope}  {state}")
    for u in unresolvable:
        lines.append(f"{u.file}:{u.line}:{u.column}  {u.text!r}  cannot be resolved by scanning: {u.reason}")
    lines.append(f"{len(found)} reference(s), {resolves.count(False)} not resolving, "
                 f"{len(unresolvable)} not resolvable by scanning.")
    return "\n".join(lines) + "\n", EXIT_OK


def render(config_path, file: str) -> bytes:
    """FILE with every reference replaced by its value (one pass, no re-expansion)."""
    path = Path(file)
    text = read_text(path)
    if text is None:
        raise UsageError(f"{file} is a binary file; render takes text files")
    with Workspace(config_path) as ws:
        result = refs_mod.scan(text, display_path(path))
        resolver = _Resolver(ws)
        return refs_mod.render(text, result.references, lambda r: resolver.value(secret_of(r)))
