"""Fault injection during a real apply: a Vault that seals mid-apply, a 429 storm,
dropped connections, a refusal after N writes, and stores changed behind apply's back.

Each scenario runs the apply use case in-process (commands.apply, as the CLI does) from a
builtin store to a KV v2 mount of the Vault-API simulator, injects the fault through the
simulator's hooks, and then checks the exact bytes in BOTH stores: every secret is either
still in the source or verified in the target, never lost, never altered; and the
journal holds no value in clear.

Apply runs several actions at once, so a fault "after the N-th write" is placed by
counting writes (on the server, or by wrapping the backend's write), never by assuming
which secret comes N-th; the assertions hold whatever the interleaving.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from conftest import fresh_mount
from vaultsim import VaultServer

from engine import applier, commands
from engine.backends import retry
from engine.backends.vault import VaultBackend
from engine.errors import PermissionDenied, StalePlan, TransientError
from engine.journal import journals, latest
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

SOURCE, TARGET = "harness", "corp_vault"
FOLDERS = {Kind.TEXT: "SECRET_TEXT", Kind.FILE: "CONFIG_FILE"}


def make_values() -> dict[SecretId, bytes]:
    """Eight text and four file secrets; each value carries a unique printable canary."""
    made = {SecretId(Kind.TEXT, f"t{i:02}"): f"fault-canary-t{i}-{os.urandom(6).hex()}".encode()
            for i in range(8)}
    made |= {SecretId(Kind.FILE, f"f{i:02}"): b"\x00\xff" + f"fault-canary-f{i}-{os.urandom(6).hex()}".encode()
             + bytes(range(256)) for i in range(4)}
    return made


class Console:
    """Records what apply prints; answers no to every question."""

    def __init__(self):
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.color = False

    def out(self, text: str) -> None:
        self.lines.append(text)

    def err(self, text: str) -> None:
        self.errors.append(text)

    def ask(self, prompt: str) -> bool:
        return False


class Project:
    """A config folder: builtin `harness` (seeded) -> `corp_vault` (a fresh KV v2 mount)."""

    def __init__(self, root: Path, vault: VaultServer, retries: int, on_conflict: str = "fail"):
        self.root, self.vault = root, vault
        self.mount = fresh_mount(vault, 2)
        self.config = root / "secretshift.yaml"
        self.values = make_values()
        (root / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
        self.config.write_text(f"""version: 1
managers:
  {SOURCE}: {{type: builtin, path: harness.db, key: {{file: master.key}}}}
  {TARGET}: {{type: vault, address: "{vault.url}", token: {{env: FAULT_TEST_TOKEN}},
               secret_engine: {self.mount}, base_path: harness, retries: {retries}}}
migrations:
  - {{from: {SOURCE}, to: {TARGET}, mode: move}}
on_conflict: {on_conflict}
""")
        with Workspace(self.config) as ws:
            for secret, data in self.values.items():
                ws.backend(SOURCE).write(secret, SecretValue(data))
        self.client = hvac.Client(url=vault.url, token=vault.root_token)

    # -- running
    def apply(self, console: Console | None = None, plan_file: str | None = None) -> int:
        return commands.apply(self.config, plan_file, True, console or Console())

    def save_plan(self) -> str:
        path = self.root / "plan.json"
        commands.plan(self.config, "json", str(path))
        return str(path)

    def order(self) -> list[SecretId]:
        """The secrets in the order the last apply's plan carries them out."""
        return [action.id for action in latest(self.journal_dir).plan.changes]

    # -- looking at the stores directly
    def source(self) -> dict[SecretId, bytes]:
        with Workspace(self.config) as ws:
            store = ws.backend(SOURCE)
            found = {s: store.read(s) for s in store.list_ids()}
        return {s: v.data for s, v in found.items() if v is not None}

    def target(self) -> dict[SecretId, bytes]:
        """Every live key under the mount, read raw through hvac and decoded per the
        contract layout; a key outside that layout fails the test."""
        kv = self.client.secrets.kv.v2
        held: dict[SecretId, bytes] = {}
        for kind, folder in FOLDERS.items():
            try:
                keys = kv.list_secrets(path=f"harness/{folder}", mount_point=self.mount)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                continue
            for key in keys:
                reply = kv.read_secret_version(path=f"harness/{folder}/{key}", mount_point=self.mount,
                                               raise_on_deleted_version=False)
                data = reply["data"]["data"]
                if data is None:  # soft-deleted
                    continue
                if kind is Kind.FILE:
                    assert data["encoding"] == "base64", data
                    held[SecretId(kind, key)] = base64.b64decode(data["value"])
                else:
                    held[SecretId(kind, key)] = data["value"].encode("utf-8")
        top = kv.list_secrets(path="", mount_point=self.mount)["data"]["keys"] if held else []
        assert top in ([], ["harness/"]), top
        return held

    def write_target(self, secret: SecretId, data: bytes) -> None:
        with Workspace(self.config) as ws:
            ws.backend(TARGET).write(secret, SecretValue(data))

    def write_source(self, secret: SecretId, data: bytes) -> None:
        with Workspace(self.config) as ws:
            ws.backend(SOURCE).write(secret, SecretValue(data))

    @property
    def journal_dir(self) -> Path:
        with Workspace(self.config) as ws:
            return ws.journal_dir

    def journal_bytes(self) -> bytes:
        """Every journal file beside the config, wherever apply keeps them."""
        return b"".join(path.read_bytes() for path in sorted((self.root / ".secretshift").rglob("*.jsonl")))


@pytest.fixture
def make_project(tmp_path, vault, monkeypatch):
    """Build a project with a given `retries`; the simulator is always cleaned up after."""
    if not isinstance(vault, VaultServer):
        pytest.skip("fault injection needs the Vault-API simulator")
    monkeypatch.setenv("FAULT_TEST_TOKEN", vault.root_token)
    made = []

    def make(retries: int, **kw) -> Project:
        root = tmp_path / f"project{len(made)}"
        root.mkdir()
        made.append(Project(root, vault, retries, **kw))
        return made[-1]

    yield make
    vault.clear_faults()
    vault.unseal()


@pytest.fixture
def fast_backoff(monkeypatch):
    """Keep the real retry logic and jitter but scale its pauses down 50-fold (the timing
    itself is covered by test_retry.py), so storms of faults stay quick."""
    real = retry.RetryPolicy.delay
    monkeypatch.setattr(retry.RetryPolicy, "delay", lambda self, n, rng=None: real(self, n) / 50)


# ------------------------------------------------------------------------- assertions

def assert_moved(project: Project) -> None:
    """Every secret is in the target with its exact bytes, and gone from the source."""
    assert project.target() == project.values
    assert project.source() == {}
    assert latest(project.journal_dir).status == "complete"
    assert_journal_has_no_value(project)


def assert_nothing_lost(project: Project, values: dict[SecretId, bytes] | None = None) -> None:
    """Every secret is in the source or the target (or both), each copy exact."""
    values = values or project.values
    source, target = project.source(), project.target()
    assert set(source) | set(target) == set(values), "a secret was lost"
    for secret in values:
        if secret in source:
            assert source[secret] == values[secret], secret
        if secret in target:
            assert target[secret] == values[secret], secret


def assert_journal_has_no_value(project: Project, values=None) -> None:
    raw = project.journal_bytes()
    assert raw, "no journal was written"
    for data in (values or project.values).values():
        canary = data[data.index(b"fault-canary"):data.index(b"fault-canary") + 30]
        assert canary not in raw
        assert base64.b64encode(data) not in raw


def assert_split_at(project: Project, failed: int) -> None:
    """Actions before index `failed` are done; the failed one and all after it are
    still in the source only, exact."""
    order = project.order()
    assert project.target() == {s: project.values[s] for s in order[:failed]}
    assert project.source() == {s: project.values[s] for s in order[failed:]}


def statuses(vault: VaultServer, since: int) -> list[int]:
    return [status for _, _, status in list(vault.request_log)[since:]]


def secret_at(project: Project, logical_path: str) -> SecretId:
    """The secret a KV v2 data path (as in the request log) belongs to."""
    prefix = f"{project.mount}/data/harness/"
    assert logical_path.startswith(prefix), logical_path
    folder, name = logical_path[len(prefix):].split("/", 1)
    return SecretId(Kind.TEXT if folder == "SECRET_TEXT" else Kind.FILE, name)


def after_writes(monkeypatch, count: int, then) -> None:
    """Call `then()` right after the `count`-th successful write to Vault (any thread,
    plain or conditional), until `monkeypatch.undo()`."""
    real, real_if = VaultBackend.write, VaultBackend.write_if_version
    done = [0]
    lock = threading.Lock()

    def wrote() -> None:
        with lock:
            done[0] += 1
            fire = done[0] == count
        if fire:
            then()

    def write(self, secret, value):
        real(self, secret, value)
        wrote()

    def write_if_version(self, secret, value, version):
        if real_if(self, secret, value, version):
            wrote()
            return True
        return False

    monkeypatch.setattr(VaultBackend, "write", write)
    monkeypatch.setattr(VaultBackend, "write_if_version", write_if_version)


# ------------------------------------------------------------------------- (a) (b) sealed

def test_vault_sealed_mid_apply_and_unsealed_a_second_later_completes_through_retries(
        make_project, vault, monkeypatch):
    """Sealed right after the 3rd write, unsealed ~1 s later by a timer thread: the real
    backoff outlasts the seal and the apply completes with every secret exact."""
    project = make_project(retries=10)
    timers = []

    def seal_for_a_second():
        vault.seal()
        timers.append(threading.Timer(1.0, vault.unseal))
        timers[-1].start()

    after_writes(monkeypatch, 3, seal_for_a_second)
    vault.reset_counts()
    started = time.monotonic()
    assert project.apply() == 0
    assert time.monotonic() - started >= 1.0
    assert len(timers) == 1
    timers[0].join()
    assert statuses(vault, 0).count(503) >= 1, "the apply never saw the sealed Vault"
    assert_moved(project)


def test_vault_sealed_for_good_fails_with_one_clear_error_and_resumes_once_unsealed(
        make_project, vault, monkeypatch):
    """Sealed right after the 3rd write and never unsealed: the bounded retries give up
    with one clear error naming the manager, the path and the seal; the journal says
    failed; nothing is lost. Unsealed, the next apply resumes and completes."""
    project = make_project(retries=2)
    patch = pytest.MonkeyPatch()
    after_writes(patch, 3, vault.seal)

    with pytest.raises(TransientError) as caught:
        project.apply()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"manager '{TARGET}' at {project.mount}/harness/")
    assert message.endswith("Vault is sealed (gave up after 3 attempts)")
    state = latest(project.journal_dir)
    assert state.status == "failed"
    assert "Vault is sealed" in state.path.read_text().splitlines()[-1]

    vault.unseal()
    assert_nothing_lost(project)
    assert len(project.target()) >= 3
    assert project.source(), "the seal stopped nothing"
    patch.undo()
    console = Console()
    assert project.apply(console) == 0
    assert any(line.startswith(f"Resuming apply {state.apply_id} (failed after") for line in console.lines)
    assert_moved(project)


# ------------------------------------------------------------------------- (c) 429 storm

def test_a_storm_of_429_answers_on_reads_writes_and_lists_still_completes_exactly(make_project, vault, fast_backoff):
    """30 rate-limit faults spread over listing, reading and writing (some firing twice
    in a row): every request is retried until it succeeds, and the result is exact."""
    project = make_project(retries=5)
    data_path = rf"^{project.mount}/data/harness/"
    faults = []
    for i, secret in enumerate(sorted(project.values)):
        folder = FOLDERS[secret.kind]
        faults.append(vault.add_fault(429, rf"{data_path}{folder}/{secret.name}$", "POST", count=1 + i % 2))
        faults.append(vault.add_fault(429, rf"{data_path}{folder}/{secret.name}$", "GET", count=1, after=1))
    faults.append(vault.add_fault(429, rf"^{project.mount}/metadata/", "LIST", count=2))
    faults += [vault.add_fault(429, r".*", None, count=2, after=after) for after in (0, 6, 13, 19, 26)]
    assert len(faults) == 30
    vault.reset_counts()

    assert project.apply() == 0
    assert_moved(project)
    assert all(fault.fired == (fault.count or 0) for fault in faults), [(f.path_regex, f.fired) for f in faults]
    assert statuses(vault, 0).count(429) == sum(f.fired for f in faults) >= 40


# ------------------------------------------------------------------------- (d) dropped connections

def test_dropped_connections_on_writes_reads_and_lists_are_retried_and_apply_completes(make_project, vault, fast_backoff):
    """Connections closed without an answer, before Vault saw the request and after it
    carried a write out (the answer lost): retried, and every secret lands exact."""
    project = make_project(retries=5)
    data_path = rf"^{project.mount}/data/harness/"
    order = sorted(project.values)
    faults = [
        vault.add_fault(drop=True, path_regex=rf"^{project.mount}/metadata/", method="LIST", count=1),
        vault.add_fault(drop=True, path_regex=r"^sys/capabilities-self$", count=1),
    ]
    for i, secret in enumerate(order):
        path = rf"{data_path}{FOLDERS[secret.kind]}/{secret.name}$"
        if i % 3 == 0:
            faults.append(vault.add_fault(drop=True, path_regex=path, method="POST", count=1))
        elif i % 3 == 1:  # the write reaches Vault; only its answer is lost
            faults.append(vault.add_fault(drop=True, handled=True, path_regex=path, method="POST", count=1))
        faults.append(vault.add_fault(drop=True, path_regex=path, method="GET", count=1, after=i % 2))
    vault.reset_counts()

    assert project.apply() == 0
    assert_moved(project)
    assert all(fault.fired == 1 for fault in faults), [(f.path_regex.pattern, f.fired) for f in faults]
    assert statuses(vault, 0).count(0) == len(faults)


# ------------------------------------------------------------------------- (e) failure after N writes

@pytest.mark.parametrize("status, failing_write, error_type", [
    (403, 1, PermissionDenied),
    (403, 5, PermissionDenied),
    (500, 9, TransientError),
], ids=["403-on-first-write", "403-on-5th-write", "500-on-9th-write"])
def test_a_permanent_failure_on_the_nth_write_stops_there_and_a_rerun_finishes(
        make_project, vault, status, failing_write, error_type):
    """With retries: 0, the N-th write and every later one refused: exactly N-1 secrets
    reach the target (exact, source deleted); the refused ones and all not yet started
    stay in the source only, exact; the error names a refused secret's path; once the
    fault is cleared, the next apply resumes and finishes."""
    project = make_project(retries=0)
    vault.add_fault(status, rf"^{project.mount}/data/harness/", "POST", count=None, after=failing_write - 1)
    vault.reset_counts()

    with pytest.raises(error_type) as caught:
        project.apply()
    writes = [(path, code) for method, path, code in vault.request_log if method == "POST" and "/data/" in path]
    written = {secret_at(project, path) for path, code in writes if code == 200}
    refused = {secret_at(project, path) for path, code in writes if code == status}
    assert len(written) == failing_write - 1 and refused and not written & refused
    assert project.target() == {s: project.values[s] for s in written}
    assert project.source() == {s: v for s, v in project.values.items() if s not in written}
    message = str(caught.value)
    assert "\n" not in message
    named = [s for s in refused
             if message.startswith(f"manager '{TARGET}' at {project.mount}/harness/{FOLDERS[s.kind]}/{s.name}: "
                                   "cannot write: ")]
    assert named, message
    state = latest(project.journal_dir)
    assert state.status == "failed"
    for index, record in state.actions.items():
        secret = state.plan.changes[index].id
        assert ("source_deleted" in record.steps) == (secret in written), (secret, record.steps)

    vault.clear_faults()
    assert project.apply() == 0
    assert_moved(project)


# ------------------------------------------------------------------------- (f) stale saved plan

@pytest.mark.parametrize("change", ["changed", "deleted"])
def test_a_target_changed_between_plan_and_apply_is_refused_before_any_write(make_project, vault, change):
    """A saved plan overwrites an existing target value (on_conflict: overwrite); someone
    changes or deletes that target before `apply plan.json`: refused as stale before any
    write, no journal started, both stores byte-identical (no new Vault version)."""
    project = make_project(retries=0, on_conflict="overwrite")
    victim = SecretId(Kind.FILE, "f02")
    project.write_target(victim, b"old target value")
    plan_file = project.save_plan()
    if change == "changed":
        project.write_target(victim, b"changed by someone else")
    else:
        project.client.secrets.kv.v2.delete_latest_version_of_secret(
            path=f"harness/CONFIG_FILE/{victim.name}", mount_point=project.mount)
    source, target = project.source(), project.target()
    metadata = project.client.secrets.kv.v2.read_secret_metadata(
        path=f"harness/CONFIG_FILE/{victim.name}", mount_point=project.mount)["data"]["versions"]

    with pytest.raises(StalePlan) as caught:
        project.apply(plan_file=plan_file)
    what = "changed in" if change == "changed" else "is gone from"
    assert str(caught.value) == (f"stale plan, nothing was written: file secret 'f02' {what} manager "
                                 f"'{TARGET}'. Run plan again")
    assert project.source() == source == project.values
    assert project.target() == target
    assert project.client.secrets.kv.v2.read_secret_metadata(
        path=f"harness/CONFIG_FILE/{victim.name}", mount_point=project.mount)["data"]["versions"] == metadata
    assert journals(project.journal_dir) == []
    assert not list(project.root.rglob("*.jsonl"))


# ------------------------------------------------------------------------- (g) changed during apply

def between_check_and_execute(monkeypatch, then) -> None:
    """Call `then()` after apply checked the plan is current (and the preflight passed),
    before the first action runs: the window another tool could write in."""
    real = applier.preflight

    def preflight(changes, backends):
        real(changes, backends)
        then()

    monkeypatch.setattr(applier, "preflight", preflight)


def test_a_source_changed_between_check_and_execute_is_not_copied_and_rollback_recovers(make_project, vault,
                                                                                        monkeypatch):
    """Another tool changes one source after apply's staleness check: that secret is
    refused as stale (never copied, the new value kept); resume refuses and changes
    nothing; rollback restores the original layout with the new value; a fresh apply
    then moves everything, the new value included."""
    project = make_project(retries=0)
    secret = SecretId(Kind.TEXT, "t05")
    new_value = b"fault-canary-changed-meanwhile-" + os.urandom(4).hex().encode()
    patch = pytest.MonkeyPatch()
    between_check_and_execute(patch, lambda: project.write_source(secret, new_value))

    with pytest.raises(StalePlan) as caught:
        project.apply()
    patch.undo()
    assert str(caught.value) == f"stale plan: {secret} changed in manager '{SOURCE}' during apply"
    assert latest(project.journal_dir).status == "failed"
    now = project.values | {secret: new_value}
    assert project.source()[secret] == new_value
    assert secret not in project.target()
    assert_nothing_lost(project, now)

    before = project.source(), project.target()
    with pytest.raises(StalePlan, match=rf"cannot resume apply .*'{secret.name}' changed in manager '{SOURCE}'"):
        project.apply()
    assert (project.source(), project.target()) == before

    assert commands.rollback(project.config, True, Console()) == 0
    assert project.source() == now
    assert project.target() == {}
    assert project.apply() == 0
    assert project.target() == now
    assert project.source() == {}
    assert_journal_has_no_value(project, now)


def test_a_target_written_by_someone_else_between_check_and_execute_is_never_overwritten(
        make_project, vault, monkeypatch):
    """Another tool creates one secret in Vault after apply's staleness check: apply
    refuses that secret, the foreign value stays, its source copy is kept, nothing lost."""
    project = make_project(retries=0)
    secret = SecretId(Kind.FILE, "f01")
    foreign = b"fault-canary-foreign-value-xyz"
    between_check_and_execute(monkeypatch, lambda: project.write_target(secret, foreign))

    with pytest.raises(StalePlan) as caught:
        project.apply()
    assert str(caught.value) == f"stale plan: {secret} changed in manager '{TARGET}' during apply"
    target, source = project.target(), project.source()
    assert target[secret] == foreign
    assert source[secret] == project.values[secret]
    assert set(target) | set(source) == set(project.values)
    for other in project.values:
        if other != secret:
            assert (target.get(other) or source.get(other)) == project.values[other]
            assert source.get(other, project.values[other]) == project.values[other]
    assert latest(project.journal_dir).status == "failed"
    assert_journal_has_no_value(project)
