"""`secretshift discover` through the installed command (issue 3, items 4 and 5).

Each test seeds one manager (builtin on disk, Vault KV v2 on the simulator, AWS on moto's
server), runs `secretshift discover`, checks the YAML and the skip report, merges the
YAML into the config and runs `plan`: a `secrets:` block must give only no-ops, and a
`migrations:` block must carry every secret, byte for byte, when applied.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import hvac
import pytest
import yaml
from clihelp import base_env, run_cli
from conftest import fresh_mount
from motoserver import REGION

from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

TEXTS = {"db_password": "pa$$ \"q\" ünï 🔑\n", "api.token-v2": "tok", "yes": "a YAML keyword as a name"}
FILES = {"tls.pem": b"\x00\x01PEM\xff", "kube.config": b"apiVersion: v1\n"}
CANARY = "CANARY-VALUE-7f3a"


def _project(tmp_path: Path, managers: dict) -> Path:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(yaml.safe_dump({"version": 1, "managers": managers}, sort_keys=False))
    return config


def _seed(config: Path, manager: str, texts=TEXTS, files=FILES) -> None:
    with Workspace(config) as ws:
        backend = ws.backend(manager)
        for name, text in texts.items():
            backend.write(SecretId(Kind.TEXT, name), SecretValue.from_text(text))
        for name, data in files.items():
            backend.write(SecretId(Kind.FILE, name), SecretValue(data))


def _discover(config: Path, env: dict, *args: str):
    result = run_cli(["discover", *args], config.parent, env)
    assert result.code == 0, result
    assert CANARY not in result.stdout and CANARY not in result.err
    return result


def _merge(config: Path, discovered: str) -> None:
    doc = yaml.safe_load(config.read_text())
    for key, value in yaml.safe_load(discovered).items():
        doc.setdefault(key, []).extend(value)
    config.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def _plan(config: Path, env: dict) -> dict:
    result = run_cli(["plan", "--format", "json"], config.parent, env)
    assert result.code == 0, result
    return json.loads(result.stdout)


def _assert_only_noops(plan: dict, expected: set[tuple[str, str]]) -> None:
    assert plan["errors"] == []
    assert {a["action"] for a in plan["actions"]} == {"noop"}
    assert {(a["kind"], a["name"]) for a in plan["actions"]} == expected


def _seeded_ids() -> set[tuple[str, str]]:
    return {("text", n) for n in TEXTS} | {("file", n) for n in FILES}


@pytest.fixture
def vault_env(vault, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    return base_env(VAULT_TOKEN=vault.root_token)


def _vault_manager(vault, mount: str, base_path: str = "") -> dict:
    return {"type": "vault", "address": vault.url, "token": {"env": "VAULT_TOKEN"},
            "secret_engine": mount, "base_path": base_path, "kv_version": 2, "retries": 0}


def _aws_manager(server, prefix: str) -> dict:
    return {"type": "aws_secrets_manager", "region": REGION, "endpoint_url": server.url,
            "prefix": prefix, "recovery_window_days": 7}


# --------------------------------------------------------------------------- secrets: block, no-op plan

def test_discover_builtin_gives_a_secrets_block_that_plans_only_noops(tmp_path):
    config = _project(tmp_path, {"harness": {"type": "builtin", "path": "h.db", "key": {"file": "master.key"}}})
    _seed(config, "harness")
    env = base_env()
    result = _discover(config, env, "harness")
    doc = yaml.safe_load(result.stdout)
    assert list(doc) == ["secrets"]
    assert {(e["kind"], e["name"]) for e in doc["secrets"]} == _seeded_ids()
    assert all(e["manager"] == "harness" and e["mode"] == "copy" for e in doc["secrets"])
    assert "5 secret(s) in manager 'harness', 0 skipped" in result.err
    _merge(config, result.stdout)
    _assert_only_noops(_plan(config, env), _seeded_ids())
    # discovering again skips what the config already places
    again = _discover(config, env, "harness")
    assert yaml.safe_load(again.stdout) == {"secrets": []}
    assert again.stdout.count("already placed by secrets entry") == 5


def _seed_vault_outside_layout(vault, mount: str) -> hvac.Client:
    """Secrets a real Vault holds beside (and inside) the Harness layout."""
    client = hvac.Client(url=vault.url, token=vault.root_token)
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="app/db", secret={"username": "app", "password": CANARY + "pw"},
                               mount_point=mount)
    kv.create_or_update_secret(path="app/token", secret={"value": CANARY + "tok"}, mount_point=mount)
    kv.create_or_update_secret(path="team/svc", secret={"host": "db.local", "port": 5432}, mount_point=mount)
    kv.create_or_update_secret(path="SECRET_TEXT/nested/deep", secret={"value": "x"}, mount_point=mount)
    kv.create_or_update_secret(path="old/gone", secret={"value": "x"}, mount_point=mount)
    kv.delete_latest_version_of_secret(path="old/gone", mount_point=mount)
    return client


def test_discover_vault_maps_paths_outside_the_layout_and_plans_only_noops(vault, vault_env, tmp_path):
    mount = fresh_mount(vault, 2)
    config = _project(tmp_path, {"corp_vault": _vault_manager(vault, mount)})
    _seed(config, "corp_vault")
    _seed_vault_outside_layout(vault, mount)
    result = _discover(config, vault_env, "corp_vault")
    doc = yaml.safe_load(result.stdout)
    mapped = {e["name"]: (e.get("vault_path"), e.get("vault_key")) for e in doc["secrets"] if "vault_path" in e}
    assert mapped == {"app_db_password": ("app/db", "password"), "app_db_username": ("app/db", "username"),
                      "app_token": ("app/token", "value"), "team_svc_host": ("team/svc", "host")}
    # what was left out, and why, at the top of the output and on stderr
    comments = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert any(f"{mount}/team/svc#port" in c and "holds a number, not a string" in c for c in comments)
    # a sub-folder of the layout is a secret whose name holds '/'
    assert {"name": "nested/deep", "kind": "text", "manager": "corp_vault", "mode": "copy"} in doc["secrets"]
    # old/gone (current version deleted) is never adopted: left out of the listing, or skipped with a note
    assert "old_gone" not in result.stdout
    assert "1 skipped" in result.err  # team/svc#port; the walk does not list old/gone at all
    _merge(config, result.stdout)
    expected = _seeded_ids() | {("text", n) for n in mapped} | {("text", "nested/deep")}
    _assert_only_noops(_plan(config, vault_env), expected)


def test_discover_vault_whole_secrets_become_one_json_text(vault, vault_env, tmp_path):
    mount = fresh_mount(vault, 2)
    config = _project(tmp_path, {"corp_vault": _vault_manager(vault, mount)})
    _seed_vault_outside_layout(vault, mount)
    result = _discover(config, vault_env, "corp_vault", "--vault-keys", "whole")
    doc = yaml.safe_load(result.stdout)
    assert {e["name"]: e.get("vault_path") for e in doc["secrets"]} == {
        "app_db": "app/db", "app_token": "app/token", "team_svc": "team/svc", "nested/deep": None}
    assert all("vault_key" not in e for e in doc["secrets"])
    _merge(config, result.stdout)
    _assert_only_noops(_plan(config, vault_env), {("text", "app_db"), ("text", "app_token"), ("text", "team_svc"),
                                                  ("text", "nested/deep")})
    got = run_cli(["get", "corp_vault", "team_svc"], config.parent, vault_env)
    assert got.out == b'{"host":"db.local","port":5432}', got


def test_discover_aws_adopts_folder_names_and_skips_non_names_and_pending_deletions(moto_server, tmp_path):
    """`team/db` under the prefix is the text secret `team/db`; `bad//name` is no secret
    name and a secret in its recovery window cannot be adopted: both skipped, with why."""
    prefix = f"disc-{uuid.uuid4().hex[:8]}/"
    config = _project(tmp_path, {"aws": _aws_manager(moto_server, prefix)})
    _seed(config, "aws")
    client = moto_server.client()
    client.create_secret(Name=f"{prefix}team/db", SecretString=CANARY)
    client.create_secret(Name=f"{prefix}bad//name", SecretString=CANARY)
    client.create_secret(Name=f"{prefix}retired", SecretString=CANARY)
    client.delete_secret(SecretId=f"{prefix}retired", RecoveryWindowInDays=7)
    env = base_env()
    result = _discover(config, env, "aws")
    doc = yaml.safe_load(result.stdout)
    assert {(e["kind"], e["name"]) for e in doc["secrets"]} == _seeded_ids() | {("text", "team/db")}
    comments = "\n".join(line for line in result.stdout.splitlines() if line.startswith("#"))
    assert f"{prefix}bad//name: not a secret name under the prefix" in comments
    assert f"{prefix}retired: it is pending deletion until" in comments
    assert f"restore-secret --secret-id {prefix}retired` to adopt it" in comments
    assert "2 skipped" in result.err
    _merge(config, result.stdout)
    _assert_only_noops(_plan(config, env), _seeded_ids() | {("text", "team/db")})


def _skipped_comments(stdout: str) -> dict[str, str]:
    """The `#   what: why` lines under `# skipped N:`, by what; N must be their count."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# skipped "))
    count = int(lines[start].split()[2].rstrip(":"))
    entries = [line[4:] for line in lines[start + 1:] if line.startswith("#   ")]
    assert len(entries) == count
    return dict(entry.split(": ", 1) for entry in entries)


def test_discover_leaves_out_what_a_plan_could_not_move_and_says_why(vault, vault_env, moto_server, tmp_path):
    """Secrets in the layout that are not one value, soft-deleted, without a value or
    named as text but binary: skipped with the reason (the summary counts them), so the
    discovered block plans only no-ops."""
    mount, prefix = fresh_mount(vault, 2), f"disc-{uuid.uuid4().hex[:8]}/"
    config = _project(tmp_path, {"corp_vault": _vault_manager(vault, mount), "aws": _aws_manager(moto_server, prefix)})
    _seed(config, "corp_vault")
    kv = hvac.Client(url=vault.url, token=vault.root_token).secrets.kv.v2
    kv.create_or_update_secret("SECRET_TEXT/two_fields", secret={"value": CANARY, "other": "o"}, mount_point=mount)
    kv.create_or_update_secret("CONFIG_FILE/not_base64", secret={"value": CANARY}, mount_point=mount)
    kv.create_or_update_secret("SECRET_TEXT/retired", secret={"value": CANARY}, mount_point=mount)
    kv.delete_latest_version_of_secret("SECRET_TEXT/retired", mount_point=mount)
    result = _discover(config, vault_env, "corp_vault")
    skipped = _skipped_comments(result.stdout)
    assert "fields besides \"value\" ('other')" in skipped[f"{mount}/SECRET_TEXT/two_fields"]
    assert "not valid base64" in skipped[f"{mount}/CONFIG_FILE/not_base64"]
    assert skipped[f"{mount}/SECRET_TEXT/retired"].startswith("its latest version is soft-deleted; undelete")
    assert f"{len(_seeded_ids())} secret(s) in manager 'corp_vault', 3 skipped" in result.err
    _merge(config, result.stdout)
    _assert_only_noops(_plan(config, vault_env), _seeded_ids())

    aws = moto_server.client()
    aws.create_secret(Name=f"{prefix}keep", SecretString=CANARY)
    aws.create_secret(Name=f"{prefix}no_value")
    aws.create_secret(Name=f"{prefix}bin_as_text", SecretBinary=b"\x00" + CANARY.encode())
    result = _discover(config, vault_env, "aws", "--migrate-to", "corp_vault")
    skipped = _skipped_comments(result.stdout)
    assert skipped[f"{prefix}no_value"].startswith("its current version holds no value")
    assert "stored as SecretBinary" in skipped[f"{prefix}bin_as_text"]
    assert "1 secret(s) in manager 'aws', 2 skipped" in result.err


def test_discover_leaves_out_a_name_another_manager_holds_with_another_value(vault, vault_env, moto_server,
                                                                               tmp_path):
    """An adopting entry names no source: where another manager holds the same name with
    another value, it would plan a conflict, so discover leaves it to the user; an equal
    copy elsewhere is adopted (it plans as a no-op)."""
    mount, prefix = fresh_mount(vault, 2), f"disc-{uuid.uuid4().hex[:8]}/"
    config = _project(tmp_path, {"corp_vault": _vault_manager(vault, mount), "aws": _aws_manager(moto_server, prefix)})
    _seed(config, "corp_vault")
    aws = moto_server.client()
    aws.create_secret(Name=f"{prefix}db_password", SecretString="another value")
    aws.create_secret(Name=f"{prefix}api.token-v2", SecretString=TEXTS["api.token-v2"])  # the same value
    result = _discover(config, vault_env, "corp_vault")
    skipped = _skipped_comments(result.stdout)
    assert list(skipped) == ["text secret 'db_password'"]
    assert skipped["text secret 'db_password'"].startswith("manager 'aws' holds another value under this name")
    _merge(config, result.stdout)
    _assert_only_noops(_plan(config, vault_env), _seeded_ids() - {("text", "db_password")})


# --------------------------------------------------------------------------- migrations: block

def test_discover_migrate_to_excludes_names_the_target_cannot_hold_and_the_migration_works(
        vault, vault_env, moto_server, tmp_path):
    mount = fresh_mount(vault, 2)
    prefix = f"disc-{uuid.uuid4().hex[:8]}/"
    config = _project(tmp_path, {"corp_vault": _vault_manager(vault, mount, "harness"),
                                 "aws": _aws_manager(moto_server, prefix)})
    texts = {**TEXTS, "has space": "v", "star*[x]": "w"}
    _seed(config, "corp_vault", texts=texts)
    result = _discover(config, vault_env, "corp_vault", "--migrate-to", "aws", "--mode", "move")
    doc = yaml.safe_load(result.stdout)
    assert doc["migrations"] == [{"from": "corp_vault", "to": "aws", "mode": "move", "kinds": ["file", "text"],
                                  "include": ["*"], "exclude": ["has space", "star[*][[]x[]]"]}]
    assert "manager 'aws' cannot hold this name" in result.stdout
    _merge(config, result.stdout)
    plan = _plan(config, vault_env)
    assert plan["errors"] == []
    assert {(a["kind"], a["name"]) for a in plan["actions"]} == _seeded_ids()
    assert {a["action"] for a in plan["actions"]} == {"move"}
    applied = run_cli(["apply", "--auto-approve"], config.parent, vault_env)
    assert applied.code == 0, applied
    client = moto_server.client()
    for name, text in TEXTS.items():
        assert client.get_secret_value(SecretId=prefix + name)["SecretString"] == text
    for name, data in FILES.items():
        assert client.get_secret_value(SecretId=f"{prefix}files/{name}")["SecretBinary"] == data
    with Workspace(config) as ws:  # the names AWS cannot hold stayed in Vault
        assert {s.name for s in ws.backend("corp_vault").list_ids()} == {"has space", "star*[x]"}


# --------------------------------------------------------------------------- multi-key Vault <-> AWS JSON

DB = {"username": "app", "password": CANARY + " \"quoted\" ünï 🔑 \\n\n\t end "}
API = {"key": "k-1", "region": "eu-west-1", "secret": CANARY + "{\"not\": \"json\"}"}


def test_multi_key_vault_secrets_go_to_aws_as_json_and_come_back_as_the_same_keys(
        vault, vault_env, moto_server, tmp_path):
    mount, back_mount = fresh_mount(vault, 2), fresh_mount(vault, 2)
    prefix = f"disc-{uuid.uuid4().hex[:8]}/"
    client = hvac.Client(url=vault.url, token=vault.root_token)
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="app/db", secret=DB, mount_point=mount)
    kv.create_or_update_secret(path="app/api", secret=API, mount_point=mount)
    kv.update_metadata(path="app/db", custom_metadata={"owner": "team-a", "description": "orders database"},
                       mount_point=mount)
    there = tmp_path / "out"
    there.mkdir()
    config = _project(there, {"corp_vault": _vault_manager(vault, mount), "aws": _aws_manager(moto_server, prefix)})

    # Vault -> AWS: each multi-key secret becomes one JSON SecretString, tagged
    result = _discover(config, vault_env, "corp_vault", "--migrate-to", "aws", "--mode", "move")
    doc = yaml.safe_load(result.stdout)
    assert doc["secrets"] == [
        {"name": "app_api", "kind": "text", "manager": "aws", "from": "corp_vault", "mode": "move", "vault_path": "app/api"},
        {"name": "app_db", "kind": "text", "manager": "aws", "from": "corp_vault", "mode": "move", "vault_path": "app/db"}]
    _merge(config, result.stdout)
    applied = run_cli(["apply", "--auto-approve"], there, vault_env)
    assert applied.code == 0, applied
    aws = moto_server.client()
    for name, data in (("app_db", DB), ("app_api", API)):
        stored = aws.get_secret_value(SecretId=prefix + name)["SecretString"]
        assert json.loads(stored) == data
        assert stored == json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    described = aws.describe_secret(SecretId=prefix + "app_db")
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags["secretshift:value-format"] == "vault-json-object"
    assert tags["secretshift:vault-path"] == "app/db"
    assert tags["owner"] == "team-a" and tags["secretshift:managed-by"] == "secretshift"
    assert described["Description"] == "orders database"
    with pytest.raises(hvac.exceptions.InvalidPath):  # moved: the Vault source is soft-deleted
        kv.read_secret_version(path="app/db", mount_point=mount, raise_on_deleted_version=True)
    again = _plan(config, vault_env)
    assert again["errors"] == [] and {a["action"] for a in again["actions"]} <= {"noop"}

    # AWS -> another Vault: the tagged JSON texts become multi-key secrets again
    back = tmp_path / "back"
    back.mkdir()
    config = _project(back, {"aws": _aws_manager(moto_server, prefix), "new_vault": _vault_manager(vault, back_mount)})
    result = _discover(config, vault_env, "aws", "--migrate-to", "new_vault")
    doc = yaml.safe_load(result.stdout)
    assert {(e["name"], e["vault_path"]) for e in doc["secrets"]} == {("app_db", "app/db"), ("app_api", "app/api")}
    assert "migrations" not in doc
    _merge(config, result.stdout)
    applied = run_cli(["apply", "--auto-approve"], back, vault_env)
    assert applied.code == 0, applied
    for path, data in (("app/db", DB), ("app/api", API)):
        assert kv.read_secret_version(path=path, mount_point=back_mount,
                                      raise_on_deleted_version=True)["data"]["data"] == data
    custom = kv.read_secret_metadata(path="app/db", mount_point=back_mount)["data"]["custom_metadata"]
    assert custom == {"owner": "team-a", "description": "orders database",
                      "secretshift:value-format": "vault-json-object"}
    final = run_cli(["plan", "--detailed-exitcode"], back, vault_env)
    assert final.code == 0, final


def test_a_vault_key_moves_alone_and_its_neighbours_stay(vault, vault_env, moto_server, tmp_path):
    mount = fresh_mount(vault, 2)
    prefix = f"disc-{uuid.uuid4().hex[:8]}/"
    kv = hvac.Client(url=vault.url, token=vault.root_token).secrets.kv.v2
    kv.create_or_update_secret(path="app/db", secret=DB, mount_point=mount)
    config = _project(tmp_path, {"corp_vault": _vault_manager(vault, mount), "aws": _aws_manager(moto_server, prefix)})
    doc = yaml.safe_load(config.read_text())
    doc["secrets"] = [{"name": "db_password", "manager": "aws", "from": "corp_vault", "mode": "move",
                       "vault_path": "app/db", "vault_key": "password"}]
    config.write_text(yaml.safe_dump(doc))
    plan = _plan(config, vault_env)
    assert [(a["action"], a["name"]) for a in plan["actions"]] == [("move", "db_password")]
    assert CANARY not in json.dumps(plan)
    applied = run_cli(["apply", "--auto-approve"], tmp_path, vault_env)
    assert applied.code == 0, applied
    assert moto_server.client().get_secret_value(SecretId=prefix + "db_password")["SecretString"] == DB["password"]
    left = kv.read_secret_version(path="app/db", mount_point=mount, raise_on_deleted_version=True)["data"]
    assert left["data"] == {"username": "app"} and left["metadata"]["version"] == 2
    # rollback puts the key back beside its neighbour
    undone = run_cli(["rollback", "--auto-approve"], tmp_path, vault_env)
    assert undone.code == 0, undone
    assert kv.read_secret_version(path="app/db", mount_point=mount, raise_on_deleted_version=True)["data"]["data"] == DB


def test_a_whole_secret_that_would_not_read_back_the_same_is_refused_before_any_write(vault, vault_env, tmp_path):
    """A builtin text bound for a whole Vault secret must be a canonical JSON object: one
    with spaces would fail its read-back halfway through the apply; it is refused by the
    staleness pass instead, and nothing is written, the other entry's key included."""
    mount = fresh_mount(vault, 2)
    config = _project(tmp_path, {"harness": {"type": "builtin", "path": "h.db", "key": {"file": "master.key"}},
                                 "corp_vault": _vault_manager(vault, mount)})
    _seed(config, "harness", texts={"jdoc": '{"password": "x", "user":"u"}', "jkey": CANARY}, files={})
    doc = yaml.safe_load(config.read_text())
    doc["secrets"] = [{"name": "jdoc", "manager": "corp_vault", "from": "harness", "vault_path": "app/j"},
                      {"name": "jkey", "manager": "corp_vault", "from": "harness", "vault_path": "app/k",
                       "vault_key": "password"}]
    config.write_text(yaml.safe_dump(doc))
    assert run_cli(["plan", "--out", "plan.json"], tmp_path, vault_env).code == 0
    applied = run_cli(["apply", "plan.json"], tmp_path, vault_env)
    assert applied.code == 1, applied
    assert "nothing was written" in applied.err and "not in canonical form" in applied.err, applied
    with Workspace(config) as ws:
        assert ws.backend("corp_vault").list_tree("app") == []
        assert {s.name for s in ws.backend("harness").list_ids()} == {"jdoc", "jkey"}


def test_vault_path_needs_a_vault_manager_in_the_entry(moto_server, tmp_path):
    config = _project(tmp_path, {"aws": _aws_manager(moto_server, "x/"),
                                 "harness": {"type": "builtin", "path": "h.db", "key": {"file": "master.key"}}})
    doc = yaml.safe_load(config.read_text())
    doc["secrets"] = [{"name": "db", "manager": "aws", "from": "harness", "vault_path": "app/db"}]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run_cli(["plan"], tmp_path, base_env())
    assert result.code == 1
    assert "secrets[0].vault_path needs a vault manager in `manager` or `from`" in result.err
    assert "secretshift.yaml:" in result.err


def test_vault_path_entries_and_history_load_into_the_typed_config(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "t")
    config = _project(tmp_path, {
        "v": {"type": "vault", "address": "http://127.0.0.1:8200", "token": {"env": "VAULT_TOKEN"}},
        "harness": {"type": "builtin", "path": "h.db", "key": {"file": "master.key"}}})
    doc = yaml.safe_load(config.read_text())
    doc["secrets"] = [{"name": "db_user", "manager": "harness", "from": "v", "vault_path": "/app/db/",
                       "vault_key": "username"},
                      {"name": "db", "manager": "v", "vault_path": "app/db"}]
    doc["migrations"] = [{"from": "harness", "to": "v", "mode": "copy", "history": "all"}]
    config.write_text(yaml.safe_dump(doc))
    with Workspace(config) as ws:
        placed = {p.name: (p.vault_path, p.vault_key) for p in ws.config.secrets}
        assert placed == {"db_user": ("/app/db/", "username"), "db": ("app/db", None)}
        assert [m.history for m in ws.config.migrations] == ["all"]
        vault = ws.backend("v")
        assert vault.location(SecretId(Kind.TEXT, "db_user")) == "secret/app/db#username"
        assert vault.location(SecretId(Kind.TEXT, "db")) == "secret/app/db"
        assert vault.location(SecretId(Kind.TEXT, "other")) == "secret/SECRET_TEXT/other"
        assert ws.backend("harness").location(SecretId(Kind.TEXT, "db_user")).endswith("text/db_user")


def test_discover_walks_a_kv1_mount_too(vault, vault_env, tmp_path):
    mount = fresh_mount(vault, 1)
    kv1 = hvac.Client(url=vault.url, token=vault.root_token).secrets.kv.v1
    kv1.create_or_update_secret(path="team/a/db", secret={"user": "u", "pass": CANARY}, mount_point=mount)
    manager = {**_vault_manager(vault, mount), "kv_version": 1}
    config = _project(tmp_path, {"old_vault": manager})
    _seed(config, "old_vault")
    result = _discover(config, vault_env, "old_vault")
    doc = yaml.safe_load(result.stdout)
    assert {e["name"]: e.get("vault_key") for e in doc["secrets"] if "vault_path" in e} == {
        "team_a_db_pass": "pass", "team_a_db_user": "user"}
    _merge(config, result.stdout)
    _assert_only_noops(_plan(config, vault_env), _seeded_ids() | {("text", "team_a_db_pass"), ("text", "team_a_db_user")})
    got = run_cli(["get", "old_vault", "team_a_db_pass"], config.parent, vault_env)
    assert got.out == CANARY.encode()
