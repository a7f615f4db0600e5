"""Policy gates (`policy:` in the config) through the installed command: `plan` reports a
violated rule as a plan error with code `policy` naming the rule (and the secret), and
`apply` refuses the plan before any write, a saved plan made before the policy included.
builtin `harness` -> Vault KV v2 (the Vault-API simulator)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from clihelp import (
    SOURCE,
    TARGET,
    Secret,
    assert_one_error_line,
    make_project,
    seeded_template,
    write_config,
)

from engine.config import Policy
from engine.model import Kind, SecretId
from engine.plan import Action
from engine.policy import check_policy
from engine.state import Placed, State

SECRETS = [Secret("text", f"pol_{i}", f"canary-policy-{i}-{os.urandom(6).hex()}".encode()) for i in range(3)]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return seeded_template(tmp_path_factory, key="policy", secrets=SECRETS)


@pytest.fixture
def project(tmp_path, vault, template):
    return make_project(tmp_path / "project", vault, template)


def with_policy(project, policy: dict, **config) -> None:
    if config:
        project.configure(**config)
    project.config["policy"] = policy
    write_config(project.config_path, project.config)


def plan_errors(project) -> list[dict]:
    result = project.run("plan", "--format", "json")
    assert result.code == 1 and result.out.startswith(b"{"), result
    return json.loads(result.out)["errors"]


def assert_apply_refused(project, *fragments: str) -> None:
    """apply exits 1 naming the rule, and neither store changed."""
    before = project.state()
    result = project.run("apply", "--auto-approve")
    assert result.code == 1, result
    assert "error: the plan has" in result.err and "nothing was applied" in result.err, result
    for fragment in fragments:
        assert fragment in result.err, (fragment, result)
    assert project.state() == before


def test_no_deletes_refuses_moves_and_lets_copies_through(project):
    with_policy(project, {"no_deletes": True})
    errors = plan_errors(project)
    assert [(e["code"], e["name"]) for e in errors] == [("policy", s.name) for s in SECRETS]
    assert errors[0]["message"] == (f"policy.no_deletes: the move of text secret 'pol_0' would delete it from "
                                    f"manager '{SOURCE}'; the policy forbids deletes (mode: copy leaves the "
                                    f"source in place)")
    assert_apply_refused(project, "policy.no_deletes")
    assert project.vault_values() == {}
    with_policy(project, {"no_deletes": True}, mode="copy")
    assert project.run("plan", "--detailed-exitcode").code == 2
    assert project.run("apply", "--auto-approve").code == 0
    assert len(project.vault_values()) == len(SECRETS) and len(project.source_values()) == len(SECRETS)


def test_max_changes_counts_the_changes_of_the_whole_plan(project):
    with_policy(project, {"max_changes": 2})
    [error] = plan_errors(project)
    assert error == {"code": "policy", "kind": None, "name": None,
                     "message": "policy.max_changes: the plan has 3 changes, more than the 2 the policy allows; "
                                "narrow the migrations (include/exclude) to apply it in smaller plans"}
    assert_apply_refused(project, "policy.max_changes")
    with_policy(project, {"max_changes": 3})
    assert project.run("apply", "--auto-approve").code == 0


def test_source_only_managers_are_never_written(project):
    with_policy(project, {"source_only": [TARGET]})
    errors = plan_errors(project)
    assert {e["name"] for e in errors} == {s.name for s in SECRETS}
    assert all(e["message"].startswith("policy.source_only: the move of text secret")
               and f"would write it to manager '{TARGET}', which the policy allows only as a source" in e["message"]
               for e in errors)
    assert_apply_refused(project, "policy.source_only")


def test_no_overwrite_unmanaged_allows_updating_only_what_secretshift_wrote(project):
    client = project.client().secrets.kv.v2
    client.create_or_update_secret(path="harness/SECRET_TEXT/pol_0", secret={"value": "someone else's"},
                                   mount_point=project.mount)
    with_policy(project, {"no_overwrite_unmanaged": True}, mode="copy", on_conflict="overwrite")
    [error] = plan_errors(project)
    assert (error["code"], error["name"]) == ("policy", "pol_0")
    assert error["message"] == (f"policy.no_overwrite_unmanaged: updating text secret 'pol_0' would overwrite the "
                                f"value in manager '{TARGET}' at {project.mount}/harness/SECRET_TEXT/pol_0, "
                                f"which secretshift never wrote")
    assert_apply_refused(project, "policy.no_overwrite_unmanaged", "pol_0")
    assert project.vault_values()["harness/SECRET_TEXT/pol_0"] == {"value": "someone else's"}

    with_policy(project, {"no_overwrite_unmanaged": True}, mode="copy", on_conflict="overwrite",
                include=["pol_1", "pol_2"])
    assert project.run("apply", "--auto-approve").code == 0
    project.put("pol_1", b"rotated in the source")  # secretshift wrote pol_1: updating it is allowed
    assert project.run("apply", "--auto-approve").code == 0
    assert project.vault_values()["harness/SECRET_TEXT/pol_1"] == {"value": "rotated in the source"}

    client.create_or_update_secret(path="harness/SECRET_TEXT/pol_2", secret={"value": "hand edit"},
                                   mount_point=project.mount)
    [error] = plan_errors(project)
    assert error["message"].startswith("policy.no_overwrite_unmanaged: updating text secret 'pol_2'")
    assert error["message"].endswith("which changed after secretshift wrote it")


def test_a_saved_plan_made_before_a_stricter_policy_is_refused_by_apply(project):
    planned = project.run("plan", "--out", "plan.json")
    assert planned.code == 0, planned
    with_policy(project, {"no_deletes": True})
    before = project.state()
    applied = project.run("apply", "plan.json")
    assert_one_error_line(applied, "plan.json breaks the policy of secretshift.yaml, nothing was written: "
                                   "policy.no_deletes: the move of text secret 'pol_0'", "(and 2 more)")
    assert project.state() == before


def test_a_saved_plan_is_checked_against_the_state_of_when_it_is_applied(project):
    """The config is unchanged: only what secretshift knows about the target changed."""
    client = project.client().secrets.kv.v2
    with_policy(project, {"no_overwrite_unmanaged": True}, mode="copy", on_conflict="overwrite")
    assert project.run("apply", "--auto-approve").code == 0
    project.put("pol_0", b"new value to roll out")
    assert project.run("plan", "--out", "plan.json").code == 0
    state_file = project.root / ".secretshift" / "state" / "secretshift.yaml.json"
    state_file.unlink()  # forgetting what secretshift wrote: pol_0 is no longer known as ours
    before = project.state()
    applied = project.run("apply", "plan.json")
    assert_one_error_line(applied, "policy.no_overwrite_unmanaged: updating text secret 'pol_0'",
                          "which secretshift never wrote")
    assert project.state() == before
    assert client.read_secret_version(path="harness/SECRET_TEXT/pol_0", mount_point=project.mount,
                                      raise_on_deleted_version=False)["data"]["data"]["value"].startswith("canary")


def _edit_saved_plan(project, edit, digest=None) -> None:
    """Edit plan.json's actions, drop its errors; with `digest`, record that config file's."""
    document = json.loads((project.root / "plan.json").read_text())
    for action in document["actions"]:
        edit(action)
    document["errors"] = []
    if digest is not None:
        document["config_digest"] = hashlib.sha256(digest.read_bytes()).hexdigest()
    (project.root / "plan.json").write_text(json.dumps(document))


def test_a_saved_plan_edited_to_call_an_overwrite_a_copy_is_refused(project):
    """Editing `update` into `copy` (and dropping the plan's errors) must not slip an
    overwrite past no_overwrite_unmanaged, nor past on_conflict (the config digest is no
    secret: anyone can compute it): a write onto a different value is an update,
    whatever the file calls it, and only on_conflict: overwrite allows one."""
    client = project.client().secrets.kv.v2
    client.create_or_update_secret(path="harness/SECRET_TEXT/pol_0", secret={"value": "precious"},
                                   mount_point=project.mount)
    before = project.state()

    def as_copy(action):
        if action["action"] == "update":
            action["action"] = "copy"

    with_policy(project, {"no_overwrite_unmanaged": True}, mode="copy", on_conflict="overwrite", include=["pol_0"])
    assert project.run("plan", "--out", "plan.json").code == 1
    _edit_saved_plan(project, as_copy)
    assert_one_error_line(project.run("apply", "plan.json"), "policy.no_overwrite_unmanaged", "pol_0",
                          "which secretshift never wrote")

    project.configure(mode="copy", on_conflict="overwrite", include=["pol_0"])
    assert project.run("plan", "--out", "plan.json").code == 0
    _edit_saved_plan(project, as_copy)
    assert_one_error_line(project.run("apply", "plan.json"), "plan.json", "pol_0", "only an update may overwrite it")

    assert project.run("plan", "--out", "plan.json").code == 0
    project.configure(mode="copy", on_conflict="fail", include=["pol_0"])
    _edit_saved_plan(project, lambda action: None, digest=project.config_path)
    assert_one_error_line(project.run("apply", "plan.json"), "plan.json", "pol_0", "on_conflict: fail")

    assert project.state() == before
    assert project.vault_values()["harness/SECRET_TEXT/pol_0"] == {"value": "precious"}


def test_policy_rules_as_data():
    """Every rule on one plan, through the pure check."""
    secret = SecretId(Kind.TEXT, "s")
    fp_a, fp_b = "hmac-sha256:" + "a" * 64, "hmac-sha256:" + "b" * 64

    def update(target_fp):
        return Action("update", secret, "src", "dst", "dst/s", fp_b, target_fp, delete_source=False)

    ours = State("key", {("dst", secret): Placed("dst", secret, "dst/s", fp_a, "t", "apply-1")})
    assert check_policy([update(fp_a)], Policy(no_overwrite_unmanaged=True), ours, "key") == []
    assert "another fingerprint key" in check_policy([update(fp_a)], Policy(no_overwrite_unmanaged=True),
                                                     ours, "other")[0].message
    rules = Policy(no_deletes=True, no_overwrite_unmanaged=True, max_changes=0, source_only=("dst",))
    move = Action("move", secret, "src", "dst", "dst/s", fp_b, None, delete_source=True)
    hand_edited = update("hmac-sha256:" + "c" * 64)  # not what secretshift wrote (fp_a)
    found = [p.message.split(":")[0] for p in check_policy([move, hand_edited], rules, ours, "key")]
    assert found == ["policy.no_deletes", "policy.no_overwrite_unmanaged", "policy.source_only",
                     "policy.source_only", "policy.max_changes"]
    assert check_policy([move], Policy(), State(), "key") == []
