"""Apply split over forked worker processes (engine/workers.py), run as users run it: the
secretshift command in a process of its own (workers are only forked by a process with no
other thread), SECRETSHIFT_PROCESSES=2 forcing the split on a small plan."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import workers
from engine.errors import SecretShiftError, StalePlan
from engine.journal import journals, latest
from engine.model import Kind, SecretId, SecretValue
from engine.plan import Action, Plan
from engine.planfile import load_plan
from engine.workspace import Workspace

from vaultsim import VaultServer

SECRETSHIFT = Path(sys.executable).parent / "secretshift"
COUNT = 40


@pytest.fixture(autouse=True)
def vault_token(monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "root")


@pytest.fixture(scope="module")
def server():
    server = VaultServer(root_token="root").start()
    server.enable_kv("secret", version=2)
    yield server
    server.stop()


def expected_values() -> dict[SecretId, bytes]:
    made = {SecretId(Kind.TEXT, f"text_{i:03}"): f"value-{i}-".encode() + os.urandom(6).hex().encode()
            for i in range(COUNT // 2)}
    return made | {SecretId(Kind.FILE, f"file_{i:03}"): b"\x00\xff" + os.urandom(48) for i in range(COUNT // 2)}


def project(tmp_path: Path, server: VaultServer, base_path: str, mode: str = "move") -> tuple[Path, dict]:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  harness: {{type: builtin, path: harness.db, key: {{file: master.key}}}}
  corp_vault: {{type: vault, address: "{server.url}", token: {{env: VAULT_TOKEN}}, base_path: {base_path},
               parallelism: 4}}
migrations:
  - {{from: harness, to: corp_vault, mode: {mode}}}
""")
    expected = expected_values()
    with Workspace(config) as ws:
        for secret, data in expected.items():
            ws.backend("harness").write(secret, SecretValue(data))
    return config, expected


def secretshift(config: Path, *args: str, processes: str = "2") -> subprocess.CompletedProcess:
    env = {**os.environ, "VAULT_TOKEN": "root", workers.PROCESSES_ENV: processes}
    return subprocess.run([str(SECRETSHIFT), "-c", str(config), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def holdings(config: Path, manager: str) -> dict[SecretId, bytes]:
    with Workspace(config) as ws:
        backend = ws.backend(manager)
        found = {s: backend.read(s) for s in backend.list_ids()}
    return {s: v.data for s, v in found.items() if v is not None}


def last_journal(config: Path):
    return latest(config.parent / ".secretshift" / "journal" / config.name)


def test_two_workers_move_every_secret_with_each_action_journaled_once_and_progress_in_plan_order(
        tmp_path, server):
    config, expected = project(tmp_path, server, "split")
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    run = secretshift(config, "apply", str(tmp_path / "plan.json"))
    assert run.returncode == 0, run.stderr
    assert holdings(config, "corp_vault") == expected
    assert holdings(config, "harness") == {}
    journal = last_journal(config)
    assert journal.begin["processes"] == 2
    assert journal.status == "complete"
    assert sorted(journal.actions) == list(range(COUNT))
    for record in journal.actions.values():
        assert record.steps == ["started", "written", "verified", "source_value", "source_deleted", "done"]
    lines = [line for line in run.stdout.splitlines() if "done, verified" in line]
    planned = [action.id.name for action in load_plan(tmp_path / "plan.json").changes]
    assert [next(name for name in planned if f" {name} " in f" {line} ") for line in lines] == planned
    again = secretshift(config, "plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_write_refused_in_one_worker_stops_all_loses_nothing_and_a_rerun_finishes(tmp_path, server):
    config, expected = project(tmp_path, server, "refused")
    fault = server.add_fault(403, path_regex=r"secret/data/refused/", method="POST", after=6, count=None)
    try:
        run = secretshift(config, "apply", "--auto-approve")
    finally:
        fault.remove()
    assert run.returncode == 1
    assert "permission denied" in run.stderr.lower(), run.stderr
    assert "Traceback" not in run.stderr
    assert last_journal(config).status == "failed"
    source, target = holdings(config, "harness"), holdings(config, "corp_vault")
    assert 0 < len(target) < COUNT
    assert {**source, **target} == expected, "a secret was lost or altered"
    rerun = secretshift(config, "apply", "--auto-approve")
    assert rerun.returncode == 0, rerun.stderr
    assert holdings(config, "corp_vault") == expected and holdings(config, "harness") == {}


def test_a_stale_plan_is_refused_before_any_write_or_journal(tmp_path, server):
    config, expected = project(tmp_path, server, "stale", mode="copy")
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    changed = SecretId(Kind.TEXT, "text_007")
    with Workspace(config) as ws:
        ws.backend("harness").write(changed, SecretValue(b"changed behind the plan's back"))
    run = secretshift(config, "apply", str(tmp_path / "plan.json"))
    assert run.returncode == 1
    assert "text_007" in run.stderr and "changed in manager 'harness'" in run.stderr, run.stderr
    assert holdings(config, "corp_vault") == {}
    assert not list(journals(config.parent / ".secretshift" / "journal" / config.name))


def test_a_plan_found_all_done_writes_nothing_and_starts_no_journal(tmp_path, server):
    config, expected = project(tmp_path, server, "done", mode="copy")
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    assert secretshift(config, "apply", str(tmp_path / "plan.json")).returncode == 0
    folder = config.parent / ".secretshift" / "journal" / config.name
    before = sorted(journals(folder))
    again = secretshift(config, "apply", str(tmp_path / "plan.json"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("  already done\n") == COUNT
    assert sorted(journals(folder)) == before


def test_processes_setting_must_be_a_whole_number(monkeypatch):
    plan = Plan(actions=())
    for bad in ("0", "two", "-1", "1.5", "\u00b2"):  # a superscript two is a digit to str.isdigit
        monkeypatch.setenv(workers.PROCESSES_ENV, bad)
        with pytest.raises(SecretShiftError, match=workers.PROCESSES_ENV):
            workers.processes_for(plan)


PROCESSES_FOR = """
import sys, threading
from engine import workers
from engine.model import Kind, SecretId
from engine.plan import Action, Plan
plan = Plan(actions=tuple(Action(action="copy", id=SecretId(Kind.TEXT, f"s{i}"), source="a", target="b",
                                 target_location=f"b/{i}", source_fingerprint="f") for i in range(int(sys.argv[1]))))
if sys.argv[2] == "thread":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
print(workers.processes_for(plan))
"""


@pytest.mark.parametrize("secrets, setting, thread, expected", [
    (10, "3", "", 3),  # as asked
    (2, "3", "", 2),  # never more workers than secrets
    (10, "3", "thread", 1),  # forking beside a running thread is not safe
    (10, "", "", 1),  # too small to be worth a worker
    (5000, "", "", min(workers.MAX_PROCESSES, len(os.sched_getaffinity(0)))),  # one per CPU
])
def test_how_many_worker_processes(secrets, setting, thread, expected):
    env = {**os.environ, workers.PROCESSES_ENV: setting}
    run = subprocess.run([sys.executable, "-c", PROCESSES_FOR, str(secrets), thread], env=env,
                         capture_output=True, text=True, check=True)
    assert int(run.stdout) == expected


def test_an_error_crosses_from_a_worker_with_its_class_message_and_attributes():
    original = StalePlan("text_007 changed in manager 'harness'")
    original.secrets = ["text_007"]
    rebuilt = workers._rebuilt(workers._portable(original))
    assert type(rebuilt) is StalePlan
    assert str(rebuilt) == str(original)
    assert rebuilt.secrets == ["text_007"]

    class Local(Exception):  # a class the parent could not import
        pass

    fallback = workers._rebuilt(workers._portable(Local("no such thing")))
    assert type(fallback) is SecretShiftError and str(fallback) == "Local: no such thing"


def test_ctrl_c_during_the_staleness_check_takes_no_action(tmp_path, server):
    """The workers read the current state before any journal exists; Ctrl-C then must
    stop the apply before its first write, as it does in one process."""
    config, expected = project(tmp_path, server, "early_stop")
    journal_folder = config.parent / ".secretshift" / "journal" / config.name
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    server.latency = 0.05
    try:
        start = server.request_count
        process = subprocess.Popen([str(SECRETSHIFT), "-c", str(config), "apply", str(tmp_path / "plan.json")],
                                   env={**os.environ, workers.PROCESSES_ENV: "2"}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while server.request_count < start + 8:  # the checks are under way: 2 x 40 reads
            assert time.monotonic() < deadline and process.poll() is None, "apply made no progress"
            time.sleep(0.002)
        assert not journals(journal_folder), "the checks were over before the test could interrupt them"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        server.latency = 0.0
    assert process.returncode == 1, err
    assert "interrupted after 0 of 40 actions" in err
    assert holdings(config, "corp_vault") == {}
    assert holdings(config, "harness") == expected


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def start_slow_apply(config: Path, server: VaultServer, plan: Path, after_requests: int) -> subprocess.Popen:
    """Start `apply PLAN` in two workers and return once the server has answered that
    many more requests (the workers are reading)."""
    start = server.request_count
    process = subprocess.Popen([str(SECRETSHIFT), "-c", str(config), "apply", str(plan)],
                               env={**os.environ, workers.PROCESSES_ENV: "2"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while server.request_count < start + after_requests:
        assert time.monotonic() < deadline and process.poll() is None, "apply made no progress"
        time.sleep(0.002)
    return process


def test_a_worker_killed_while_reading_says_nothing_was_written_and_suggests_no_rollback(tmp_path, server):
    config, expected = project(tmp_path, server, "killed_reading")
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    server.latency = 0.05
    try:
        process = start_slow_apply(config, server, tmp_path / "plan.json", 8)
        workers_running = children(process.pid)
        assert len(workers_running) == 2
        os.kill(workers_running[0], signal.SIGKILL)
        out, err = process.communicate(timeout=60)
    finally:
        server.latency = 0.0
    assert process.returncode == 1
    assert "nothing was written and no journal was started" in err and "rollback" not in err, err
    assert not journals(config.parent / ".secretshift" / "journal" / config.name)
    assert holdings(config, "corp_vault") == {} and holdings(config, "harness") == expected
    assert children(process.pid) == []


def test_ctrl_c_twice_lets_the_running_steps_finish_so_that_rollback_undoes_every_one(tmp_path, server):
    """As in one process, a second Ctrl-C takes no new step but lets the steps running end
    and be journaled: killing the workers there left copies that rollback did not know of."""
    config, expected = project(tmp_path, server, "twice")
    journal_folder = config.parent / ".secretshift" / "journal" / config.name
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    server.latency = 0.02
    try:
        process = start_slow_apply(config, server, tmp_path / "plan.json", 2 * COUNT + 10)  # writing now
        server.latency = 0.5
        process.send_signal(signal.SIGINT)
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        server.latency = 0.0
    assert process.returncode == 130, err
    journal = latest(journal_folder)
    assert journal.status == "interrupted"
    unfinished = [i for i, record in journal.actions.items() if record.steps[-1] != "done"]
    assert unfinished == [], "a step was cut off"
    assert 0 < len(journal.actions) < COUNT
    rolled = secretshift(config, "rollback", "--auto-approve")
    assert rolled.returncode == 0, rolled.stderr
    assert holdings(config, "corp_vault") == {} and holdings(config, "harness") == expected


def test_ctrl_c_three_times_stops_at_once_even_while_a_request_hangs_and_a_rerun_finishes(tmp_path, server):
    config, expected = project(tmp_path, server, "thrice")
    journal_folder = config.parent / ".secretshift" / "journal" / config.name
    assert secretshift(config, "plan", "--out", str(tmp_path / "plan.json")).returncode == 0
    server.latency = 0.02
    try:
        process = start_slow_apply(config, server, tmp_path / "plan.json", 2 * COUNT + 10)  # writing now
        server.latency = 30  # every request from now on hangs
        workers_running = children(process.pid)
        for _ in range(3):
            process.send_signal(signal.SIGINT)
            time.sleep(0.3)
        out, err = process.communicate(timeout=20)
    finally:
        server.latency = 0.0
    assert process.returncode == 130, err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers_running), "a worker outlived the apply"
    assert latest(journal_folder).status == "interrupted"
    rerun = secretshift(config, "apply", "--auto-approve")
    assert rerun.returncode == 0, rerun.stderr
    assert holdings(config, "corp_vault") == expected and holdings(config, "harness") == {}


def test_a_second_ctrl_c_while_a_progress_line_prints_still_lets_the_running_steps_finish(tmp_path, server):
    """The parent spends much of an apply printing progress: a second Ctrl-C landing
    there must not kill the workers mid-step. Driven in this process (workers.apply_plan
    itself), the Ctrl-Cs coming from the progress callback."""
    from engine import execution
    from engine.planning import compute_plan

    config, expected = project(tmp_path, server, "second_in_print")
    server.latency = 0.2  # steps long enough that a few are running at the first line
    printed, stop = [], []

    def progress(outcome) -> None:
        printed.append(outcome)
        if len(printed) == 1:
            stop.append(True)  # Ctrl-C once
        if len(printed) == 2:
            raise KeyboardInterrupt  # and again, while this line prints

    try:
        with Workspace(config) as ws:
            plan = compute_plan(ws)
            with pytest.raises(KeyboardInterrupt):
                workers.apply_plan(plan, ws.backends(), ws.fingerprint,
                                   lambda: execution._new_journal(ws, plan, 2), processes=2,
                                   progress=progress, stop_requested=lambda: bool(stop))
    finally:
        server.latency = 0.0
    journal = latest(config.parent / ".secretshift" / "journal" / config.name)
    assert journal.status == "interrupted"
    assert [i for i, record in journal.actions.items() if record.steps[-1] != "done"] == [], "a step was cut off"
