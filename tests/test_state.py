"""The state file as data: its transitions after apply and rollback, drift found from
it (pure functions, cases as data), and the file itself (atomic, 0600, validated)."""

from __future__ import annotations

import json
import stat

import pytest

from engine.drift import find_drift, reads_needed
from engine.inventory import Inventory
from engine.model import InventoryEntry, Kind, SecretId
from engine.plan import Action, Drift, Plan
from engine.planfile import load_plan, save_plan
from engine.state import (
    Placed,
    State,
    StateError,
    after_apply,
    after_rollback,
    read_state,
    to_dict,
    write_state,
)

A, B, C = (SecretId(Kind.TEXT, n) for n in ("a", "b", "c"))
F = SecretId(Kind.FILE, "a")
FP = {n: f"hmac-sha256:{n:064x}" for n in range(1, 6)}


class Where:
    def location(self, secret: SecretId) -> str:
        return f"kv/{secret.kind.value}/{secret.name}"


def move(secret: SecretId, fingerprint: str, target_fp: str | None = None) -> Action:
    return Action("update" if target_fp else "move", secret, "src", "dst", f"kv/{secret.kind.value}/{secret.name}",
                  fingerprint, target_fp, delete_source=True)


def placed_state() -> State:
    """a and b placed by apply-1 into dst, which listed a, b and x afterwards."""
    plan = Plan((move(A, FP[1]), move(B, FP[2])))
    listing = {"dst": frozenset({A, B, SecretId(Kind.TEXT, "x")})}
    return after_apply(State(), plan, plan.changes, "apply-1", "t1", listing, "key")


def inventory(held: dict[SecretId, str]) -> Inventory:
    entries = {s: InventoryEntry(s, fp, 1, f"kv/{s.kind.value}/{s.name}") for s, fp in held.items()}
    return Inventory({"dst": entries}, {"dst": frozenset(held)})


def test_apply_records_each_placed_secret_with_the_fingerprint_it_moved():
    state = placed_state()
    assert state.placed("dst", A) == Placed("dst", A, "kv/text/a", FP[1], "t1", "apply-1")
    assert set(state.secrets) == {("dst", A), ("dst", B)} and state.fingerprint_key_id == "key"


@pytest.mark.parametrize(("held", "expected"), [
    ({A: FP[1], B: FP[2]}, []),
    ({A: FP[3], B: FP[2]}, [("a", "changed")]),
    ({A: FP[1]}, [("b", "deleted")]),
    ({A: FP[1], B: FP[2], C: FP[4]}, [("c", "added")]),
    ({A: FP[1], B: FP[2], F: FP[4]}, [("a", "added")]),  # the file secret 'a' beside the text one
], ids=["none", "changed", "deleted", "added", "added-other-kind"])
def test_drift_cases(held, expected):
    """(what dst holds now) -> drift against placed_state(); refresh leaves a listed secret
    that reads as absent (a KV v2 soft delete) out of the listing, so it counts as deleted."""
    found = find_drift(placed_state(), inventory(held | {SecretId(Kind.TEXT, "x"): FP[5]}), {"dst": Where()})
    assert [(d.id.name, d.change) for d in found] == expected


def test_drift_ignores_managers_the_config_dropped_and_fingerprints_of_another_key():
    changed = inventory({A: FP[3], B: FP[2], SecretId(Kind.TEXT, "x"): FP[5]})
    assert find_drift(placed_state(), changed, {}) == ()
    assert find_drift(placed_state(), changed, {"dst": Where()}, compare_fingerprints=False) == ()


def test_refresh_reads_only_the_tracked_secrets_still_listed():
    listing = {"dst": frozenset({A, C}), "src": frozenset({B})}
    assert reads_needed(placed_state(), listing) == {"dst": {A}, "src": set()}


def test_an_overwrite_keeps_the_entry_it_replaced_and_rollback_puts_it_back():
    state = placed_state()
    plan = Plan((move(A, FP[3], target_fp=FP[1]),))
    updated = after_apply(state, plan, plan.changes, "apply-2", "t2", {}, "key")
    assert updated.placed("dst", A).replaced == state.placed("dst", A)
    resumed = after_apply(updated, plan, plan.changes, "apply-2", "t3", {}, "key")
    assert resumed.placed("dst", A).replaced == state.placed("dst", A)  # not itself
    assert after_rollback(resumed, plan.changes, "apply-2", {}).secrets == state.secrets
    assert after_rollback(state, [move(B, FP[2])], "apply-1", {}).secrets.keys() == {("dst", A)}
    assert after_rollback(state, [move(B, FP[2])], "apply-9", {}) == state  # another apply's entry


def test_an_apply_forgets_what_its_plan_reported_deleted_and_takes_the_new_listing():
    plan = Plan((move(C, FP[4]),), drift=(Drift("dst", B, "deleted", "kv/text/b"),))
    state = after_apply(placed_state(), plan, plan.changes, "apply-2", "t2", {"dst": frozenset({A, C})}, "key")
    assert set(state.secrets) == {("dst", A), ("dst", C)}
    assert state.listings == {"dst": frozenset({A, C})}


def test_the_file_round_trips_is_0600_and_holds_no_stray_keys(tmp_path):
    path = tmp_path / "state" / "secretshift.yaml.json"
    state = after_apply(placed_state(), Plan((move(A, FP[3], FP[1]),)), [move(A, FP[3], FP[1])], "apply-2", "t",
                        {}, "key")
    write_state(path, state, "secretshift.yaml")
    assert read_state(path) == state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert set(document) == {"format_version", "config", "fingerprint_key_id", "updated", "secrets", "listings"}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert read_state(tmp_path / "nowhere.json") == State()
    # written a piece at a time (jsonstream), byte for byte what json.dumps would write
    expected = json.dumps(to_dict(state, "secretshift.yaml", document["updated"]), indent=1, ensure_ascii=False)
    assert path.read_text() == expected + "\n"


BAD_ENTRY = b'{"format_version": 1, "fingerprint_key_id": "k", "listings": {}, "secrets": [{"manager": 1}]}'


@pytest.mark.parametrize("content", [b"[]", b'{"format_version": 2}', b'{"format_version": 1}', BAD_ENTRY])
def test_a_damaged_file_is_one_error_naming_it(tmp_path, content):
    path = tmp_path / "s.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=rf"^{path}: the secretshift state file is damaged \("):
        read_state(path)


def test_a_saved_plan_with_drift_passes_the_plan_schema(tmp_path):
    plan = Plan((move(A, FP[1]),), drift=(Drift("dst", B, "changed", "kv/text/b"),))
    save_plan(tmp_path / "plan.json", plan)
    assert load_plan(tmp_path / "plan.json").drift == plan.drift
