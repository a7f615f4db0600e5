"""Drift: the state file an apply records, and `plan` reporting what changed outside
secretshift since (through the installed command, builtin store -> Vault KV v2 served
by the Vault-API simulator; out-of-band changes are made through hvac, never by editing
our state)."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from clihelp import (
    TARGET,
    Secret,
    assert_one_error_line,
    make_project,
    seeded_template,
    write_config,
)

SECRETS = [Secret("text", f"svc_{i}", f"canary-drift-{i}-{os.urandom(6).hex()}".encode()) for i in range(4)]
SECRETS += [Secret("file", "tls.pem", b"-----BEGIN CANARY-----\n" + os.urandom(40) + b"\x00\n")]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return seeded_template(tmp_path_factory, key="drift", secrets=SECRETS)


@pytest.fixture
def project(tmp_path, vault, template):
    """Everything moved from builtin `harness` into a fresh KV v2 mount by one apply."""
    project = make_project(tmp_path / "project", vault, template)
    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    return project


def state_path(project):
    return project.root / ".secretshift" / "state" / "secretshift.yaml.json"


def recorded(project) -> dict[tuple[str, str], dict]:
    document = json.loads(state_path(project).read_bytes())
    return {(s["kind"], s["name"]): s for s in document["secrets"]}


def kv(project):
    return project.client().secrets.kv.v2


def drift_of(project, *extra) -> tuple[int, dict]:
    result = project.run("plan", "--format", "json", *extra)
    assert result.out.startswith(b"{"), result
    return result.code, json.loads(result.out)


def change_out_of_band(project) -> None:
    """Through Vault's API, as someone with the UI or the vault CLI would: change one
    value, delete another (KV v2 soft delete), add a third beside them."""
    client = kv(project)
    client.create_or_update_secret(path="harness/SECRET_TEXT/svc_1", secret={"value": "changed by hand"},
                                   mount_point=project.mount)
    client.delete_latest_version_of_secret(path="harness/CONFIG_FILE/tls.pem", mount_point=project.mount)
    client.create_or_update_secret(path="harness/SECRET_TEXT/added_by_hand", secret={"value": "x"},
                                   mount_point=project.mount)


def test_apply_records_each_placed_secret_and_the_target_listing_without_any_value(project):
    document = json.loads(state_path(project).read_bytes())
    assert document["format_version"] == 1 and document["config"] == "secretshift.yaml"
    entries = recorded(project)
    assert set(entries) == {s.id for s in SECRETS}
    for (kind, name), entry in entries.items():
        folder = "SECRET_TEXT" if kind == "text" else "CONFIG_FILE"
        assert entry["manager"] == TARGET
        assert entry["location"] == f"{project.mount}/harness/{folder}/{name}"
        assert entry["fingerprint"].startswith("hmac-sha256:") and len(entry["fingerprint"]) == 12 + 64
        assert entry["apply_id"] and entry["applied_at"]
    assert document["listings"] == {TARGET: {"text": sorted(s.name for s in SECRETS if s.kind == "text"),
                                             "file": ["tls.pem"]}}
    assert stat.S_IMODE(state_path(project).stat().st_mode) == 0o600
    raw = state_path(project).read_bytes()
    for secret in SECRETS:
        for form in (secret.data, base64.b64encode(secret.data), secret.data[:16]):
            assert form not in raw
    again = project.run("plan", "--detailed-exitcode")
    assert again.code == 0 and "Drift" not in again.stdout, again


def test_plan_reports_exactly_the_changed_deleted_and_added_secrets(project):
    change_out_of_band(project)
    code, plan = drift_of(project, "--detailed-exitcode")
    assert code == 0  # drift is not a change of this plan
    assert plan["actions"] == [] and plan["errors"] == [] and plan["refresh_only"] is False
    base = f"{project.mount}/harness"
    assert plan["drift"] == [
        {"manager": TARGET, "kind": "file", "name": "tls.pem", "change": "deleted",
         "location": f"{base}/CONFIG_FILE/tls.pem"},
        {"manager": TARGET, "kind": "text", "name": "added_by_hand", "change": "added",
         "location": f"{base}/SECRET_TEXT/added_by_hand"},
        {"manager": TARGET, "kind": "text", "name": "svc_1", "change": "changed",
         "location": f"{base}/SECRET_TEXT/svc_1"},
    ]
    text = project.run("plan")
    assert text.code == 0
    assert text.stdout.startswith("Drift since the last apply")
    assert "~ changed text svc_1" in text.stdout and "No changes." in text.stdout
    markdown = project.run("plan", "--format", "markdown").stdout
    assert "**3 secrets changed outside secretshift since the last apply**" in markdown


def test_the_next_apply_accepts_added_and_deleted_secrets_but_keeps_reporting_a_changed_value(project):
    change_out_of_band(project)
    project.put("svc_late", b"moved by the next apply")
    applied = project.run("apply", "--auto-approve")
    assert applied.code == 0 and "Drift since the last apply" in applied.stdout, applied
    entries = recorded(project)
    assert ("file", "tls.pem") not in entries and ("text", "svc_late") in entries
    assert "added_by_hand" in json.loads(state_path(project).read_bytes())["listings"][TARGET]["text"]
    code, plan = drift_of(project, "--detailed-exitcode")
    assert code == 0 and [(d["name"], d["change"]) for d in plan["drift"]] == [("svc_1", "changed")]


def test_refresh_only_shows_drift_alone_and_exits_2_with_detailed_exitcode(project):
    clean = project.run("plan", "--refresh-only", "--detailed-exitcode")
    assert clean.code == 0 and clean.stdout.startswith("No drift"), clean
    project.put("svc_new", b"waiting to be moved")  # a pending move: a change, not drift
    change_out_of_band(project)
    code, report = drift_of(project, "--refresh-only", "--detailed-exitcode")
    assert code == 2
    assert report["refresh_only"] is True and report["actions"] == [] and len(report["drift"]) == 3
    text = project.run("plan", "--refresh-only")
    assert text.code == 0 and "svc_new" not in text.stdout
    assert text.stdout.endswith("Drift: 1 changed, 1 deleted, 1 added.\n")
    markdown = project.run("plan", "--refresh-only", "--format", "markdown", "--detailed-exitcode")
    assert markdown.code == 2 and markdown.stdout.startswith("## secretshift drift report")
    refused = project.run("plan", "--refresh-only", "--out", "drift.json")
    assert_one_error_line(refused, "--refresh-only", "--out is refused")
    assert not (project.root / "drift.json").exists()


def test_refresh_only_before_any_apply_says_nothing_is_tracked_rather_than_no_drift(project):
    state_path(project).unlink()
    text = project.run("plan", "--refresh-only", "--detailed-exitcode")
    assert text.code == 0 and text.stdout.startswith("Nothing tracked yet: no secret placed by an apply"), text
    markdown = project.run("plan", "--refresh-only", "--format", "markdown")
    assert markdown.stdout.startswith("## secretshift drift report\n\n**Nothing tracked yet**"), markdown
    code, report = drift_of(project, "--refresh-only")
    assert (code, report["drift"]) == (0, [])


def test_refresh_only_after_the_only_apply_was_rolled_back_says_nothing_is_tracked(project):
    assert project.run("rollback", "--auto-approve").code == 0
    assert recorded(project) == {}
    text = project.run("plan", "--refresh-only")
    assert text.code == 0 and text.stdout.startswith("Nothing tracked yet:"), text
    assert "rollback undid it" in text.stdout
    kv(project).create_or_update_secret(path="harness/SECRET_TEXT/intruder", secret={"value": "x"},
                                        mount_point=project.mount)
    added = project.run("plan", "--refresh-only", "--detailed-exitcode")
    assert added.code == 2 and "Nothing tracked" not in added.stdout and "intruder" in added.stdout, added


def test_refresh_reads_the_tracked_secrets_and_no_other(project):
    kv(project).create_or_update_secret(path="harness/SECRET_TEXT/untracked", secret={"value": "x"},
                                        mount_point=project.mount)
    since = project.vault.request_count  # the log keeps only the last 10,000: count from its end
    code, report = drift_of(project, "--refresh-only")
    assert code == 0 and [d["name"] for d in report["drift"]] == ["untracked"]
    sent = project.vault.request_count - since
    reads = sorted(path for method, path, _ in list(project.vault.request_log)[-sent:]
                   if method == "GET" and path.startswith(f"{project.mount}/data/"))
    tracked = sorted(f"{project.mount}/data/harness/{'SECRET_TEXT' if s.kind == 'text' else 'CONFIG_FILE'}/{s.name}"
                     for s in SECRETS)
    assert reads == tracked


def test_rollback_removes_what_it_undid_from_the_state(project):
    before = recorded(project)
    project.put("svc_late", b"moved by a second apply")
    assert project.run("apply", "--auto-approve").code == 0
    assert set(recorded(project)) == set(before) | {("text", "svc_late")}
    rolled = project.run("rollback", "--auto-approve")
    assert rolled.code == 0, rolled
    assert recorded(project) == before  # the first apply's entries untouched
    assert project.run("plan", "--refresh-only", "--detailed-exitcode").code == 0
    assert project.run("rollback", "--auto-approve").code == 1  # the second apply was the last
    json.loads(state_path(project).read_bytes())


def test_rollback_of_an_update_puts_the_previous_entry_back(project):
    kv(project).create_or_update_secret(path="harness/SECRET_TEXT/svc_2", secret={"value": "rotated by hand"},
                                        mount_point=project.mount)
    project.put("svc_2", b"the value to migrate again")
    project.configure(on_conflict="overwrite")
    first = recorded(project)[("text", "svc_2")]
    assert project.run("apply", "--auto-approve").code == 0
    second = recorded(project)[("text", "svc_2")]
    assert second["fingerprint"] != first["fingerprint"] and second["replaced"]["fingerprint"] == first["fingerprint"]
    assert drift_of(project)[1]["drift"] == []
    assert project.run("rollback", "--auto-approve").code == 0
    assert recorded(project)[("text", "svc_2")] == first
    assert [(d["name"], d["change"]) for d in drift_of(project)[1]["drift"]] == [("svc_2", "changed")]


def test_a_failed_apply_records_what_it_placed_and_its_resume_the_rest(project, vault):
    project.config["managers"][TARGET]["retries"] = 0
    write_config(project.config_path, project.config)
    for name in ("late_a", "late_b"):
        project.put(name, f"canary-{name}".encode())
    vault.add_fault(status=500, path_regex="SECRET_TEXT/late_b", method="POST", count=None)
    try:
        failed = project.run("apply", "--auto-approve")
    finally:
        vault.clear_faults()
    assert failed.code == 1, failed
    assert ("text", "late_a") in recorded(project) and ("text", "late_b") not in recorded(project)
    resumed = project.run("apply", "--auto-approve")
    assert resumed.code == 0 and "Resuming apply" in resumed.stdout, resumed
    assert {("text", "late_a"), ("text", "late_b")} <= set(recorded(project))
    assert drift_of(project)[1]["drift"] == []


def test_what_an_apply_placed_is_recorded_even_when_the_target_cannot_be_listed_after_it(project, vault):
    """The manager went away mid-apply: the secrets verified before are still recorded
    (only the listing is missing, and the warning says so)."""
    project.config["managers"][TARGET]["retries"] = 0
    write_config(project.config_path, project.config)
    for name in ("late_a", "late_b"):
        project.put(name, f"canary-{name}".encode())
    vault.reset_counts()
    assert project.run("plan").code == 0
    lists = sum(1 for method, _, _ in vault.request_log if method == "LIST")  # the plan's own
    vault.add_fault(status=500, path_regex="SECRET_TEXT/late_b", method="POST", count=None)
    vault.add_fault(status=503, method="LIST", count=None, after=lists)
    try:
        failed = project.run("apply", "--auto-approve")
    finally:
        vault.clear_faults()
    assert failed.code == 1, failed
    assert "could not list" in failed.err and "state" in failed.err, failed
    assert ("text", "late_a") in recorded(project) and ("text", "late_b") not in recorded(project)


@pytest.mark.parametrize("damage, why", [(b"{not json", "not JSON: Expecting property name enclosed in double "
                                                             "quotes at line 1, column 2"),
                                         (b'{"format_version": 1, "secrets": 3}', "damaged ("),
                                         (b'{"format_version": 1}', "the key 'secrets' is missing"),
                                         (b"\xff\xfe", "not JSON")])
def test_a_corrupt_state_file_is_one_clear_error_naming_it_and_apply_writes_nothing(project, damage, why):
    state_path(project).write_bytes(damage)
    planned = project.run("plan")
    assert_one_error_line(planned, str(state_path(project)), "state file is damaged", why)
    project.put("svc_waiting", b"not moved while the state is damaged")
    before = project.state()
    applied = project.run("apply", "--auto-approve")
    assert_one_error_line(applied, str(state_path(project)), "state file is damaged")
    assert project.state() == before
