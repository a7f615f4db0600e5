"""Planner cases as data: (config, inventory) -> expected actions and errors.

Each row states a situation a user meets; the planner is pure, so these run without
any backend. Inventories give each secret a stand-in value; its fingerprint is derived
from it so that equal values have equal fingerprints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.config import Config, ManagerConfig, Migration, SecretPlacement
from engine.inventory import Inventory
from engine.model import InventoryEntry, Kind, SecretId
from engine.planner import make_plan

T, F = Kind.TEXT, Kind.FILE


@dataclass
class Rules:
    """Stand-in for a backend's pure placement rules."""

    manager: str
    read_only: bool = False
    max_size: int | None = None

    def location(self, secret):
        return f"{self.manager}/{secret.kind.value}/{secret.name}"

    def name_problem(self, secret):
        return "it contains the character ' '" if " " in secret.name else None

    def size_problem(self, secret, size):
        if self.max_size is not None and size > self.max_size:
            return f"{size} bytes is over the limit of {self.max_size}"
        return None


def inventory(spec: dict[str, dict[str, str]]) -> Inventory:
    """{"harness": {"text:a": "value"}} -> Inventory; size = len(value)."""
    holdings = {}
    for manager, secrets in spec.items():
        entries = {}
        for key, value in secrets.items():
            kind, name = key.split(":", 1)
            sid = SecretId(Kind(kind), name)
            entries[sid] = InventoryEntry(sid, f"fp({value})", len(value), f"{manager}/{kind}/{name}")
        holdings[manager] = entries
    return Inventory(holdings)


def config(managers=("harness", "vault"), secrets=(), migrations=(), on_conflict="fail") -> Config:
    return Config(
        path=__import__("pathlib").Path("/x/secretshift.yaml"),
        managers={m: ManagerConfig(m, "builtin", False, {}) for m in managers},
        secrets=tuple(secrets),
        migrations=tuple(migrations),
        on_conflict=on_conflict,
    )


def move(source="harness", target="vault", **kw):
    return Migration(source=source, target=target, mode="move", line=9, **kw)


def copy(source="harness", target="vault", **kw):
    return Migration(source=source, target=target, mode="copy", line=9, **kw)


def summarize(plan):
    actions = [(a.action, f"{a.id.kind.value}:{a.id.name}", a.source, a.target) for a in plan.actions]
    errors = [(e.code, f"{e.id.kind.value}:{e.id.name}") for e in plan.errors]
    return actions, errors


def run(cfg, inv, read_only=(), max_size=None, referenced=()):
    rules = {m: Rules(m, m in read_only, max_size) for m in cfg.managers}
    return make_plan(cfg, inv, rules, referenced)


CASES = [
    pytest.param(
        config(migrations=[move()]),
        {"harness": {"text:db": "a", "file:kube": "b"}, "vault": {}},
        [("move", "file:kube", "harness", "vault"), ("move", "text:db", "harness", "vault")], [],
        id="migration-move-into-empty-target",
    ),
    pytest.param(
        config(migrations=[copy()]),
        {"harness": {"text:db": "a"}, "vault": {}},
        [("copy", "text:db", "harness", "vault")], [],
        id="migration-copy",
    ),
    pytest.param(
        config(migrations=[move()]),
        {"harness": {}, "vault": {"text:db": "a"}},
        [], [],
        id="after-a-move-nothing-to-do",
    ),
    pytest.param(
        config(migrations=[move()]),
        {"harness": {"text:db": "a"}, "vault": {"text:db": "a"}},
        [("delete", "text:db", "harness", "vault")], [],
        id="move-whose-copy-exists-only-deletes-source",
    ),
    pytest.param(
        config(migrations=[copy()]),
        {"harness": {"text:db": "a"}, "vault": {"text:db": "a"}},
        [("noop", "text:db", "harness", "vault")], [],
        id="copy-already-done-is-noop",
    ),
    pytest.param(
        config(migrations=[move()]),
        {"harness": {"text:db": "a"}, "vault": {"text:db": "DIFFERENT"}},
        [], [("conflict", "text:db")],
        id="different-target-value-fails-by-default",
    ),
    pytest.param(
        config(migrations=[move()], on_conflict="overwrite"),
        {"harness": {"text:db": "a"}, "vault": {"text:db": "DIFFERENT"}},
        [("update", "text:db", "harness", "vault")], [],
        id="overwrite-makes-an-update",
    ),
    pytest.param(
        config(migrations=[move()], on_conflict="skip"),
        {"harness": {"text:db": "a"}, "vault": {"text:db": "DIFFERENT"}},
        [("noop", "text:db", "harness", "vault")], [],
        id="skip-leaves-both",
    ),
    pytest.param(
        config(migrations=[move(kinds=(F,), include=("tls_*", "kube*"), exclude=("kube_old",))]),
        {"harness": {"file:tls_a": "1", "text:tls_b": "2", "file:kube": "3", "file:kube_old": "4", "file:x": "5"}},
        [("move", "file:kube", "harness", "vault"), ("move", "file:tls_a", "harness", "vault")], [],
        id="kinds-include-exclude-filter",
    ),
    pytest.param(
        config(managers=("harness", "vault", "aws"), migrations=[move()],
               secrets=[SecretPlacement("db", T, "aws", line=3)]),
        {"harness": {"text:db": "a", "text:api": "b"}, "vault": {}, "aws": {}},
        [("move", "text:db", "harness", "aws"), ("move", "text:api", "harness", "vault")], [],
        id="explicit-placement-wins-over-migration",
    ),
    pytest.param(
        config(secrets=[SecretPlacement("db", T, "vault", source="harness", line=3)]),
        {"harness": {}, "vault": {}},
        [], [("missing", "text:db")],
        id="explicit-from-missing",
    ),
    pytest.param(
        config(secrets=[SecretPlacement("db", T, "vault", line=3)]),
        {"harness": {"file:db": "a"}, "vault": {}},
        [], [("missing", "text:db")],
        id="explicit-not-anywhere-other-kind-does-not-count",
    ),
    pytest.param(
        config(secrets=[SecretPlacement("db", T, "vault", line=3)]),
        {"harness": {}, "vault": {"text:db": "a"}},
        [("noop", "text:db", None, "vault")], [],
        id="explicit-already-in-place",
    ),
    pytest.param(
        config(managers=("harness", "vault", "old"), secrets=[SecretPlacement("db", T, "vault", line=3)]),
        {"harness": {"text:db": "a"}, "old": {"text:db": "a"}, "vault": {}},
        [], [("ambiguous", "text:db")],
        id="explicit-found-in-two-places-is-ambiguous",
    ),
    pytest.param(
        config(managers=("harness", "vault", "old"), secrets=[SecretPlacement("db", T, "vault", source="old", line=3)]),
        {"harness": {"text:db": "a"}, "old": {"text:db": "a"}, "vault": {}},
        [("move", "text:db", "old", "vault")], [],
        id="explicit-from-resolves-ambiguity",
    ),
    pytest.param(
        config(managers=("a", "b", "vault"), migrations=[move("a"), move("b")]),
        {"a": {"text:db": "same"}, "b": {"text:db": "same"}, "vault": {}},
        [("move", "text:db", "a", "vault"), ("move", "text:db", "b", "vault")], [],
        id="two-sources-same-value-gathered",
    ),
    pytest.param(
        config(managers=("a", "b", "vault"), migrations=[move("a"), move("b")]),
        {"a": {"text:db": "one"}, "b": {"text:db": "two"}, "vault": {}},
        [], [("ambiguous", "text:db")],
        id="two-sources-different-values-ambiguous",
    ),
    pytest.param(
        config(managers=("a", "v1", "v2"), migrations=[move("a", "v1"), move("a", "v2")]),
        {"a": {"text:db": "one"}, "v1": {}, "v2": {}},
        [], [("ambiguous", "text:db")],
        id="one-secret-two-targets-ambiguous",
    ),
    pytest.param(
        config(migrations=[move()]),
        {"harness": {"text:db": "a", "file:db": "b"}, "vault": {"text:db": "a"}},
        [("delete", "text:db", "harness", "vault"), ("move", "file:db", "harness", "vault")], [],
        id="same-name-text-and-file-are-independent",
    ),
]


@pytest.mark.parametrize("cfg, inv, expected_actions, expected_errors", CASES)
def test_plan_cases(cfg, inv, expected_actions, expected_errors):
    actions, errors = summarize(run(cfg, inventory(inv)))
    assert sorted(actions) == sorted(expected_actions)
    assert errors == expected_errors


def test_read_only_target_is_a_plan_error():
    plan = run(config(migrations=[move()]), inventory({"harness": {"text:db": "a"}}), read_only={"vault"})
    assert summarize(plan) == ([], [("read_only", "text:db")])
    assert "'vault', which is read_only" in plan.errors[0].message


def test_move_from_read_only_source_is_an_error_but_copy_is_fine():
    inv = inventory({"harness": {"text:db": "a"}})
    assert summarize(run(config(migrations=[move()]), inv, read_only={"harness"}))[1] == [("read_only", "text:db")]
    assert summarize(run(config(migrations=[copy()]), inv, read_only={"harness"}))[0] == [
        ("copy", "text:db", "harness", "vault")]


def test_too_large_and_invalid_name_are_plan_errors():
    inv = inventory({"harness": {"file:big": "x" * 100, "text:bad name": "a", "text:ok": "a"}})
    plan = run(config(migrations=[move()]), inv, max_size=50)
    assert summarize(plan) == (
        [("move", "text:ok", "harness", "vault")],
        [("too_large", "file:big"), ("invalid_name", "text:bad name")],
    )
    assert "100 bytes is over the limit of 50" in plan.errors[0].message


def test_references_are_counted_per_action_and_unresolved_ones_are_errors():
    inv = inventory({"harness": {"text:db": "a", "file:kube": "b"}})
    referenced = [SecretId(T, "db"), SecretId(T, "db"), SecretId(F, "kube"), SecretId(T, "ghost")]
    plan = run(config(migrations=[move()]), inv, referenced=referenced)
    counts = {a.id.name: a.references for a in plan.actions}
    assert counts == {"db": 2, "kube": 1}
    assert summarize(plan)[1] == [("unresolved_reference", "text:ghost")]


def test_plan_records_fingerprints_and_locations_without_values():
    inv = inventory({"harness": {"text:db": "hunter2"}, "vault": {}})
    (action,) = run(config(migrations=[move()]), inv).actions
    assert action.source_fingerprint == "fp(hunter2)"
    assert action.target_fingerprint is None
    assert action.target_location == "vault/text/db"
    assert action.source_location == "harness/text/db"
    assert action.delete_source is True


def test_output_order_is_deterministic_whatever_the_inventory_order():
    names = [f"s{i:03}" for i in range(50)]
    forward = inventory({"harness": {f"text:{n}": n for n in names}})
    backward = inventory({"harness": {f"text:{n}": n for n in reversed(names)}})
    cfg = config(migrations=[move()])
    assert run(cfg, forward) == run(cfg, backward)
    assert [a.id.name for a in run(cfg, forward).actions] == names


def test_plan_round_trips_through_its_json_form():
    from engine.plan import Plan

    inv = inventory({"harness": {"text:db": "a", "file:f": "b"}, "vault": {"text:x": "c"}})
    plan = run(config(migrations=[move()], secrets=[SecretPlacement("ghost", T, "vault", line=2)]), inv)
    assert Plan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize("cfg, inv, expected_actions, expected_errors", CASES)
def test_reading_only_the_values_reads_needed_asks_for_gives_the_same_plan(cfg, inv, expected_actions,
                                                                             expected_errors):
    from engine.planner import reads_needed

    full = inventory(inv)
    listing = {m: frozenset(held) for m, held in full.holdings.items()}
    wanted = reads_needed(cfg, listing)
    partial = Inventory({m: {s: e for s, e in held.items() if s in wanted[m]} for m, held in full.holdings.items()},
                        listing)
    assert run(cfg, partial) == run(cfg, full)


def test_a_settled_target_and_unplaced_secrets_are_not_read():
    from engine.planner import reads_needed

    listing = {"harness": frozenset({SecretId(T, "db")}),
               "vault": frozenset({SecretId(T, f"s{i}") for i in range(1000)} | {SecretId(T, "db")}),
               "other": frozenset({SecretId(F, "unrelated")})}
    wanted = reads_needed(config(managers=("harness", "vault", "other"), migrations=[move()]), listing)
    assert wanted == {"harness": {SecretId(T, "db")}, "vault": {SecretId(T, "db")}, "other": set()}


def test_a_saved_plan_edited_to_do_what_the_config_does_not_say_is_caught():
    from dataclasses import replace

    from engine.planner import disagreements

    cfg = config(managers=("harness", "vault", "other"), migrations=[move()])
    inv = inventory({"harness": {"text:db": "a"}, "vault": {}, "other": {}})
    rules = {m: Rules(m) for m in cfg.managers}
    plan = make_plan(cfg, inv, rules)
    (action,) = plan.actions
    assert disagreements(plan, cfg, rules) == []

    def edited(**changes):
        return disagreements(replace(plan, actions=(replace(action, **changes),)), cfg, rules)

    assert edited(target="harness", target_location="harness/text/db") == [
        "text secret 'db' moves from manager 'harness' onto itself"]
    assert edited(target="zzz") == ["text secret 'db' names manager 'zzz', which the config does not define"]
    assert "puts it at vault/text/db" in edited(target_location="vault/text/elsewhere")[0]
    assert "delete_source false" in edited(delete_source=False)[0]
    assert "does not place it in 'other'" in edited(target="other", target_location="other/text/db")[0]
    assert edited(action="copy", delete_source=False) == [
        "text secret 'db': the config does not place it in 'vault' from 'harness' by copy"]


def test_an_unresolved_reference_names_where_it_is_and_a_secret_of_the_other_kind():
    inv = inventory({"harness": {"file:blob": "b"}})
    plan = make_plan(config(migrations=[move()]), inv, {m: Rules(m) for m in ("harness", "vault")},
                     [SecretId(T, "blob"), SecretId(T, "blob")], {SecretId(T, "blob"): "pipes/a.yaml:3:7"})
    (problem,) = plan.errors
    assert problem.message == ("2 references (first at pipes/a.yaml:3:7) name text secret 'blob', "
                               "which no manager holds; a file secret of that name exists")


def test_a_plans_changes_are_computed_once():
    """Callers index `changes` inside loops over the actions (the state file after an
    apply, rollback): recomputing it on every access made those loops quadratic."""
    cfg = config(migrations=[copy()])
    plan = run(cfg, inventory({"harness": {f"text:s{i}": f"v{i}" for i in range(50)}}))
    assert plan.changes is plan.changes
    assert len(plan.changes) == 50
