"""The apply history: one record per apply, resume and rollback run, beside the config.

The runs go through the apply use case in-process (commands.apply / commands.rollback)
on a builtin source store and a Vault KV v2 target served by the Vault-API simulator;
`secretshift history` itself is run as the installed command.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import hvac
import pytest

from engine import commands
from engine.errors import TransientError
from engine.history import plan_digest
from engine.journal import latest
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

from conftest import fresh_mount

SECRETSHIFT = Path(sys.executable).parent / "secretshift"
VALUES = {SecretId(Kind.TEXT, f"t{i:02}"): f"canary-history-{i}-{os.urandom(4).hex()}".encode() for i in range(6)}
VALUES |= {SecretId(Kind.FILE, f"f{i:02}"): b"\x00\xffcanary-hfile-" + os.urandom(6) for i in range(4)}
TOKEN_ENV = "HISTORY_TEST_TOKEN"


class Silent:
    """A Console that keeps what was printed and approves nothing by itself."""

    color = False

    def __init__(self):
        self.lines, self.errors = [], []

    def out(self, text):
        self.lines.append(text)

    def err(self, text):
        self.errors.append(text)

    def ask(self, prompt):
        return False


class Project:
    """A config moving every secret from a builtin store into a fresh Vault mount."""

    def __init__(self, root: Path, vault):
        self.root, self.vault = root, vault
        self.config = root / "secretshift.yaml"
        self.history_file = root / ".secretshift" / "history" / "secretshift.yaml.jsonl"
        self.journal_dir = root / ".secretshift" / "journal" / "secretshift.yaml"

    def apply(self, console=None) -> int:
        return commands.apply(self.config, None, True, console or Silent())

    def rollback(self) -> int:
        return commands.rollback(self.config, True, Silent())

    def history(self) -> list[dict]:
        return json.loads(commands.history(self.config, "json"))

    def fail_writes_of(self, name: str) -> None:
        self.vault.add_fault(status=500, path_regex=f"SECRET_TEXT/{name}", method="POST", count=None)


@pytest.fixture
def project(tmp_path, vault):
    mount = fresh_mount(vault, 2)
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "secretshift.yaml").write_text(f"""version: 1
managers:
  harness: {{type: builtin, path: harness.db, key: {{file: master.key}}}}
  corp_vault: {{type: vault, address: "{vault.url}", token: {{env: {TOKEN_ENV}}},
               secret_engine: {mount}, base_path: harness, retries: 0}}
migrations:
  - {{from: harness, to: corp_vault, mode: move}}
""")
    os.environ[TOKEN_ENV] = vault.root_token
    with Workspace(tmp_path / "secretshift.yaml") as ws:
        for secret, data in VALUES.items():
            ws.backend("harness").write(secret, SecretValue(data))
    assert hvac.Client(url=vault.url, token=vault.root_token).is_authenticated()
    yield Project(tmp_path, vault)
    vault.clear_faults()


def outcomes(record: dict) -> dict[str, str]:
    return {action["name"]: action["outcome"] for action in record["actions"]}


def test_a_complete_apply_appends_one_record_with_every_action_done(project):
    assert project.apply() == 0
    [record] = project.history()
    journal = latest(project.journal_dir)
    assert record["kind"] == "apply" and record["status"] == "complete"
    assert record["apply_id"] == journal.apply_id
    assert (record["done"], record["total"]) == (10, 10)
    assert outcomes(record) == {s.name: "done" for s in VALUES}
    assert record["plan_digest"] == plan_digest(journal.plan)
    assert record["config_digest"] == journal.plan.config_digest
    assert record["user"] and record["host"] and record["secretshift_version"]
    assert record["started"] <= record["finished"] and record["seconds"] >= 0
    assert "error" not in record
    first = record["actions"][0]
    assert set(first) == {"kind", "name", "from", "to", "action", "outcome", "seconds"}
    assert (first["from"], first["to"], first["action"]) == ("harness", "corp_vault", "move")


def test_a_failed_apply_is_recorded_saying_how_far_it_got_and_which_action_failed(project):
    project.fail_writes_of("t03")
    with pytest.raises(TransientError):
        project.apply()
    [record] = project.history()
    assert record["kind"] == "apply" and record["status"] == "failed"
    found = outcomes(record)
    assert [name for name, outcome in found.items() if outcome == "failed"] == ["t03"]
    assert set(found.values()) <= {"done", "failed", "not started"}
    assert record["done"] == list(found.values()).count("done") < record["total"] == 10
    assert "t03" in record["error"]
    assert record["done"] == json.loads(latest(project.journal_dir).path.read_text().splitlines()[-1])["done"]


def test_a_resume_appends_a_second_record_of_the_same_apply(project):
    project.fail_writes_of("t03")
    with pytest.raises(TransientError):
        project.apply()
    project.vault.clear_faults()
    assert project.apply() == 0
    failed, resumed = project.history()
    assert resumed["kind"] == "resume" and resumed["status"] == "complete"
    assert resumed["apply_id"] == failed["apply_id"]
    assert resumed["plan_digest"] == failed["plan_digest"]
    assert (resumed["done"], resumed["total"]) == (10, 10)
    for name, outcome in outcomes(failed).items():  # this run did what the first left undone
        assert outcomes(resumed)[name] == ("already" if outcome == "done" else "done")


def test_a_rollback_appends_a_record_of_what_it_undid(project):
    assert project.apply() == 0
    assert project.rollback() == 0
    applied, rolled_back = project.history()
    assert rolled_back["kind"] == "rollback" and rolled_back["status"] == "rolled_back"
    assert rolled_back["apply_id"] == applied["apply_id"]
    assert (rolled_back["done"], rolled_back["total"]) == (10, 10)
    assert set(outcomes(rolled_back).values()) == {"undone"}


def test_a_run_that_writes_nothing_is_not_recorded(project):
    assert project.apply() == 0
    assert project.apply() == 0  # nothing left to do: no journal, no record
    assert [r["kind"] for r in project.history()] == ["apply"]


def test_an_unwritable_history_is_a_warning_and_the_apply_still_succeeds(project):
    project.history_file.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    project.history_file.parent.write_text("not a folder")
    console = Silent()
    assert project.apply(console) == 0
    assert any("history record of this apply could not be written" in e for e in console.errors)
    assert latest(project.journal_dir).status == "complete"


def test_the_history_file_is_private_and_holds_no_value_and_no_fingerprint(project):
    project.fail_writes_of("t03")
    with pytest.raises(TransientError):
        project.apply()
    project.vault.clear_faults()
    assert project.apply() == 0
    assert project.rollback() == 0
    raw = project.history_file.read_bytes()
    assert len(raw.splitlines()) == 3
    for data in VALUES.values():
        assert data not in raw and base64.b64encode(data) not in raw
    for action in latest(project.journal_dir).plan.changes:
        assert action.source_fingerprint.encode() not in raw
    assert oct(project.history_file.stat().st_mode & 0o777) == "0o600"
    assert oct(project.history_file.parent.stat().st_mode & 0o777) == "0o700"


def test_cli_history_lists_one_line_per_run_without_credentials(project):
    project.fail_writes_of("t03")
    with pytest.raises(TransientError):
        project.apply()
    project.vault.clear_faults()
    assert project.apply() == 0
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # no manager is reached
    text = subprocess.run([SECRETSHIFT, "history"], cwd=project.root, env=env, capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    failed, resumed = text.stdout.splitlines()
    apply_id = project.history()[0]["apply_id"]
    assert failed.split()[1:4] == ["apply", apply_id, "failed"]
    assert "failed at: text t03" in failed and "@" in failed
    assert resumed.split()[1:5] == ["resume", apply_id, "complete", "10/10"]
    as_json = subprocess.run([SECRETSHIFT, "history", "--format", "json", "-c", str(project.config)],
                             env=env, capture_output=True, text=True)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == project.history()


def test_cli_history_with_no_runs_says_so_and_a_missing_config_is_an_error(tmp_path):
    (tmp_path / "secretshift.yaml").write_text("version: 1\n")
    empty = subprocess.run([SECRETSHIFT, "history"], cwd=tmp_path, capture_output=True, text=True)
    assert (empty.returncode, empty.stdout) == (0, "No apply recorded for secretshift.yaml yet.\n")
    missing = subprocess.run([SECRETSHIFT, "history", "-c", "nope.yaml"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr == "error: nope.yaml: no such config file (use -c/--config to name another)\n"
