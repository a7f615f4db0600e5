"""Metadata and `history: all` travel between Vault KV v2 and AWS (issue 3, item 6).

Real servers on both sides (the Vault simulator, moto's server); the source is seeded and
the target inspected through plain hvac and boto3, never through secretshift.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import hvac
import pytest
from conftest import fresh_mount
from motoserver import REGION
from vaultsim import VaultServer

from engine import commands
from engine.model import Kind, SecretId
from engine.workspace import Workspace
from tests.backends.test_e2e_pairs import Recorder

TOKEN_ENV = "HISTORY_TRAVEL_VAULT_TOKEN"


def _config(tmp_path, vault, mount, server, prefix, source, target, mode, history="all"):
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  v: {{type: vault, address: "{vault.url}", token: {{env: {TOKEN_ENV}}}, secret_engine: {mount}, base_path: h}}
  aws: {{type: aws_secrets_manager, region: {REGION}, endpoint_url: "{server.url}", prefix: "{prefix}",
         recovery_window_days: 7}}
migrations:
  - {{from: {source}, to: {target}, mode: {mode}, history: {history}}}
""")
    return config


def _aws_values_in_order(client, name: str) -> list[str]:
    versions = client.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    return [client.get_secret_value(SecretId=name, VersionId=v["VersionId"])["SecretString"] for v in versions]


def _plan(config) -> dict:
    text, code = commands.plan(config, "json")
    assert code == 0, text
    return json.loads(text)


@pytest.fixture
def both(vault, moto_server, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, vault.root_token)
    client = hvac.Client(url=vault.url, token=vault.root_token)
    return client, moto_server.client()


def test_kv2_versions_go_to_aws_oldest_first_without_the_deleted_one(vault, moto_server, both, tmp_path):
    hv, aws = both
    mount, prefix = fresh_mount(vault, 2), f"hist-{uuid.uuid4().hex[:8]}/"
    kv = hv.secrets.kv.v2
    for value in ("one", "two", "three", "four ünï\n"):
        kv.create_or_update_secret(path="h/SECRET_TEXT/db", secret={"value": value}, mount_point=mount)
    kv.delete_secret_versions(path="h/SECRET_TEXT/db", versions=[3], mount_point=mount)
    kv.update_metadata(path="h/SECRET_TEXT/db", mount_point=mount,
                       custom_metadata={"owner": "team-a", "description": "orders db password"})
    config = _config(tmp_path, vault, mount, moto_server, prefix, "v", "aws", "copy")

    plan = _plan(config)
    assert [(a["action"], a["name"], a.get("history")) for a in plan["actions"]] == [("copy", "db", "all")]
    assert commands.apply(config, None, True, Recorder()) == 0

    assert _aws_values_in_order(aws, prefix + "db") == ["one", "two", "four ünï\n"]
    assert aws.get_secret_value(SecretId=prefix + "db")["SecretString"] == "four ünï\n"
    described = aws.describe_secret(SecretId=prefix + "db")
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert described["Description"] == "orders db password"
    assert tags["owner"] == "team-a"
    assert tags["secretshift:history"] == "carried 2 earlier versions from v - skipped v3 deleted"
    assert tags["secretshift:kind"] == "text"  # secretshift's own tags stay
    again = _plan(config)
    assert {a["action"] for a in again["actions"]} == {"noop"}
    # undo still works: the created target is scheduled for deletion again
    assert commands.rollback(config, True, Recorder()) == 0
    assert aws.describe_secret(SecretId=prefix + "db").get("DeletedDate")


def test_aws_versions_become_kv2_versions_1_to_3_in_order(vault, moto_server, both, tmp_path):
    hv, aws = both
    mount, prefix = fresh_mount(vault, 2), f"hist-{uuid.uuid4().hex[:8]}/"
    aws.create_secret(Name=prefix + "api", SecretString="a1", Description="payments API key",
                      Tags=[{"Key": "team", "Value": "payments"}])
    aws.put_secret_value(SecretId=prefix + "api", SecretString="a2 \"q\"")
    aws.put_secret_value(SecretId=prefix + "api", SecretString="a3 🔑")
    aws.create_secret(Name=prefix + "files/cert", SecretBinary=b"\x00v1")
    aws.put_secret_value(SecretId=prefix + "files/cert", SecretBinary=b"\x00v2\xff")
    config = _config(tmp_path, vault, mount, moto_server, prefix, "aws", "v", "move")

    assert commands.apply(config, None, True, Recorder()) == 0

    kv = hv.secrets.kv.v2
    meta = kv.read_secret_metadata(path="h/SECRET_TEXT/api", mount_point=mount)["data"]
    assert meta["current_version"] == 3
    values = [kv.read_secret_version(path="h/SECRET_TEXT/api", version=n, mount_point=mount,
                                     raise_on_deleted_version=True)["data"]["data"]["value"] for n in (1, 2, 3)]
    assert values == ["a1", "a2 \"q\"", "a3 🔑"]
    assert meta["custom_metadata"] == {"team": "payments", "description": "payments API key",
                                       "secretshift:history": "carried 2 earlier versions from aws"}
    files = [kv.read_secret_version(path="h/CONFIG_FILE/cert", version=n, mount_point=mount,
                                    raise_on_deleted_version=True)["data"]["data"] for n in (1, 2)]
    assert [base64.b64decode(f["value"]) for f in files] == [b"\x00v1", b"\x00v2\xff"]
    # moved: the AWS sources are in their recovery window; a new plan has no changes
    assert aws.describe_secret(SecretId=prefix + "api").get("DeletedDate")
    text, code = commands.plan(config, "json", detailed_exitcode=True)
    assert code == 0, text
    with Workspace(config) as ws:
        assert ws.backend("v").read(SecretId(Kind.TEXT, "api")).text() == "a3 🔑"


def test_history_current_is_the_default_and_writes_one_version(vault, moto_server, both, tmp_path):
    hv, aws = both
    mount, prefix = fresh_mount(vault, 2), f"hist-{uuid.uuid4().hex[:8]}/"
    aws.create_secret(Name=prefix + "api", SecretString="a1")
    aws.put_secret_value(SecretId=prefix + "api", SecretString="a2")
    config = _config(tmp_path, vault, mount, moto_server, prefix, "aws", "v", "copy", history="current")
    plan = _plan(config)
    assert "history" not in plan["actions"][0]
    assert commands.apply(config, None, True, Recorder()) == 0
    meta = hv.secrets.kv.v2.read_secret_metadata(path="h/SECRET_TEXT/api", mount_point=mount)["data"]
    assert meta["current_version"] == 1
    assert "secretshift:history" not in (meta["custom_metadata"] or {})


# --------------------------------------------------------------------------- interrupted while writing history

SECRETSHIFT = Path(sys.executable).parent / "secretshift"
VERSIONS = 9  # per secret (KV v2 keeps 10), so the window to kill in is wide; version 3 is deleted in the source


@pytest.fixture(scope="module")
def slow_vault():
    """A Vault answering in 5 ms, so an apply can be killed while it writes earlier versions."""
    server = VaultServer(root_token="root", latency=0.005).start()
    yield server
    server.stop()


def _slow_project(tmp_path, slow_vault, name: str) -> tuple[Path, dict[str, list[str]]]:
    slow_vault.enable_kv(f"src-{name}", version=2)
    slow_vault.enable_kv(f"dst-{name}", version=2)
    kv = hvac.Client(url=slow_vault.url, token="root").secrets.kv.v2
    expected = {}
    for i in range(4):
        values = [f"s{i}-v{n}-{uuid.uuid4().hex[:6]}" for n in range(1, VERSIONS + 1)]
        for value in values:
            kv.create_or_update_secret(path=f"SECRET_TEXT/s{i}", secret={"value": value}, mount_point=f"src-{name}")
        kv.delete_secret_versions(path=f"SECRET_TEXT/s{i}", versions=[3], mount_point=f"src-{name}")
        expected[f"s{i}"] = values[:2] + values[3:]  # what the target's last versions must be
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    vault = f'type: vault, address: "{slow_vault.url}", token: {{env: VAULT_TOKEN}}, kv_version: 2, parallelism: 1'
    # one request at a time: each secret's history is written alone, for longer than the
    # poll in _kill_while_writing_history takes to come round to it
    config.write_text(f"""version: 1
managers:
  src: {{{vault}, secret_engine: src-{name}}}
  dst: {{{vault}, secret_engine: dst-{name}}}
migrations:
  - {{from: src, to: dst, mode: move, history: all}}
""")
    return config, expected


def _journal_text(config: Path) -> str:
    folder = config.parent / ".secretshift" / "journal" / config.name
    return "".join(p.read_text(errors="replace") for p in folder.glob("*.jsonl")) if folder.exists() else ""


def _kill_while_writing_history(config: Path, kv, target_mount: str) -> None:
    """Start apply and SIGKILL it once a target holds two earlier versions and is still
    three writes short of its full history (the action is half-way through it)."""
    process = subprocess.Popen([str(SECRETSHIFT), "-c", str(config), "apply", "--auto-approve"],
                               env={**os.environ, "VAULT_TOKEN": "root"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while process.poll() is None and not _partly_written(kv, target_mount):
        assert time.monotonic() < deadline, "apply made no progress"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def _partly_written(kv, mount: str) -> bool:
    for i in range(4):
        try:
            meta = kv.read_secret_metadata(path=f"SECRET_TEXT/s{i}", mount_point=mount)["data"]
        except hvac.exceptions.InvalidPath:
            continue
        # at most one write per secret is in flight when the kill lands: stop two short
        # of the full history, or that write may complete it
        if 2 <= meta["current_version"] < VERSIONS - 2:
            return True
    return False


def _current(kv, mount: str, name: str) -> str | None:
    try:
        return kv.read_secret_version(path=f"SECRET_TEXT/{name}", mount_point=mount,
                                      raise_on_deleted_version=True)["data"]["data"]["value"]
    except hvac.exceptions.InvalidPath:
        return None


def _readable_versions(kv, mount: str, name: str) -> list[str]:
    meta = kv.read_secret_metadata(path=f"SECRET_TEXT/{name}", mount_point=mount)["data"]
    return [kv.read_secret_version(path=f"SECRET_TEXT/{name}", version=int(n), mount_point=mount,
                                   raise_on_deleted_version=True)["data"]["data"]["value"]
            for n in sorted(meta["versions"], key=int) if not meta["versions"][n]["deletion_time"]]


def test_apply_killed_while_writing_history_resumes_and_ends_with_every_version(tmp_path, slow_vault, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "root")
    config, expected = _slow_project(tmp_path, slow_vault, "resume")
    kv = hvac.Client(url=slow_vault.url, token="root").secrets.kv.v2
    _kill_while_writing_history(config, kv, "dst-resume")
    assert "history_started" in _journal_text(config)
    assert any(1 <= len(_readable_versions(kv, "dst-resume", n)) < len(v) for n, v in expected.items()
               if _current(kv, "dst-resume", n) is not None), "not killed half-way through a history"
    for name, values in expected.items():  # nothing lost: each current value is somewhere
        assert values[-1] in (_current(kv, "src-resume", name), _current(kv, "dst-resume", name))
    result = subprocess.run(check=False, args=[str(SECRETSHIFT), "-c", str(config), "apply", "--auto-approve"],
                            env={**os.environ, "VAULT_TOKEN": "root"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Resuming apply" in result.stdout
    for name, values in expected.items():
        assert _current(kv, "dst-resume", name) == values[-1]
        assert _current(kv, "src-resume", name) is None  # moved
        # a resumed action writes its history again: the target ends with every version, in order
        assert _readable_versions(kv, "dst-resume", name)[-len(values):] == values
    replan = subprocess.run(check=False, args=[str(SECRETSHIFT), "-c", str(config), "plan", "--detailed-exitcode"],
                            env={**os.environ, "VAULT_TOKEN": "root"}, capture_output=True, text=True)
    assert replan.returncode == 0, replan.stdout + replan.stderr


def test_apply_killed_while_writing_history_rolls_back(tmp_path, slow_vault, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "root")
    config, expected = _slow_project(tmp_path, slow_vault, "undo")
    kv = hvac.Client(url=slow_vault.url, token="root").secrets.kv.v2
    _kill_while_writing_history(config, kv, "dst-undo")
    assert any(_current(kv, "dst-undo", n) not in (None, v[-1]) for n, v in expected.items())
    result = subprocess.run(check=False, args=[str(SECRETSHIFT), "-c", str(config), "rollback", "--auto-approve"],
                            env={**os.environ, "VAULT_TOKEN": "root"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, values in expected.items():
        assert _current(kv, "src-undo", name) == values[-1]
        assert _current(kv, "dst-undo", name) is None  # partial targets removed (soft-deleted)


def test_the_history_note_is_written_for_a_source_without_description_or_tags(vault, moto_server, both, tmp_path):
    """The note alone is metadata worth writing (it was dropped when nothing else travelled)."""
    hv, aws = both
    mount, prefix = fresh_mount(vault, 2), f"hist-{uuid.uuid4().hex[:8]}/"
    aws.create_secret(Name=prefix + "bare", SecretString="b1")
    aws.put_secret_value(SecretId=prefix + "bare", SecretString="b2")
    config = _config(tmp_path, vault, mount, moto_server, prefix, "aws", "v", "copy")
    assert commands.apply(config, None, True, Recorder()) == 0
    meta = hv.secrets.kv.v2.read_secret_metadata(path="h/SECRET_TEXT/bare", mount_point=mount)["data"]
    assert meta["current_version"] == 2
    assert meta["custom_metadata"] == {"secretshift:history": "carried 1 earlier version from aws"}
