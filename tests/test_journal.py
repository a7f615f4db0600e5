"""Journaled apply: resume after a failure or an interruption, rollback, locking.

These run the apply use case in-process (commands.apply / commands.rollback) on a
builtin source store and a Vault KV v2 target served by the Vault-API simulator.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path

import hvac
import pytest

from engine import commands, execution
from engine.errors import SecretShiftError, TransientError
from engine.journal import latest, read_journal
from engine.lock import LOCK_FILE, LockHeld
from engine.model import Kind, SecretId, SecretValue
from engine.rollback import RollbackRefused
from engine.workspace import Workspace

from conftest import fresh_mount

VALUES = {SecretId(Kind.TEXT, f"t{i:02}"): f"canary-text-{i}-{os.urandom(4).hex()}".encode() for i in range(6)}
VALUES |= {SecretId(Kind.FILE, f"f{i:02}"): b"\x00\xffcanary-file-" + os.urandom(6) for i in range(4)}


class Recorder:
    """A Console that keeps what was printed and answers prompts from a list."""

    def __init__(self, answers=()):
        self.lines, self.errors, self.answers = [], [], list(answers)
        self.color = False

    def out(self, text):
        self.lines.append(text)

    def err(self, text):
        self.errors.append(text)

    def ask(self, prompt):
        return bool(self.answers) and self.answers.pop(0) == "yes"


@pytest.fixture
def project(tmp_path, vault):
    mount = fresh_mount(vault, 2)
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "secretshift.yaml").write_text(f"""version: 1
managers:
  harness: {{type: builtin, path: harness.db, key: {{file: master.key}}}}
  corp_vault: {{type: vault, address: "{vault.url}", token: {{env: JOURNAL_TEST_TOKEN}},
               secret_engine: {mount}, base_path: harness, retries: 0}}
migrations:
  - {{from: harness, to: corp_vault, mode: move}}
""")
    os.environ["JOURNAL_TEST_TOKEN"] = vault.root_token
    with Workspace(tmp_path / "secretshift.yaml") as ws:
        for secret, data in VALUES.items():
            ws.backend("harness").write(secret, SecretValue(data))
    client = hvac.Client(url=vault.url, token=vault.root_token)
    yield Project(tmp_path, mount, client, vault)
    vault.clear_faults()


class Project:
    def __init__(self, root: Path, mount: str, client: hvac.Client, vault):
        self.root, self.mount, self.client, self.vault = root, mount, client, vault
        self.config = root / "secretshift.yaml"

    def holdings(self, manager: str) -> dict[SecretId, bytes]:
        with Workspace(self.config) as ws:
            backend = ws.backend(manager)
            return {s: backend.read(s).data for s in backend.list_ids() if backend.read(s) is not None}

    def apply(self, **kw) -> int:
        return commands.apply(self.config, None, True, Recorder(), **kw)

    def rollback(self) -> int:
        return commands.rollback(self.config, True, Recorder())


def test_a_complete_apply_leaves_a_journal_of_every_step_with_no_value_in_clear(project):
    assert project.apply() == 0
    state = latest(project.root / ".secretshift" / "journal" / "secretshift.yaml")
    assert state.status == "complete"
    assert len(state.actions) == len(VALUES)
    assert all(r.steps == ["started", "written", "verified", "source_value", "source_deleted", "done"]
               for r in state.actions.values())
    raw = state.path.read_bytes()
    for data in VALUES.values():
        assert data not in raw and base64.b64encode(data) not in raw
    assert oct(state.path.stat().st_mode & 0o777) == "0o600"


def test_failure_after_some_writes_is_resumed_by_the_next_apply(project):
    project.vault.add_fault(status=500, path_regex=r"SECRET_TEXT/t03", method="POST", count=None)
    with pytest.raises(TransientError):
        project.apply()
    state = latest(project.root / ".secretshift" / "journal" / "secretshift.yaml")
    assert state.status == "failed"
    assert project.holdings("harness")  # nothing lost: the failed secret still has its source
    project.vault.clear_faults()
    console = Recorder()
    assert commands.apply(project.config, None, True, console) == 0
    assert any("Resuming apply" in line for line in console.lines)
    assert project.holdings("corp_vault") == VALUES
    assert project.holdings("harness") == {}
    assert latest(project.root / ".secretshift" / "journal" / "secretshift.yaml").status == "complete"


def test_an_interrupted_apply_stops_between_actions_and_resumes(project, monkeypatch):
    calls = iter(range(100))
    monkeypatch.setattr(execution, "_stop_on_interrupt", _stop_after(lambda: next(calls) >= 3))
    with pytest.raises(SecretShiftError, match="interrupted after 3 of 10 actions"):
        project.apply()
    assert latest(project.root / ".secretshift" / "journal" / "secretshift.yaml").status == "interrupted"
    assert len(project.holdings("corp_vault")) == 3
    monkeypatch.undo()
    assert project.apply() == 0
    assert project.holdings("corp_vault") == VALUES


def _stop_after(predicate):
    from contextlib import contextmanager

    @contextmanager
    def fake(console):
        yield predicate

    return fake


def test_rollback_after_a_complete_apply_restores_the_original_layout(project):
    before = project.holdings("harness")
    assert project.apply() == 0
    assert project.rollback() == 0
    assert project.holdings("harness") == before
    assert project.holdings("corp_vault") == {}
    assert latest(project.root / ".secretshift" / "journal" / "secretshift.yaml").status == "rolled_back"
    assert project.apply() == 0  # and the migration can be done again
    assert project.holdings("corp_vault") == VALUES


def test_rollback_is_refused_when_a_value_changed_since_and_changes_nothing(project):
    assert project.apply() == 0
    changed = SecretId(Kind.TEXT, "t01")
    with Workspace(project.config) as ws:
        ws.backend("corp_vault").write(changed, SecretValue(b"someone else's value"))
    with pytest.raises(RollbackRefused, match="text secret 't01' changed in manager 'corp_vault'"):
        project.rollback()
    assert project.holdings("harness") == {}
    assert project.holdings("corp_vault")[changed] == b"someone else's value"


def test_rollback_of_an_overwrite_puts_the_old_target_value_back(project):
    secret = SecretId(Kind.TEXT, "t00")
    with Workspace(project.config) as ws:
        ws.backend("corp_vault").write(secret, SecretValue(b"old target value"))
    project.config.write_text(project.config.read_text() + "on_conflict: overwrite\n")
    assert project.apply() == 0
    assert project.holdings("corp_vault")[secret] == VALUES[secret]
    assert project.rollback() == 0
    assert project.holdings("corp_vault") == {secret: b"old target value"}
    assert project.holdings("harness") == VALUES


def test_a_second_apply_while_one_runs_fails_clearly(project):
    import fcntl

    lock = project.root / ".secretshift" / LOCK_FILE
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "w") as held:  # another apply, running: it holds the kernel lock
        held.write(json.dumps({"id": "abc123", "owner": "ci", "host": socket.gethostname(),
                               "pid": os.getppid(), "since": "2026-12-03T10:00:00Z"}))
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LockHeld, match=r"another apply is running on this config \(lock abc123 held by ci@"):
            project.apply()
        with pytest.raises(LockHeld):
            project.apply(force_unlock="abc123")  # a live holder cannot be broken
    assert project.holdings("corp_vault") == {}
    assert project.apply() == 0
    assert lock.read_text() == ""


def test_a_lock_left_by_a_dead_process_is_taken_over(project):
    lock = project.root / ".secretshift" / LOCK_FILE
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps({"id": "dead01", "owner": "ci", "host": socket.gethostname(),
                                "pid": 2 ** 22 + 17, "since": "2026-12-03T10:00:00Z"}))
    console = Recorder()
    assert commands.apply(project.config, None, True, console) == 0
    assert any("Taking over the stale lock dead01" in line for line in console.errors)
    assert project.holdings("corp_vault") == VALUES


def test_a_lock_naming_another_host_needs_force_unlock(project):
    lock = project.root / ".secretshift" / LOCK_FILE
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps({"id": "far001", "owner": "ci", "host": "build-agent-7",
                                "pid": 4242, "since": "2026-12-03T10:00:00Z"}))
    with pytest.raises(LockHeld, match="names another host.*--force-unlock far001"):
        project.apply()
    assert project.holdings("corp_vault") == {}
    assert project.apply(force_unlock="far001") == 0
    assert project.holdings("corp_vault") == VALUES


def test_two_applies_racing_for_a_stale_lock_never_both_hold_it(project):
    from engine.lock import ApplyLock

    state = project.root / ".secretshift"
    state.mkdir(exist_ok=True)
    (state / LOCK_FILE).write_text(json.dumps({"id": "dead02", "owner": "ci", "host": socket.gethostname(),
                                               "pid": 2 ** 22 + 19, "since": "2026-12-03T10:00:00Z"}))
    with ApplyLock(state):
        with pytest.raises(LockHeld):
            with ApplyLock(state):
                pass


def test_resume_is_refused_when_the_config_changed(project):
    project.vault.add_fault(status=500, path_regex=r"SECRET_TEXT/t03", method="POST", count=None)
    with pytest.raises(TransientError):
        project.apply()
    project.vault.clear_faults()
    project.config.write_text(project.config.read_text() + "on_conflict: skip\n")
    with pytest.raises(SecretShiftError, match="changed since it started"):
        project.apply()
    assert project.rollback() == 0  # undo is always possible
    assert project.holdings("harness") == VALUES
    assert project.holdings("corp_vault") == {}


def test_a_torn_last_journal_line_is_ignored(project):
    project.vault.add_fault(status=500, path_regex=r"SECRET_TEXT/t03", method="POST", count=None)
    with pytest.raises(TransientError):
        project.apply()
    project.vault.clear_faults()
    path = latest(project.root / ".secretshift" / "journal" / "secretshift.yaml").path
    path.write_bytes(path.read_bytes()[:-5])  # a crash in the middle of the last record
    assert read_journal(path).status == "running"
    assert project.apply() == 0
    assert project.holdings("corp_vault") == VALUES


def test_a_record_torn_by_a_killed_worker_in_the_middle_of_the_journal_is_skipped(tmp_path):
    """Worker processes (workers.py) append to one journal: one killed in the middle of a
    large record leaves it torn, and its siblings' records follow on the same line. The
    torn step never happened; every record around it counts."""
    from engine.journal import Journal, JournalError
    from engine.plan import Action, Plan

    actions = tuple(Action("copy", SecretId(Kind.TEXT, f"s{i}"), "a", "b", f"b/s{i}", "hmac-sha256:" + "0" * 64)
                    for i in range(2))
    journal = Journal.create(tmp_path, "torn", os.urandom(32), Plan(actions=actions), {})
    journal.step(0, "started")
    journal.step(0, "target_previous", keep=SecretValue(os.urandom(3000)))
    killed = Journal(journal.path, "torn", journal.key)
    killed.step(1, "started")
    killed.step(1, "target_previous", keep=SecretValue(os.urandom(3000)))
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole[:-2000])  # the worker dies in the middle of its last record
    journal.step(0, "written")
    journal.end("failed")
    state = read_journal(journal.path)
    assert state.actions[0].steps == ["started", "target_previous", "written"]
    assert state.actions[1].steps == ["started"]
    assert state.status == "failed"
    assert journal.unseal(0, "target_previous", state.actions[0].sealed["target_previous"])

    lines = journal.path.read_bytes().split(b"\n")
    lines[3] = b'{"event":"step","index":0,"step":"wri'  # damage that is no torn append
    journal.path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match=":4: the journal is damaged"):
        read_journal(journal.path)


def test_applying_a_saved_plan_twice_reports_the_second_run_as_already_done(project):
    plan_file = project.root / "plan.json"
    commands.plan(project.config, "json", str(plan_file))
    assert commands.apply(project.config, str(plan_file), False, Recorder()) == 0
    again = Recorder()
    assert commands.apply(project.config, str(plan_file), False, again) == 0
    assert again.lines[-1].startswith("Apply complete! 0 moved, 0 copied, 0 updated, 0 deleted")
    assert again.lines[-1].endswith("10 found already done.")
    assert project.holdings("corp_vault") == VALUES


def test_concurrent_apply_reports_progress_in_plan_order_and_journals_every_step(project):
    console = Recorder()
    assert commands.apply(project.config, None, True, console) == 0
    progress = [line for line in console.lines if line.endswith("done, verified")]
    names = [line.split()[3] for line in progress]
    assert names == sorted(names, key=lambda n: (n[0] != "f", n))  # plan order: files, then texts
    state = latest(project.root / ".secretshift" / "journal" / "secretshift.yaml")
    assert {i for i, r in state.actions.items() if r.steps[-1] == "done"} == set(range(len(VALUES)))


def test_journal_group_commit_keeps_every_record_from_many_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from engine.journal import Journal, read_journal
    from engine.plan import Plan

    from engine.plan import Action

    actions = tuple(Action("copy", SecretId(Kind.TEXT, f"s{i}"), "a", "b", f"b/s{i}", "hmac-sha256:" + "0" * 64)
                    for i in range(50))
    journal = Journal.create(tmp_path, "test-apply", os.urandom(32), Plan(actions=actions), {})
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: journal.step(i % 50, f"step{i // 50}"), range(400)))
    journal.end("complete")
    state = read_journal(journal.path)
    assert state.status == "complete"
    assert sorted(len(r.steps) for r in state.actions.values()) == [8] * 50
    assert all(sorted(r.steps) == [f"step{n}" for n in range(8)] for r in state.actions.values())


def two_stores(tmp_path, extra: str = "") -> Path:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  a: {{type: builtin, path: a.db, key: {{file: master.key}}}}
  b: {{type: builtin, path: b.db, key: {{file: master.key}}}}
migrations:
  - {{from: a, to: b, mode: copy}}
{extra}""")
    return config


def test_rollback_after_a_resume_undoes_a_write_whose_journal_record_was_lost(tmp_path):
    """Killed between the target write and its 'written' record, then resumed: the resume
    finds the write done, and rollback must still put the old target value back."""
    config = two_stores(tmp_path, "on_conflict: overwrite\n")
    secret = SecretId(Kind.TEXT, "x")
    with Workspace(config) as ws:
        ws.backend("a").write(secret, SecretValue(b"NEW"))
        ws.backend("b").write(secret, SecretValue(b"OLD"))
    assert commands.apply(config, None, True, Recorder()) == 0
    path = latest(tmp_path / ".secretshift" / "journal" / "secretshift.yaml").path
    lines = path.read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if b'"target_previous"' in line)
    path.write_bytes(b"".join(lines[:cut + 1]))  # as if killed right after the write
    assert commands.apply(config, None, True, Recorder()) == 0  # resumes: found already done
    assert commands.rollback(config, True, Recorder()) == 0
    with Workspace(config) as ws:
        assert ws.backend("b").read(secret) == SecretValue(b"OLD")
        assert ws.backend("a").read(secret) == SecretValue(b"NEW")


def test_two_managers_naming_one_store_are_refused_before_anything_is_read(tmp_path):
    config = two_stores(tmp_path)
    config.write_text(config.read_text().replace("path: b.db", "path: ./sub/../a.db"))
    with pytest.raises(SecretShiftError, match="'a' and 'b' .* are the same store under two names"):
        commands.plan(config)


def test_a_saved_plan_edited_to_move_a_secret_onto_its_own_manager_is_refused(tmp_path):
    config = two_stores(tmp_path)
    secret = SecretId(Kind.TEXT, "x")
    with Workspace(config) as ws:
        ws.backend("a").write(secret, SecretValue(b"only copy"))
    plan_file = tmp_path / "plan.json"
    commands.plan(config, "json", str(plan_file))
    document = json.loads(plan_file.read_text())
    document["actions"][0].update({"to": "a", "target_location": "a.db:text/x"})
    plan_file.write_text(json.dumps(document))
    with pytest.raises(SecretShiftError, match="does not match secretshift.yaml, nothing was written: "
                                               "text secret 'x' moves from manager 'a' onto itself"):
        commands.apply(config, str(plan_file), False, Recorder())
    with Workspace(config) as ws:
        assert ws.backend("a").read(secret) == SecretValue(b"only copy")


def test_reapplying_a_saved_plan_journals_nothing_and_rollback_still_reaches_the_real_apply(project):
    plan_file = project.root / "plan.json"
    commands.plan(project.config, "json", str(plan_file))
    assert commands.apply(project.config, str(plan_file), False, Recorder()) == 0
    journal_dir = project.root / ".secretshift" / "journal" / "secretshift.yaml"
    assert len(list(journal_dir.glob("*.jsonl"))) == 1
    assert commands.apply(project.config, str(plan_file), False, Recorder()) == 0
    assert len(list(journal_dir.glob("*.jsonl"))) == 1
    assert project.rollback() == 0
    assert project.holdings("harness") == VALUES


def test_two_configs_in_one_folder_keep_their_own_journals(project):
    other = project.root / "other.yaml"
    other.write_text(project.config.read_text().replace("mode: move", "mode: copy"))
    assert commands.apply(other, None, True, Recorder()) == 0
    with pytest.raises(SecretShiftError, match="nothing to roll back: no apply beside secretshift.yaml"):
        project.rollback()
    assert commands.rollback(other, True, Recorder()) == 0
    assert project.holdings("corp_vault") == {}


def test_plan_warns_about_an_unfinished_apply_and_resume_asks_first(project):
    project.vault.add_fault(status=500, path_regex=r"SECRET_TEXT/t03", method="POST", count=None)
    with pytest.raises(TransientError):
        project.apply()
    project.vault.clear_faults()
    warnings = []
    commands.plan(project.config, warn=warnings.append)
    assert len(warnings) == 1 and "did not finish (failed)" in warnings[0]
    declined = Recorder(answers=["no"])
    assert commands.apply(project.config, None, False, declined) == 1
    assert any(line.startswith("  >") for line in declined.lines[1:])
    assert commands.apply(project.config, None, False, Recorder(answers=["yes"])) == 0
    assert project.holdings("corp_vault") == VALUES


def test_a_saved_plan_from_an_incompatible_secretshift_version_is_refused(tmp_path):
    config = two_stores(tmp_path)
    with Workspace(config) as ws:
        ws.backend("a").write(SecretId(Kind.TEXT, "x"), SecretValue(b"v"))
    plan_file = tmp_path / "plan.json"
    commands.plan(config, "json", str(plan_file))
    document = json.loads(plan_file.read_text())
    document["secretshift_version"] = "0.9.3"
    plan_file.write_text(json.dumps(document))
    with pytest.raises(SecretShiftError, match="made by secretshift 0.9.3, which this secretshift .* does not apply"):
        commands.apply(config, str(plan_file), False, Recorder())
    with Workspace(config) as ws:
        assert ws.backend("b").list_ids() == []


def _one_move_plan():
    from engine.plan import Action, Plan

    fingerprint = "hmac-sha256:" + "a" * 64
    return Plan((Action("move", SecretId(Kind.TEXT, "db"), "a", "b", "b/db", fingerprint, None, "a/db", True),))


def test_a_journal_is_named_only_once_its_plan_is_on_disk(tmp_path):
    """begin and the plan record go to a file that takes the journal's name when both are
    written: a kill while a large plan is written leaves no journal without its plan."""
    from engine.journal import Journal

    plan = _one_move_plan()
    journal = Journal.create(tmp_path, "apply-1", b"k" * 32, plan, {"user": "u"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apply-1.jsonl"]
    lines = journal.path.read_bytes().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["begin", "plan"]
    state = read_journal(journal.path)
    assert state.plan == plan and "plan" not in state.begin and state.begin["user"] == "u"
    journal.step(0, "started")
    # the run that wrote it passes its plan, which is then not read again
    assert read_journal(journal.path, plan=plan).actions[0].steps == ["started"]


def test_a_journal_of_an_earlier_release_with_the_plan_in_begin_is_still_read(tmp_path):
    plan = _one_move_plan()
    begin = {"event": "begin", "apply_id": "apply-0", "time": "2026-01-01T00:00:00Z", "plan": plan.to_dict()}
    step = {"event": "step", "index": 0, "step": "started", "time": "2026-01-01T00:00:01Z"}
    path = tmp_path / "apply-0.jsonl"
    path.write_text(json.dumps(begin) + "\n" + json.dumps(step) + "\n")
    state = read_journal(path)
    assert (state.apply_id, state.plan, state.actions[0].steps, state.status) == ("apply-0", plan, ["started"],
                                                                                 "running")


SHORT_WRITE = """
import os, resource, sys
from pathlib import Path
from engine.errors import SecretShiftError
from engine.journal import Journal
from engine.model import Kind, SecretId, SecretValue
from engine.plan import Action, Plan

folder = Path(sys.argv[1])
action = Action("copy", SecretId(Kind.TEXT, "s"), "a", "b", "b/s", "hmac-sha256:" + "0" * 64)
journal = Journal.create(folder, "short", os.urandom(32), Plan(actions=(action,)), {})
journal.step(0, "started")
resource.setrlimit(resource.RLIMIT_FSIZE, (journal.path.stat().st_size + 5000,) * 2)
try:
    journal.step(0, "target_previous", keep=SecretValue(os.urandom(100_000)))
except SecretShiftError as error:
    print("refused:", error)
else:
    print("taken")
"""


def test_a_record_the_disk_took_only_part_of_is_a_journal_error_and_no_step_follows(tmp_path):
    """A full disk (here a file size limit) can take part of a record: os.write returns
    less than asked. The record is torn, so the change it announces must not be made."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", SHORT_WRITE, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, check=True)
    assert run.stdout.startswith("refused: cannot write the journal"), run.stdout + run.stderr
    assert "is the disk full?" in run.stdout


def test_rollback_undoes_a_write_that_reached_the_target_but_not_the_journal(project):
    """An apply killed (or failed) between a write and its "written" record leaves the
    action "started" only; the target says whether the write happened, and rollback
    removes the copy rather than reporting nothing to undo."""
    moved = SecretId(Kind.TEXT, "t03")
    project.vault.add_fault(path_regex=r"SECRET_TEXT/t03$", method="POST", drop=True, handled=True, count=None)
    with pytest.raises(SecretShiftError):
        project.apply()
    project.vault.clear_faults()
    journal = latest(project.root / ".secretshift" / "journal" / "secretshift.yaml")
    index = next(i for i, a in enumerate(journal.plan.changes) if a.id == moved)
    assert "written" not in journal.actions[index].steps
    assert project.holdings("corp_vault").get(moved) == VALUES[moved]  # Vault did take the write
    assert project.rollback() == 0
    assert project.holdings("corp_vault") == {}
    assert project.holdings("harness") == VALUES


def test_rollback_undoes_the_last_apply_even_when_its_only_writes_never_reached_the_journal(project):
    """The last apply lost the answer to its only write (Vault carried it out): its
    journal says "started" and no more. Rollback must undo that apply, not take the
    one before it for the last."""
    first = SecretId(Kind.TEXT, "t00")
    with Workspace(project.config) as ws:
        for secret in VALUES:
            if secret != first:
                ws.backend("harness").delete(secret)
    assert project.apply() == 0  # the first apply: t00 alone
    late = SecretId(Kind.TEXT, "zz")
    with Workspace(project.config) as ws:
        ws.backend("harness").write(late, SecretValue(b"moved by the second apply"))
    project.vault.add_fault(path_regex=r"SECRET_TEXT/zz$", method="POST", drop=True, handled=True, count=None)
    with pytest.raises(SecretShiftError):
        project.apply()
    project.vault.clear_faults()
    assert late in project.holdings("corp_vault")
    assert project.rollback() == 0
    assert project.holdings("corp_vault") == {first: VALUES[first]}  # the first apply stands
    assert project.holdings("harness") == {late: b"moved by the second apply"}
    with pytest.raises(SecretShiftError, match="already rolled back"):
        project.rollback()  # the journal now says what rollback found: no reaching back to the first apply
    assert project.holdings("corp_vault") == {first: VALUES[first]}


def test_a_rollback_rerun_after_it_failed_does_not_reach_back_to_the_apply_before(project):
    """Rollback removed an unjournaled copy, but lost Vault's answer: run again, it must
    finish this apply's rollback, not take the apply before it for the last."""
    first = SecretId(Kind.TEXT, "t00")
    with Workspace(project.config) as ws:
        for secret in VALUES:
            if secret != first:
                ws.backend("harness").delete(secret)
    assert project.apply() == 0
    late = SecretId(Kind.TEXT, "zz")
    with Workspace(project.config) as ws:
        ws.backend("harness").write(late, SecretValue(b"moved by the second apply"))
    project.vault.add_fault(path_regex=r"SECRET_TEXT/zz$", method="POST", drop=True, handled=True, count=None)
    with pytest.raises(SecretShiftError):
        project.apply()
    project.vault.clear_faults()
    project.vault.add_fault(path_regex=r"SECRET_TEXT/zz$", method="DELETE", drop=True, handled=True, count=None)
    with pytest.raises(SecretShiftError):
        project.rollback()
    project.vault.clear_faults()
    assert late not in project.holdings("corp_vault")  # Vault did carry the delete out
    assert project.rollback() == 0
    assert project.holdings("corp_vault") == {first: VALUES[first]}
    assert project.holdings("harness") == {late: b"moved by the second apply"}


def _second_apply_loses_its_only_answer(project) -> tuple[SecretId, SecretId]:
    """Apply 1 moves t00 alone and completes; apply 2 moves zz, whose write Vault carries
    out but whose answer is lost: apply 2's journal says "started" and no more."""
    first, late = SecretId(Kind.TEXT, "t00"), SecretId(Kind.TEXT, "zz")
    with Workspace(project.config) as ws:
        for secret in VALUES:
            if secret != first:
                ws.backend("harness").delete(secret)
    assert project.apply() == 0
    with Workspace(project.config) as ws:
        ws.backend("harness").write(late, SecretValue(b"moved by the second apply"))
    project.vault.add_fault(path_regex=r"SECRET_TEXT/zz$", method="POST", drop=True, handled=True, count=None)
    with pytest.raises(SecretShiftError):
        project.apply()
    project.vault.clear_faults()
    return first, late


@pytest.mark.parametrize("wrote", [True, False], ids=["write lost its answer", "write refused"])
def test_a_started_only_target_changed_since_is_left_alone_and_the_apply_before_is_not_undone(project, wrote):
    """Whether or not the last apply's write happened, a target changed since holds
    someone else's value: rollback leaves it, says so, and closes that apply; it does not
    reach back to the apply before, nor refuse forever (apply's resume would refuse too)."""
    if wrote:
        first, late = _second_apply_loses_its_only_answer(project)
    else:
        first, late = _second_apply_fails_before_writing(project)
    with Workspace(project.config) as ws:
        ws.backend("corp_vault").write(late, SecretValue(b"rotated in vault"))
    console = Recorder()
    assert commands.rollback(project.config, True, console) == 0
    assert any("Leaving text secret 'zz' in manager 'corp_vault' as it is" in line for line in console.errors)
    assert project.holdings("corp_vault") == {first: VALUES[first], late: b"rotated in vault"}
    assert project.holdings("harness") == {late: b"moved by the second apply"}
    folder = project.root / ".secretshift" / "journal" / "secretshift.yaml"
    assert latest(folder).status == "rolled_back"  # nothing unfinished blocks the next apply


def _second_apply_fails_before_writing(project) -> tuple[SecretId, SecretId]:
    """As _second_apply_loses_its_only_answer, but Vault refuses the write (nothing written)."""
    first, late = SecretId(Kind.TEXT, "t00"), SecretId(Kind.TEXT, "zz")
    with Workspace(project.config) as ws:
        for secret in VALUES:
            if secret != first:
                ws.backend("harness").delete(secret)
    assert project.apply() == 0
    with Workspace(project.config) as ws:
        ws.backend("harness").write(late, SecretValue(b"moved by the second apply"))
    project.vault.add_fault(status=500, path_regex=r"SECRET_TEXT/zz$", method="POST", count=None)
    with pytest.raises(SecretShiftError):
        project.apply()
    project.vault.clear_faults()
    assert late not in project.holdings("corp_vault")
    return first, late


def test_a_cancelled_rollback_of_an_unrecorded_write_leaves_no_trace_in_journal_or_history(project):
    """A run that wrote nothing is not in the history (README); rollback only journals
    the write it found once it goes ahead."""
    first, late = _second_apply_loses_its_only_answer(project)
    folder = project.root / ".secretshift" / "journal" / "secretshift.yaml"
    before = latest(folder).path.read_bytes()
    history = project.root / ".secretshift" / "history"
    entries = sorted(p.read_bytes() for p in history.rglob("*") if p.is_file())
    assert commands.rollback(project.config, False, Recorder(answers=["no"])) == 1
    assert latest(folder).path.read_bytes() == before
    assert sorted(p.read_bytes() for p in history.rglob("*") if p.is_file()) == entries
    assert project.rollback() == 0  # and going ahead still undoes the second apply alone
    assert project.holdings("corp_vault") == {first: VALUES[first]}
