"""AWS rules and soft deletes as plan errors and warnings (issue 3, items 2 and 7).

Each test builds a project over real storage (moto's server, the Vault simulator, a
builtin file), puts a secret into the state under test through raw boto3/hvac, plans
through the same use case as `secretshift plan --format json`, and checks the exact
error or warning; where the plan cannot be applied, it checks that apply refuses and
that nothing was written anywhere (raw AWS versions and deletion dates, raw Vault
version metadata, the builtin store's contents).
"""

from __future__ import annotations

import json
import re

import pytest

from engine import commands
from engine.errors import PlanError
from engine.model import Kind, SecretId, SecretValue

from .migration_project import make_project

MIGRATE_MOVE = "migrations:\n  - {from: src, to: dst, mode: move}\n"
MIGRATE_FAIL = "migrations:\n  - {from: src, to: dst, mode: move, soft_deleted: fail}\n"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def refused(project) -> None:
    """apply refuses the plan before writing anything."""
    with pytest.raises(PlanError, match="nothing was applied"):
        project.apply()


def codes(doc: dict, key: str = "errors") -> list[tuple[str, str, str]]:
    return [(e["code"], e["kind"], e["name"]) for e in doc[key]]


# --------------------------------------------------------------------- AWS target pending deletion


def test_a_target_name_pending_deletion_is_a_conflict_saying_how_to_restore(request, tmp_path, monkeypatch):
    """Not a read_only error: a conflict naming the date, the restore command and the alternatives."""
    project = make_project(request, tmp_path, monkeypatch, "builtin", "aws", MIGRATE_MOVE)
    project.put("src", "db_password", "new value")
    project.put("src", "api_token", "other")
    name = project.dst.aws_name("db_password")
    project.dst.aws.create_secret(Name=name, SecretString="old value")
    project.dst.aws.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    before = project.dst.aws_state()

    doc, code = project.plan()
    assert code == 1
    assert codes(doc) == [("conflict", "text", "db_password")]
    message = doc["errors"][0]["message"]
    assert f"aws secretsmanager restore-secret --secret-id {name}" in message
    assert "pending deletion until" in message and DATE.search(message)
    assert f"aws secretsmanager delete-secret --secret-id {name} --force-delete-without-recovery" in message
    assert [a["name"] for a in doc["actions"] if a["action"] != "noop"] == ["api_token"]
    refused(project)
    assert project.dst.aws_state() == before
    assert project.read("src", "db_password") == SecretValue.from_text("new value")
    assert project.read("src", "api_token") == SecretValue.from_text("other")


def test_after_restore_the_same_name_plans_by_on_conflict(request, tmp_path, monkeypatch):
    """The restore the error suggests works: the plan then sees the old value as a conflict."""
    project = make_project(request, tmp_path, monkeypatch, "builtin", "aws", MIGRATE_MOVE)
    project.put("src", "db_password", "new value")
    name = project.dst.aws_name("db_password")
    project.dst.aws.create_secret(Name=name, SecretString="old value")
    project.dst.aws.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    project.dst.aws.restore_secret(SecretId=name)
    doc, _ = project.plan()
    assert codes(doc) == [("conflict", "text", "db_password")]
    assert "already holds a different value" in doc["errors"][0]["message"]


# --------------------------------------------------------------------- AWS secret without a value


def test_a_source_secret_without_a_value_is_a_missing_error_and_refresh_goes_on(request, tmp_path, monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "aws", "builtin",
                           "migrations:\n  - {from: src, to: dst, mode: copy}\n")
    empty = project.src.aws_name("empty_one")
    project.src.aws.create_secret(Name=empty)  # neither SecretString nor SecretBinary
    project.put("src", "db_password", "v1")
    before = project.src.aws_state()

    doc, code = project.plan()
    assert code == 1
    assert codes(doc) == [("missing", "text", "empty_one")]
    assert f"manager 'src' ({empty})" in doc["errors"][0]["message"]
    assert "no value" in doc["errors"][0]["message"]
    assert [(a["action"], a["name"]) for a in doc["actions"]] == [("copy", "db_password")]
    refused(project)
    assert project.src.aws_state() == before
    assert project.backend("dst").list_ids() == []


def test_a_target_secret_without_a_value_is_a_missing_error(request, tmp_path, monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "builtin", "aws", MIGRATE_MOVE)
    project.put("src", "db_password", "v1")
    project.dst.aws.create_secret(Name=project.dst.aws_name("db_password"))
    before = project.dst.aws_state()
    doc, _ = project.plan()
    assert codes(doc) == [("missing", "text", "db_password")]
    assert "has no current value" in doc["errors"][0]["message"]
    refused(project)
    assert project.dst.aws_state() == before
    assert project.read("src", "db_password") == SecretValue.from_text("v1")


# --------------------------------------------------------------------- soft-deleted sources


def test_an_aws_source_pending_deletion_is_skipped_with_a_warning(request, tmp_path, monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "aws", "vault_kv2", MIGRATE_MOVE)
    project.put("src", "gone", "old")
    project.put("src", "kept", "value")
    project.backend("src").delete(SecretId(Kind.TEXT, "gone"))

    doc, code = project.plan()
    assert code == 0 and doc["errors"] == []
    assert codes(doc, "warnings") == [("soft_deleted", "text", "gone")]
    warning = doc["warnings"][0]
    assert warning["manager"] == "src"
    assert f"restore-secret --secret-id {project.src.aws_name('gone')}" in warning["message"]
    assert [(a["action"], a["name"]) for a in doc["actions"]] == [("move", "kept")]
    text = project.plan_text()
    assert text.index("Warnings:") < text.index("Plan:") and "soft_deleted:" in text
    assert "### Warnings" in project.plan_text("markdown")
    saved = tmp_path / "plan.json"  # a saved plan keeps its warnings (and passes the plan schema)
    commands.plan(project.config, "json", out_file=str(saved))
    assert json.loads(commands.show(str(saved), "json"))["warnings"] == doc["warnings"]

    assert project.apply() == 0
    assert project.read("dst", "kept") == SecretValue.from_text("value")
    assert project.read("dst", "gone") is None
    assert project.src.aws_state()[project.src.aws_name("gone")][1] is not None  # still pending


def test_soft_deleted_fail_turns_the_warning_into_an_error(request, tmp_path, monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "aws", "builtin", MIGRATE_FAIL)
    project.put("src", "gone", "old")
    project.backend("src").delete(SecretId(Kind.TEXT, "gone"))
    doc, code = project.plan()
    assert code == 1 and doc["warnings"] == []
    assert codes(doc) == [("missing", "text", "gone")]
    assert "soft_deleted: fail" in doc["errors"][0]["message"]
    refused(project)
    assert project.backend("dst").list_ids() == []


@pytest.mark.parametrize("body", [MIGRATE_MOVE, MIGRATE_FAIL])
def test_kv2_sources_deleted_and_destroyed_are_seen(request, tmp_path, monkeypatch, body):
    """Latest version soft-deleted or destroyed: skipped with a warning each, or errors."""
    project = make_project(request, tmp_path, monkeypatch, "vault_kv2", "aws", body)
    for name in ("deleted_one", "destroyed_one", "live_one"):
        project.put("src", name, f"value of {name}")
    kv = project.src.vault.secrets.kv.v2
    kv.delete_latest_version_of_secret("harness/SECRET_TEXT/deleted_one", mount_point=project.src.mount)
    kv.destroy_secret_versions("harness/SECRET_TEXT/destroyed_one", versions=[1], mount_point=project.src.mount)
    vault_before = project.src.vault_state()

    doc, code = project.plan()
    found = codes(doc, "warnings" if body == MIGRATE_MOVE else "errors")
    assert found == [("soft_deleted" if body == MIGRATE_MOVE else "missing", "text", n)
                     for n in ("deleted_one", "destroyed_one")]
    messages = [w["message"] for w in doc["warnings" if body == MIGRATE_MOVE else "errors"]]
    assert "soft-deleted" in messages[0] and "destroyed" in messages[1]
    assert [(a["action"], a["name"]) for a in doc["actions"]] == [("move", "live_one")]
    if body == MIGRATE_FAIL:
        assert code == 1
        refused(project)
        assert project.dst.aws_state() == {}
        assert project.src.vault_state() == vault_before
    else:
        assert code == 0 and project.apply() == 0
        assert list(project.dst.aws_state()) == [project.dst.aws_name("live_one")]


def test_an_explicit_secret_found_only_soft_deleted_is_skipped_with_a_warning(request, tmp_path, monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "vault_kv2", "builtin",
                           "secrets:\n  - {name: db_password, manager: dst, from: src}\n")
    project.put("src", "db_password", "v")
    project.backend("src").delete(SecretId(Kind.TEXT, "db_password"))
    doc, code = project.plan()
    assert code == 0 and doc["errors"] == [] and doc["actions"] == []
    assert codes(doc, "warnings") == [("soft_deleted", "text", "db_password")]


def test_a_finished_move_out_of_kv2_gives_no_warnings(request, tmp_path, monkeypatch):
    """The soft-deleted sources a move leaves behind are not reported again."""
    project = make_project(request, tmp_path, monkeypatch, "vault_kv2", "aws", MIGRATE_MOVE)
    project.put("src", "a", "1")
    project.put("src", "b", "2")
    assert project.apply() == 0
    doc, code = project.plan()
    assert (code, doc["errors"], doc["warnings"], doc["actions"]) == (0, [], [], [])


# --------------------------------------------------------------------- soft-deleted targets


@pytest.mark.parametrize("how", ["deleted", "destroyed"])
def test_a_kv2_target_deleted_or_destroyed_takes_a_new_version_with_a_warning(request, tmp_path, monkeypatch, how):
    project = make_project(request, tmp_path, monkeypatch, "aws", "vault_kv2", MIGRATE_MOVE)
    project.put("dst", "db_password", "old")
    kv, path = project.dst.vault.secrets.kv.v2, "harness/SECRET_TEXT/db_password"
    if how == "deleted":
        kv.delete_latest_version_of_secret(path, mount_point=project.dst.mount)
    else:
        kv.destroy_secret_versions(path, versions=[1], mount_point=project.dst.mount)
    project.put("src", "db_password", "new")

    doc, code = project.plan()
    assert code == 0 and doc["errors"] == []
    assert [(a["action"], a["name"]) for a in doc["actions"]] == [("move", "db_password")]
    assert codes(doc, "warnings") == [("replaces_deleted", "text", "db_password")]
    assert doc["warnings"][0]["manager"] == "dst"
    assert ("soft-deleted" if how == "deleted" else "destroyed") in doc["warnings"][0]["message"]

    assert project.apply() == 0
    assert project.read("dst", "db_password") == SecretValue.from_text("new")
    assert sorted(project.dst.vault_state()["SECRET_TEXT/db_password"]) == ["1", "2"]
    doc, _ = project.plan()
    assert (doc["errors"], doc["warnings"], doc["actions"]) == ([], [], [])


def test_a_token_that_may_not_read_metadata_still_plans(request, tmp_path, monkeypatch):
    """Without `read` on metadata/ the destroyed key's state cannot be asked: it counts as
    absent (as before soft deletes were reported), and the refresh goes on."""
    project = make_project(request, tmp_path, monkeypatch, "vault_kv2", "builtin",
                           "migrations:\n  - {from: src, to: dst, mode: copy}\n")
    project.put("src", "destroyed_one", "x")
    project.put("src", "live_one", "y")
    mount = project.src.mount
    project.src.vault.secrets.kv.v2.destroy_secret_versions("harness/SECRET_TEXT/destroyed_one", versions=[1],
                                                           mount_point=mount)
    vault = request.getfixturevalue("vault")
    vault.set_policy(f"data-only-{mount}", f'path "{mount}/data/*" {{ capabilities = ["read"] }}\n'
                                           f'path "{mount}/metadata/*" {{ capabilities = ["list"] }}\n')
    monkeypatch.setenv("AWS_RULES_VAULT_TOKEN", vault.create_token(policies=[f"data-only-{mount}"]))
    doc, code = project.plan()
    assert code == 0 and doc["errors"] == [] and doc["warnings"] == []
    assert [(a["action"], a["name"]) for a in doc["actions"]] == [("copy", "live_one")]


# --------------------------------------------------------------------- held in a shape that is not one value


def test_sources_that_are_not_one_value_are_skipped_with_a_warning_and_the_rest_moves(request, tmp_path,
                                                                                        monkeypatch):
    """A Harness-layout Vault secret with another field, and a file that is not base64:
    refresh goes on (it used to abort the whole plan), the plan says what it leaves alone."""
    project = make_project(request, tmp_path, monkeypatch, "vault_kv2", "aws", MIGRATE_MOVE)
    project.put("src", "live_one", "v")
    kv, mount = project.src.vault.secrets.kv.v2, project.src.mount
    kv.create_or_update_secret("harness/SECRET_TEXT/two_fields", secret={"value": "v", "other": "o"},
                               mount_point=mount)
    kv.create_or_update_secret("harness/CONFIG_FILE/not_base64", secret={"value": "plain words"}, mount_point=mount)
    vault_before = project.src.vault_state()

    doc, code = project.plan()
    assert code == 0 and doc["errors"] == []
    assert sorted(codes(doc, "warnings")) == [("unreadable", "file", "not_base64"),
                                              ("unreadable", "text", "two_fields")]
    by_name = {w["name"]: w["message"] for w in doc["warnings"]}
    assert "is skipped" in by_name["two_fields"] and "'other'" in by_name["two_fields"]
    assert "not valid base64" in by_name["not_base64"]
    assert [(a["action"], a["name"]) for a in doc["actions"]] == [("move", "live_one")]
    assert project.apply() == 0
    assert list(project.dst.aws_state()) == [project.dst.aws_name("live_one")]
    after = project.src.vault_state()
    assert after["SECRET_TEXT/two_fields"] == vault_before["SECRET_TEXT/two_fields"]
    assert after["CONFIG_FILE/not_base64"] == vault_before["CONFIG_FILE/not_base64"]


def test_a_target_that_is_not_one_value_is_a_conflict_and_keeps_its_fields(request, tmp_path, monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "builtin", "vault_kv2", MIGRATE_MOVE)
    project.put("src", "db_password", "new")
    kv, mount = project.dst.vault.secrets.kv.v2, project.dst.mount
    kv.create_or_update_secret("harness/SECRET_TEXT/db_password", secret={"value": "old", "user": "app"},
                               mount_point=mount)
    before = project.dst.vault_state()
    doc, code = project.plan()
    assert code == 1 and codes(doc) == [("conflict", "text", "db_password")]
    assert "a write would replace all of it" in doc["errors"][0]["message"]
    refused(project)
    assert project.dst.vault_state() == before


def test_an_aws_binary_named_as_text_is_skipped_and_an_adopted_secret_without_value_is_named(request, tmp_path,
                                                                                             monkeypatch):
    project = make_project(request, tmp_path, monkeypatch, "aws", "builtin",
                           MIGRATE_MOVE + "secrets:\n  - {name: empty_one, manager: src}\n")
    project.src.aws.create_secret(Name=project.src.aws_name("bin_as_text"), SecretBinary=b"\x00\x01")
    project.src.aws.create_secret(Name=project.src.aws_name("empty_one"))
    doc, code = project.plan()
    assert [(w["code"], w["name"]) for w in doc["warnings"]] == [("unreadable", "bin_as_text")]
    assert "stored as SecretBinary" in doc["warnings"][0]["message"]
    assert codes(doc) == [("missing", "text", "empty_one")]
    assert "is where the config places it, but its current version holds no value" in doc["errors"][0]["message"]
