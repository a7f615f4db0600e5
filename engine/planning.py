"""Refresh and plan: what `plan` shows and what `apply` without a plan file carries out.

Reads every manager (inventory), scans the configured reference files, runs the pure
planner, and adds what the managers' credentials would refuse as plan errors.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

import engine
from engine import references as refs_mod
from engine import state as state_mod
from engine.applier import access_problems
from engine.drift import find_drift, merge_reads
from engine.drift import reads_needed as drift_reads
from engine.errors import UsageError
from engine.inventory import refresh
from engine.locrefs import broken_references, places_of
from engine.locscan import LocationReference, scan_locations
from engine.model import SecretId
from engine.plan import Plan
from engine.planner import make_plan, reads_needed
from engine.policy import check_policy
from engine.workspace import Workspace


def compute_plan(ws: Workspace, refresh_only: bool = False, warn=lambda message: None,
                 write_check: bool = True) -> Plan:
    """Refresh every manager, scan references, and compute the plan, with the drift since
    the last apply and the policy's verdict. `refresh_only`: the drift alone, no actions.
    `write_check`: ask the managers whether these credentials may make the changes."""
    backends = ws.backends()
    recorded = read_recorded_state(ws)

    def wanted(listing):
        drift_needs = drift_reads(recorded, listing)
        return drift_needs if refresh_only else merge_reads(reads_needed(ws.config, listing), drift_needs)

    inventory = refresh(backends, ws.fingerprint, wanted)
    comparable = recorded.fingerprint_key_id in ("", ws.fingerprint_key_id)
    if not comparable:
        warn(f"warning: {state_file(ws)} was recorded with another fingerprint key; "
             f"changed values cannot be told apart, only added and deleted secrets are reported")
    drift = find_drift(recorded, inventory, backends, compare_fingerprints=comparable)
    if refresh_only:
        return Plan((), drift=drift, refresh_only=True, config_digest=ws.config.digest,
                    fingerprint_key_id=ws.fingerprint_key_id, secretshift_version=engine.__version__)
    found = scan_reference_files(ws)[0]
    referenced = [secret_of(r) for r in found]
    sites = reference_sites(found)
    first_site = {secret: where[0] for secret, where in sites.items()}
    plan = make_plan(ws.config, inventory, backends, referenced, first_site, sites)
    refused = access_problems(plan.changes, backends) if write_check else []  # what the credentials would refuse
    violations = check_policy(plan.changes, ws.config.policy, recorded, ws.fingerprint_key_id)
    broken = broken_references(plan.actions, scan_location_files(ws), places_of(backends), inventory.holders)
    return dataclasses.replace(
        plan,
        broken_references=broken,
        errors=plan.errors + tuple(refused) + tuple(violations),
        drift=drift,
        config_digest=ws.config.digest,
        fingerprint_key_id=ws.fingerprint_key_id,
        secretshift_version=engine.__version__,
    )


def state_file(ws: Workspace) -> Path:
    """This config's state file (state.py)."""
    return state_mod.state_file(ws.state_dir, ws.config.path.name)


def read_recorded_state(ws: Workspace) -> state_mod.State:
    """What the applies of this config recorded (empty before the first)."""
    return state_mod.read_state(state_file(ws))


def reference_sites(found) -> dict[SecretId, list[str]]:
    """Per secret, the "file:line:col" of each of its references, ordered by file, then
    position (files sort by name, so the order does not depend on the scan order)."""
    ordered = sorted(found, key=lambda r: (r.file, r.line, r.column))
    sites: dict[SecretId, list[str]] = {}
    for reference in ordered:
        sites.setdefault(secret_of(reference), []).append(f"{reference.file}:{reference.line}:{reference.column}")
    return sites


def scan_reference_files(ws: Workspace, paths: list[str] | None = None):
    """Scan the given files/folders, or the config's `references.paths` globs."""
    files = _expand_paths(paths) if paths else _glob_config_paths(ws)
    found, unresolvable = [], []
    for file in files:
        text = read_text(file)
        if text is None:
            continue
        result = refs_mod.scan(text, display_path(file))
        found.extend(result.references)
        unresolvable.extend(result.unresolvable)
    return found, unresolvable


def scan_location_files(ws: Workspace) -> list[LocationReference]:
    """The references naming a location (vals, Ansible hashi_vault) in the config's
    `references.paths` files, in file order."""
    found = []
    for path in reference_files(ws):
        text = read_text(path)
        if text is not None:
            found.extend(scan_locations(text, display_path(path)))
    return found


def reference_files(ws: Workspace) -> list[Path]:
    """The files the config's `references.paths` globs match, sorted."""
    return _glob_config_paths(ws)


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


def read_text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if b"\x00" in data:
        return None  # binary file: no references in it
    return data.decode("utf-8", errors="surrogateescape")


def display_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def secret_of(reference) -> SecretId:
    return SecretId(reference.kind, reference.name)
