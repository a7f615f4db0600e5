"""The use cases behind each CLI command: the only place that wires config, backends,
inventory, planner, renderers and applier together.

Each function takes plain arguments, returns what to print (or raises a
SecretShiftError), and never prints by itself except through the Console it is given.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import engine
from engine import references as refs_mod
from engine.applier import Outcome, access_problems, apply_plan
from engine.errors import BackendError, PlanError, SecretShiftError, StalePlan, UsageError
from engine.inventory import refresh
from engine.model import Kind, SecretId, SecretValue
from engine.plan import Plan
from engine.planfile import load_plan, save_plan
from engine.planner import make_plan
from engine.render import RENDERERS
from engine.render.text import action_line
from engine.workspace import Workspace

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
        for manager_id in ws.config.managers:
            try:
                ws.backend(manager_id).ping()
            except BackendError as error:
                failures.append(str(error))
        if failures:
            raise SecretShiftError("; ".join(failures))
        names = ", ".join(ws.config.managers)
        return f"{ws.config.path.name} is valid; {len(ws.config.managers)} manager(s) reachable: {names}"


# --- plan -------------------------------------------------------------------------

def compute_plan(ws: Workspace) -> Plan:
    """Refresh every manager, scan references, and compute the plan."""
    backends = ws.backends()
    inventory = refresh(backends, ws.fingerprint, _parallelism(ws))
    referenced = [_secret_of(r) for r in scan_reference_files(ws)[0]]
    plan = make_plan(ws.config, inventory, backends, referenced)
    refused = access_problems(plan.changes, backends)  # what the credentials would refuse
    return dataclasses.replace(
        plan,
        errors=plan.errors + tuple(refused),
        config_digest=ws.config.digest,
        fingerprint_key_id=ws.fingerprint_key_id,
        secretshift_version=engine.__version__,
    )


def plan(config_path, fmt: str = "text", out_file: str | None = None,
         detailed_exitcode: bool = False, color: bool = False) -> tuple[str, int]:
    """The plan rendered in `fmt`, and the exit code the contract gives it."""
    with Workspace(config_path) as ws:
        result = compute_plan(ws)
    if out_file:
        save_plan(Path(out_file), result)
    if result.errors:
        code = EXIT_ERROR
    else:
        code = EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK
    return RENDERERS[fmt](result, color=color), code


# --- apply ------------------------------------------------------------------------

def apply(config_path, plan_file: str | None, auto_approve: bool, console: Console) -> int:
    """Apply a saved plan, or plan now, show it, ask, and apply."""
    with Workspace(config_path) as ws:
        if plan_file:  # reviewed already: apply it as it is, without asking again
            to_apply = load_plan(plan_file)
            _check_saved_plan(to_apply, ws, plan_file)
        else:
            to_apply = compute_plan(ws)
            console.out(RENDERERS["text"](to_apply, color=console.color))
        if to_apply.errors:
            first = to_apply.errors[0]
            raise PlanError(f"the plan has {len(to_apply.errors)} error(s), nothing was applied; "
                            f"the first: {first.code}: {first.message}")
        if not to_apply.has_changes:
            if plan_file:
                console.out("No changes in this plan; nothing to apply.")
            return EXIT_OK
        if not plan_file and not auto_approve and not console.ask(
            f"Apply these {len(to_apply.changes)} changes? Only 'yes' will be accepted: "
        ):
            console.err("Apply cancelled; nothing was changed.")
            return EXIT_ERROR
        outcomes = apply_plan(to_apply, ws.backends(), ws.fingerprint,
                              progress=lambda o: console.out(_outcome_line(o, console.color)))
    console.out(_apply_summary(outcomes))
    return EXIT_OK


def _apply_summary(outcomes: list[Outcome]) -> str:
    done = Counter(o.action.action for o in outcomes)
    return (f"Apply complete! {done['move']} moved, {done['copy']} copied, {done['update']} updated, "
            f"{done['delete']} deleted; every write was read back and matched.")


def _outcome_line(outcome: Outcome, color: bool) -> str:
    suffix = "  done, verified" if outcome.status == "done" else "  already done"
    return action_line(outcome.action, color) + suffix


def _check_saved_plan(saved: Plan, ws: Workspace, plan_file: str) -> None:
    if saved.config_digest != ws.config.digest:
        raise StalePlan(
            f"stale plan: {ws.config.path.name} changed since {plan_file} was made; nothing was written. Run plan again"
        )
    if saved.fingerprint_key_id != ws.fingerprint_key_id:
        raise StalePlan(
            f"{plan_file} was made with another fingerprint key; nothing was written "
            f"(set fingerprint_key in the config so plan and apply share one)"
        )


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
        return f"Stored {secret} ({len(data)} bytes) in manager {manager!r} at {backend.location(secret)}"


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


# --- references -------------------------------------------------------------------

def scan_reference_files(ws: Workspace, paths: list[str] | None = None):
    """Scan the given files/folders, or the config's `references.paths` globs."""
    files = _expand_paths(paths) if paths else _glob_config_paths(ws)
    found, unresolvable = [], []
    for file in files:
        text = _read_text(file)
        if text is None:
            continue
        result = refs_mod.scan(text, _display(file))
        found.extend(result.references)
        unresolvable.extend(result.unresolvable)
    return found, unresolvable


def _glob_config_paths(ws: Workspace) -> list[Path]:
    base = ws.config.base_dir
    matched = set()
    for pattern in ws.config.reference_paths:
        for hit in glob.glob(pattern, root_dir=base, recursive=True):
            path = base / hit
            if path.is_file():
                matched.add(path)
    return sorted(matched)


def _expand_paths(paths: list[str]) -> list[Path]:
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{raw}: no such file or folder")
    return files


def _read_text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if b"\x00" in data:
        return None  # binary file: no references in it
    return data.decode("utf-8", errors="surrogateescape")


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def refs(config_path, paths: list[str] | None, fmt: str = "text") -> tuple[str, int]:
    """Every reference with file:line:col and whether it resolves in some manager."""
    with Workspace(config_path) as ws:
        found, unresolvable = scan_reference_files(ws, paths)
        held = {s for b in ws.backends().values() for s in b.list_ids()}
    if fmt == "json":
        document = {
            "references": [{**r.to_dict(), "resolves": _secret_of(r) in held} for r in found],
            "unresolvable": [u.to_dict() for u in unresolvable],
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n", EXIT_OK
    lines = []
    for r in found:
        state = "resolves" if _secret_of(r) in held else "DOES NOT RESOLVE"
        scope = f" scope={r.scope}" if r.scope else ""
        lines.append(f"{r.file}:{r.line}:{r.column}  {r.function}(\"{r.name}\")  {r.kind.value}{scope}  {state}")
    for u in unresolvable:
        lines.append(f"{u.file}:{u.line}:{u.column}  {u.text!r}  cannot be resolved by scanning: {u.reason}")
    missing = sum(1 for r in found if _secret_of(r) not in held)
    lines.append(f"{len(found)} reference(s), {missing} not resolving, {len(unresolvable)} not resolvable by scanning.")
    return "\n".join(lines) + "\n", EXIT_OK


def render(config_path, file: str) -> bytes:
    """FILE with every reference replaced by its value (one pass, no re-expansion)."""
    path = Path(file)
    text = _read_text(path)
    if text is None:
        raise UsageError(f"{file} is a binary file; render takes text files")
    with Workspace(config_path) as ws:
        result = refs_mod.scan(text, _display(path))
        holders = {}
        for manager_id, backend in ws.backends().items():
            for secret in backend.list_ids():
                holders.setdefault(secret, manager_id)

        def value_of(reference) -> bytes | None:
            manager_id = holders.get(_secret_of(reference))
            if manager_id is None:
                return None
            value = ws.backend(manager_id).read(_secret_of(reference))
            return None if value is None else value.data

        return refs_mod.render(text, result.references, value_of)


def _secret_of(reference) -> SecretId:
    return SecretId(reference.kind, reference.name)


def _parallelism(ws: Workspace) -> dict[str, int]:
    return {m: int(c.settings.get("parallelism") or 8) for m, c in ws.config.managers.items()}
