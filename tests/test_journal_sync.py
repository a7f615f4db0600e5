"""Which journal records are fsynced before `step` returns: those announcing a change to
a manager. Every record is in the file at once (so a killed process loses nothing)."""

import os

import pytest

from engine import journal as journal_module
from engine.journal import Journal, read_journal
from engine.model import Kind, SecretId, SecretValue
from engine.plan import Action, Plan

FP = "hmac-sha256:" + "0" * 64


@pytest.fixture
def fsyncs(monkeypatch):
    """The real os.fsync, counted."""
    calls = []
    real = os.fsync

    def counted(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(journal_module.os, "fsync", counted)
    return calls


def test_records_before_a_change_are_fsynced_the_others_are_written_at_once(tmp_path, fsyncs):
    plan = Plan((Action("move", SecretId(Kind.TEXT, "db"), "a", "b", "b/db", FP, None, "a/db", True),))
    journal = Journal.create(tmp_path, "apply-1", b"k" * 32, plan, {})
    assert len(fsyncs) == 2  # begin and the plan, then the folder the journal's name is in

    def steps():
        return read_journal(journal.path).actions[0].steps if read_journal(journal.path).actions else []

    journal.step(0, "started")
    assert (steps(), len(fsyncs)) == (["started"], 3)
    journal.step(0, "written")
    journal.step(0, "verified")
    assert (steps(), len(fsyncs)) == (["started", "written", "verified"], 3)  # in the file, not yet synced
    journal.step(0, "source_value", keep=SecretValue(b"old-value"))
    assert len(fsyncs) == 4  # before the delete: covers written and verified too
    journal.step(0, "source_deleted")
    journal.step(0, "done")
    assert len(fsyncs) == 4
    journal.end("complete", done=1, total=1)
    assert len(fsyncs) == 5
    assert steps() == ["started", "written", "verified", "source_value", "source_deleted", "done"]
    assert read_journal(journal.path).status == "complete"
    assert b"old-value" not in journal.path.read_bytes()
