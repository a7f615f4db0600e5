"""End to end through the installed `secretshift` command: builtin store -> Vault KV.

Every test works in its own project folder (a copy of a store seeded once through
`secretshift put`) against its own fresh KV mount of the session's Vault, and checks the
exit code, stdout, stderr and the exact content of both stores afterwards.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from clihelp import (
    FOLDERS,
    SOURCE,
    TARGET,
    Secret,
    by_id,
    make_project,
    seeded_template,
    vault_layout,
    write_config,
)


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """The session's builtin store holding the whole corpus, seeded through `put`."""
    return seeded_template(tmp_path_factory)


@pytest.fixture
def project(tmp_path, vault, template):
    """builtin `harness` (the corpus) -> `corp_vault` (a fresh KV v2 mount, base_path harness)."""
    return make_project(tmp_path / "project", vault, template)


def _plan_json(project, *extra):
    result = project.run("plan", "--format", "json", *extra)
    assert result.out.startswith(b"{"), result
    return result, json.loads(result.out)


def _assert_moved_everything(project, base_path="harness"):
    """Vault holds exactly the contract layout, once; the source keeps only tombstones."""
    assert project.vault_values() == vault_layout(project.secrets, base_path)
    if project.kv == 2:
        assert {p: v["versions"] for p, v in project.vault_tree().items()} == {
            p: {"1": False} for p in vault_layout(project.secrets, base_path)}
    assert project.source_values() == {}
    for secret in project.secrets:  # recoverable delete: the value stays, under a tombstone
        assert project.source_history(secret.kind, secret.name) == [False, True], secret.id


# --------------------------------------------------------------------------- moves

def test_move_every_shape_to_kv2_lands_byte_exact_at_contract_paths_and_leaves_tombstones(project):
    """plan counts every secret, apply writes the contract layout byte for byte, the source
    is emptied recoverably, and a new plan has no changes."""
    n = len(project.secrets)
    planned, doc = _plan_json(project)
    assert planned.code == 0, planned
    assert planned.err == ""
    assert doc["format_version"] == 1
    assert doc["errors"] == []
    assert doc["summary"] == {"move": n, "copy": 0, "update": 0, "delete": 0, "noop": 0, "errors": 0}
    assert sorted((a["kind"], a["name"]) for a in doc["actions"]) == sorted(s.id for s in project.secrets)
    for action in doc["actions"]:
        assert action["action"] == "move"
        assert (action["from"], action["to"]) == (SOURCE, TARGET)
        assert action["target_location"] == f"{project.mount}/harness/{FOLDERS[action['kind']]}/{action['name']}"
        assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", action["source_fingerprint"]), action
        assert action["references"] == 0

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert applied.err == ""
    assert f"Apply complete! {n} moved, 0 copied, 0 updated, 0 deleted" in applied.stdout
    _assert_moved_everything(project)

    # the literal API paths of the contract (KV v2: data/ after the mount)
    raw = project.client().adapter.get(f"/v1/{project.mount}/data/harness/SECRET_TEXT/signing_passphrase")
    assert raw["data"]["data"] == {"value": "Pässwörd-ünïcödé-密码-пароль-🔑-FAKE"}
    raw = project.client().adapter.get(f"/v1/{project.mount}/data/harness/CONFIG_FILE/keystore.p12")
    assert raw["data"]["data"]["encoding"] == "base64"
    assert base64.b64decode(raw["data"]["data"]["value"]) == by_id(project.secrets)[("file", "keystore.p12")]

    listed = project.run("list", SOURCE)
    assert (listed.code, listed.out, listed.err) == (0, b"", "")
    again = project.run("plan", "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes" in again.stdout


@pytest.mark.parametrize("kv", [1, 2], ids=["kv1", "kv2"])
def test_move_with_empty_base_path_puts_folders_at_the_mount_root_without_double_slashes(tmp_path, vault, template, kv):
    """With base_path "" secrets live at <mount>/SECRET_TEXT/<name> (KV v1 and v2 alike)."""
    project = make_project(tmp_path / "project", vault, template, kv=kv, base_path="")
    planned, doc = _plan_json(project)
    assert planned.code == 0, planned
    assert doc["summary"]["move"] == len(project.secrets)
    for action in doc["actions"]:
        assert action["target_location"] == f"{project.mount}/{FOLDERS[action['kind']]}/{action['name']}"
        assert "//" not in action["target_location"]

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    _assert_moved_everything(project, base_path="")
    middle = "data/" if kv == 2 else ""
    raw = project.client().adapter.get(f"/v1/{project.mount}/{middle}CONFIG_FILE/all_bytes.bin")
    data = raw["data"]["data"] if kv == 2 else raw["data"]
    assert base64.b64decode(data["value"]) == bytes(range(256)) * 3 + bytes(range(255, -1, -1))

    again = project.run("plan", "--detailed-exitcode")
    assert again.code == 0, again


def test_move_out_of_kv2_soft_deletes_the_source_so_it_stays_recoverable(project, tmp_path):
    """Vault KV v2 -> builtin: the builtin store gets the exact bytes, and the Vault copy is
    soft-deleted (metadata and version kept), so `undelete` brings it back."""
    project.config["migrations"] = [{"from": TARGET, "to": SOURCE, "kinds": ["text", "file"],
                                     "include": ["from-vault.*"], "exclude": [], "mode": "move"}]
    write_config(project.config_path, project.config)
    moved = [Secret("text", "from-vault.text", "é in Vault ✓\n".encode()),
             Secret("file", "from-vault.bin", bytes(range(255, -1, -1)) + b"\x00")]
    (tmp_path / "blob").write_bytes(moved[1].data)
    stored = project.run("put", TARGET, "from-vault.text", stdin=moved[0].data)
    assert stored.code == 0, stored
    assert f"{project.mount}/harness/SECRET_TEXT/from-vault.text" in stored.err
    stored = project.run("put", TARGET, "from-vault.bin", "--kind", "file", "--from-file", str(tmp_path / "blob"))
    assert stored.code == 0, stored
    assert project.vault_values() == vault_layout(moved)

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert "Apply complete! 2 moved" in applied.stdout
    assert project.source_values() == by_id(project.secrets) | by_id(moved)
    assert project.vault_tree() == {p: {"data": None, "versions": {"1": True}} for p in vault_layout(moved)}
    again = project.run("plan", "--detailed-exitcode")  # soft-deleted keys count as absent
    assert again.code == 0, again
    client = project.client()
    for path, data in vault_layout(moved).items():
        client.secrets.kv.v2.undelete_secret_versions(versions=[1], path=path, mount_point=project.mount)
        reply = client.secrets.kv.v2.read_secret_version(path=path, mount_point=project.mount,
                                                         raise_on_deleted_version=True)
        assert reply["data"]["data"] == data


# --------------------------------------------------------------------------- render

PIPELINE = """\
# FirstGen and NextGen references to secrets that move to Vault.
pipeline:
  name: deploy
  stages:
    - firstgen: |
        export PGPASSWORD='${secrets.getValue("db_password")}'
        export STRIPE="${secrets.getValue('stripe_api_key')}"
        export SMTP='${secrets.getValue( "smtp_password" )}'
        echo '${configFile.getAsBase64("keystore.p12")}' | base64 -d > keystore.p12
        cat > chain.pem <<'PEM'
        ${configFile.getAsString("tls_chain.pem")}
        PEM
        echo "${configFile.getAsString("db_password")}" > app.env
    - nextgen: |
        export TOKEN=<+secrets.getValue("github_token")>
        export SIGN=<+secrets.getValue("account.signing_passphrase")>
        export LDAP=<+secrets.getValue('org.ldap_bind_password')>
        export EXPR='<+secrets.getValue("expression_inside")>'
        export RAW=<+configFile.getAsBase64("all_bytes.bin")>
"""

RENDERED = {  # expression -> what render must put in its place
    '${secrets.getValue("db_password")}': ("text", "db_password", "raw"),
    "${secrets.getValue('stripe_api_key')}": ("text", "stripe_api_key", "raw"),
    '${secrets.getValue( "smtp_password" )}': ("text", "smtp_password", "raw"),
    '${configFile.getAsBase64("keystore.p12")}': ("file", "keystore.p12", "base64"),
    '${configFile.getAsString("tls_chain.pem")}': ("file", "tls_chain.pem", "raw"),
    '${configFile.getAsString("db_password")}': ("file", "db_password", "raw"),
    '<+secrets.getValue("github_token")>': ("text", "github_token", "raw"),
    '<+secrets.getValue("account.signing_passphrase")>': ("text", "signing_passphrase", "raw"),
    "<+secrets.getValue('org.ldap_bind_password')>": ("text", "ldap_bind_password", "raw"),
    '<+secrets.getValue("expression_inside")>': ("text", "expression_inside", "raw"),
    '<+configFile.getAsBase64("all_bytes.bin")>': ("file", "all_bytes.bin", "base64"),
}


def _expected_render(values) -> bytes:
    out = PIPELINE.encode()
    for expression, (kind, name, form) in RENDERED.items():
        data = values[(kind, name)]
        out = out.replace(expression.encode(), base64.b64encode(data) if form == "base64" else data)
    return out


def test_render_is_byte_identical_before_and_after_the_migration(project):
    """render substitutes FirstGen and NextGen references once, and gives the same bytes
    whether the secrets live in the builtin store or in Vault."""
    (project.root / "pipelines").mkdir()
    (project.root / "pipelines" / "deploy.yaml").write_text(PIPELINE)
    expected = _expected_render(by_id(project.secrets))

    before = project.run("render", "pipelines/deploy.yaml")
    assert before.code == 0, before
    assert before.err == ""
    assert before.out == expected
    assert b'${secrets.getValue("db_password")} <+secrets.getValue("db_password")>' in before.out  # not re-expanded

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert project.source_values() == {}

    after = project.run("render", "pipelines/deploy.yaml")
    assert after.code == 0, after
    assert after.out == before.out


# --------------------------------------------------------------------------- read-only targets

def test_read_only_flag_fails_the_plan_and_apply_writes_nothing_anywhere(project):
    """read_only: true on the Vault manager: one read_only plan error per secret, exit 1,
    and apply refuses before touching either store."""
    project.configure(read_only=True)
    before = project.state()
    planned, doc = _plan_json(project)
    assert planned.code == 1, planned
    assert doc["actions"] == []
    assert doc["summary"]["errors"] == len(project.secrets)
    assert doc["summary"]["move"] == 0
    assert sorted((e["kind"], e["name"]) for e in doc["errors"]) == sorted(s.id for s in project.secrets)
    for error in doc["errors"]:
        assert error["code"] == "read_only"
        assert TARGET in error["message"]

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 1, applied
    assert "Traceback" not in applied.err
    assert re.search(r"error: .*error\(s\).*nothing was applied", applied.err), applied
    assert project.state() == before
    assert project.vault_tree() == {}


def test_token_without_write_capability_fails_apply_before_any_write(project, vault):
    """A token allowed only read/list on the mount: apply stops at the preflight, naming
    the manager and the path; Vault stays empty and the source keeps every secret."""
    policy = f"ro-{project.mount}"
    vault.set_policy(policy, f'path "{project.mount}/*" {{\n  capabilities = ["read", "list"]\n}}\n')
    project.token = vault.create_token(policies=[policy])
    before = project.state()

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 1, applied
    assert "Traceback" not in applied.err
    error_lines = [line for line in applied.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, applied
    assert f"manager '{TARGET}'" in error_lines[0], applied
    assert re.search(rf"{re.escape(project.mount)}/(data/)?harness/(SECRET_TEXT|CONFIG_FILE)/\S+",
                     error_lines[0]), applied
    assert "Apply complete" not in applied.stdout
    assert project.vault_tree() == {}
    assert project.state() == before
    assert project.source_values() == by_id(project.secrets)


# --------------------------------------------------------------------------- saved plans

def _save_plan(project):
    saved = project.run("plan", "--out", "p.json")
    assert saved.code == 0, saved
    assert json.loads((project.root / "p.json").read_text())["summary"]["move"] == len(project.secrets)


def test_saved_plan_is_refused_as_stale_after_a_source_value_changed(project):
    """put after plan --out: apply p.json exits 1 with "stale plan" and writes nothing."""
    _save_plan(project)
    project.put("db_password", b"changed after the plan was reviewed")
    before = project.state()

    applied = project.run("apply", "p.json")
    assert applied.code == 1, applied
    assert "stale plan" in applied.err
    assert "db_password" in applied.err and SOURCE in applied.err
    assert "Traceback" not in applied.err
    assert project.state() == before
    assert project.vault_tree() == {}


def test_saved_plan_is_refused_after_the_config_was_edited(project):
    """Any edit to secretshift.yaml after plan --out makes apply p.json refuse."""
    _save_plan(project)
    with project.config_path.open("a") as handle:
        handle.write("# reviewed by someone else\n")
    before = project.state()

    applied = project.run("apply", "p.json")
    assert applied.code == 1, applied
    assert "stale plan" in applied.err
    assert "secretshift.yaml" in applied.err
    assert project.state() == before
    assert project.vault_tree() == {}


def test_saved_plan_is_refused_when_a_target_secret_appeared_meanwhile(project):
    """A secret created in Vault after plan --out makes apply p.json refuse before any write."""
    _save_plan(project)
    project.vault_write("harness/SECRET_TEXT/github_token", {"value": "written by another tool"})
    before = project.state()

    applied = project.run("apply", "p.json")
    assert applied.code == 1, applied
    assert "stale plan" in applied.err
    assert "github_token" in applied.err and TARGET in applied.err
    assert project.state() == before
    assert project.vault_values() == {"harness/SECRET_TEXT/github_token": {"value": "written by another tool"}}


def test_unchanged_saved_plan_applies_without_asking(project):
    """apply p.json of a current plan runs with stdin closed (no confirmation) and moves everything."""
    _save_plan(project)
    applied = project.run("apply", "p.json", stdin=b"")
    assert applied.code == 0, applied
    assert "Only 'yes'" not in applied.stdout
    assert f"Apply complete! {len(project.secrets)} moved" in applied.stdout
    _assert_moved_everything(project)


# --------------------------------------------------------------------------- interactive apply

def test_interactive_apply_changes_nothing_on_no_and_applies_on_yes(project):
    """Without --auto-approve apply shows the plan and asks: "no" cancels (exit 1), "yes" applies."""
    before = project.state()
    refused = project.run("apply", stdin=b"no\n")
    assert refused.code == 1, refused
    assert "Only 'yes' will be accepted" in refused.stdout
    assert "cancelled" in refused.err
    assert project.state() == before

    accepted = project.run("apply", stdin=b"yes\n")
    assert accepted.code == 0, accepted
    assert f"Apply complete! {len(project.secrets)} moved" in accepted.stdout
    _assert_moved_everything(project)


# --------------------------------------------------------------------------- conflicts

def _with_conflict(project, on_conflict):
    project.configure(include=["db_password"], kinds=["text"], on_conflict=on_conflict)
    project.vault_write("harness/SECRET_TEXT/db_password", {"value": "the value Vault already holds"})


def test_conflict_with_on_conflict_fail_is_a_plan_error_and_apply_changes_nothing(project):
    """The target holds a different value: plan error `conflict`, exit 1; apply refuses."""
    _with_conflict(project, "fail")
    before = project.state()
    planned, doc = _plan_json(project, "--detailed-exitcode", "--out", "p.json")
    assert planned.code == 1, planned  # an error, not "changes"
    assert doc["actions"] == []
    assert [(e["code"], e["kind"], e["name"]) for e in doc["errors"]] == [("conflict", "text", "db_password")]
    assert TARGET in doc["errors"][0]["message"]
    assert doc["summary"]["errors"] == 1

    applied = project.run("apply", "p.json")  # a saved plan with errors is refused too
    assert applied.code == 1, applied
    assert "conflict" in applied.err and "Traceback" not in applied.err
    assert project.state() == before


def test_conflict_with_overwrite_updates_the_target_to_the_source_bytes(project):
    """on_conflict: overwrite plans an `update`; apply leaves the source's bytes in Vault."""
    _with_conflict(project, "overwrite")
    planned, doc = _plan_json(project)
    assert planned.code == 0, planned
    assert [(a["action"], a["kind"], a["name"]) for a in doc["actions"]] == [("update", "text", "db_password")]
    assert doc["actions"][0]["target_fingerprint"] != doc["actions"][0]["source_fingerprint"]
    assert doc["summary"]["update"] == 1

    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    tree = project.vault_tree()
    assert tree == {"harness/SECRET_TEXT/db_password": {
        "data": {"value": "fake-Pg-pa55word-2026"}, "versions": {"1": False, "2": False}}}
    assert project.source_history("text", "db_password") == [False, True]
    assert ("file", "db_password") in project.source_values()  # not placed by this migration


def test_conflict_with_skip_changes_nothing(project):
    """on_conflict: skip: no changes planned (exit 0 with --detailed-exitcode), apply touches nothing."""
    _with_conflict(project, "skip")
    before = project.state()
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.code == 0, planned
    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert project.state() == before
    assert project.vault_values() == {"harness/SECRET_TEXT/db_password": {"value": "the value Vault already holds"}}


# --------------------------------------------------------------------------- copy mode

def test_copy_mode_keeps_the_source_and_a_new_plan_has_no_changes(project):
    """mode: copy writes the contract layout to Vault, leaves the source untouched, and re-plans clean."""
    project.configure(mode="copy")
    before_source = project.source_state()
    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert f"0 moved, {len(project.secrets)} copied" in applied.stdout
    assert project.vault_values() == vault_layout(project.secrets)
    assert project.source_state() == before_source

    again = project.run("plan", "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes" in again.stdout
