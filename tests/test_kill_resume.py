"""Invariant 5: `secretshift apply` killed with SIGKILL at many different moments, then
run again, ends exactly where an uninterrupted run ends, and no secret is ever lost."""

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
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

from vaultsim import VaultServer

SECRETSHIFT = Path(sys.executable).parent / "secretshift"
COUNT = 30


@pytest.fixture(scope="module")
def slow_vault():
    """A Vault with 5 ms per request, so an apply lasts long enough to be killed mid-way."""
    server = VaultServer(root_token="root", latency=0.005).start()
    server.enable_kv("secret", version=2)
    yield server
    server.stop()


def values() -> dict[SecretId, bytes]:
    made = {SecretId(Kind.TEXT, f"text_{i:03}"): f"value-{i}-".encode() + os.urandom(8).hex().encode()
            for i in range(COUNT // 2)}
    made |= {SecretId(Kind.FILE, f"file_{i:03}"): b"\x00\x01" + os.urandom(64) for i in range(COUNT // 2)}
    return made


def holdings(config: Path, manager: str) -> dict[SecretId, bytes]:
    with Workspace(config) as ws:
        backend = ws.backend(manager)
        found = {s: backend.read(s) for s in backend.list_ids()}
    return {s: v.data for s, v in found.items() if v is not None}


def journal_records(config: Path) -> int:
    folder = config.parent / ".secretshift" / "journal" / config.name
    return sum(path.read_bytes().count(b"\n") for path in folder.glob("*.jsonl")) if folder.exists() else 0


def run_apply(config: Path, kill_after_records: int | None) -> None:
    """Run apply to the end, or SIGKILL it once the journal has grown by that many records
    (so every kill lands at a different step of a different action)."""
    env = {**os.environ, "VAULT_TOKEN": "root"}
    start = journal_records(config)
    process = subprocess.Popen([str(SECRETSHIFT), "-c", str(config), "apply", "--auto-approve"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after_records is None:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        return
    deadline = time.monotonic() + 60
    while journal_records(config) < start + kill_after_records and process.poll() is None:
        assert time.monotonic() < deadline, "apply made no progress"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


@pytest.fixture(params=["1", "2"], ids=["one process", "two worker processes"])
def processes(request, monkeypatch):
    """Both ways apply runs: in its own process, and split over forked workers (workers.py)."""
    monkeypatch.setenv(workers.PROCESSES_ENV, request.param)
    return int(request.param)


def test_sigkill_at_many_points_then_rerun_loses_nothing_and_finishes(tmp_path, slow_vault, monkeypatch, processes):
    monkeypatch.setenv("VAULT_TOKEN", "root")
    expected = values()
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  harness: {{type: builtin, path: harness.db, key: {{file: master.key}}}}
  corp_vault: {{type: vault, address: "{slow_vault.url}", token: {{env: VAULT_TOKEN}}, base_path: kill{processes}}}
migrations:
  - {{from: harness, to: corp_vault, mode: move}}
""")
    with Workspace(config) as ws:
        for secret, data in expected.items():
            ws.backend("harness").write(secret, SecretValue(data))

    for kill_after in (1, 2, 3, 4, 5, 6, 7, 9, 11, 14, 17, 23):
        run_apply(config, kill_after)
        source, target = holdings(config, "harness"), holdings(config, "corp_vault")
        assert set(source) | set(target) == set(expected), "a secret was lost"
        for secret in set(source) | set(target):
            assert source.get(secret, expected[secret]) == expected[secret]
            assert target.get(secret, expected[secret]) == expected[secret]

    run_apply(config, None)
    assert holdings(config, "corp_vault") == expected
    assert holdings(config, "harness") == {}
    replan = subprocess.run([str(SECRETSHIFT), "-c", str(config), "plan", "--detailed-exitcode"],
                            env={**os.environ, "VAULT_TOKEN": "root"}, capture_output=True, text=True)
    assert replan.returncode == 0, replan.stdout + replan.stderr


def test_ctrl_c_stops_after_the_current_step_and_a_rerun_finishes(tmp_path, slow_vault, monkeypatch, processes):
    monkeypatch.setenv("VAULT_TOKEN", "root")
    expected = values()
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  harness: {{type: builtin, path: harness.db, key: {{file: master.key}}}}
  corp_vault: {{type: vault, address: "{slow_vault.url}", token: {{env: VAULT_TOKEN}}, base_path: sigint{processes},
               parallelism: 2}}
migrations:
  - {{from: harness, to: corp_vault, mode: move}}
""")
    with Workspace(config) as ws:
        for secret, data in expected.items():
            ws.backend("harness").write(secret, SecretValue(data))
    process = subprocess.Popen([str(SECRETSHIFT), "-c", str(config), "apply", "--auto-approve"],
                               env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while journal_records(config) < 8:
        assert time.monotonic() < deadline and process.poll() is None, "apply made no progress"
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert "Stopping after the current step" in err
    assert "interrupted after" in err and "run apply again to finish" in err
    source, target = holdings(config, "harness"), holdings(config, "corp_vault")
    assert 0 < len(target) < len(expected)
    assert not set(source) & set(target), "an interrupted action was left half done"
    assert {**source, **target} == expected
    run_apply(config, None)
    assert holdings(config, "corp_vault") == expected
