"""A realistic AWS account moved into Vault and back, through the installed command.

Real accounts name secrets in folders (`prod/payments/db-password`), hold text and
binary values, a few values over the 64 KiB AWS allows (moto accepts them; accounts
migrated from elsewhere may hold them too) and a secret in its recovery window.
`discover` writes the migration, `apply` carries it into Vault (folders become Vault
sub-folders of the layout), and a migration back into AWS under another prefix brings
every value home byte for byte, after the plan has named what AWS cannot hold.
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid

import hvac
import yaml
from clihelp import base_env, run_cli
from conftest import fresh_mount

from .test_discover import CANARY, _aws_manager, _merge, _project, _vault_manager

FOLDERS = ["prod/payments", "prod/api", "staging/api", "shared/tls", "ci", "team-a/svc.v2"]


def _account(seed: int = 7) -> dict[str, tuple[str, bytes]]:
    """{AWS name without prefix: ("text" | "binary", bytes)}: 240 secrets in folders,
    names with every character AWS allows, values from 1 byte to 16 KiB."""
    rng = random.Random(seed)
    made = {}
    for i in range(240):
        folder = FOLDERS[i % len(FOLDERS)]
        leaf = rng.choice(["db-password", "api_key", "token", "user@corp", "a+b=c", "cert.pem"]) + f"-{i}"
        size = int(16384 ** rng.random())
        if i % 4 == 0:
            made[f"{folder}/{leaf}"] = ("binary", bytes([0, 255]) + os.urandom(size))
        else:
            text = "".join(rng.choice("abcXYZ019 $\"'\\ü🔑\n") for _ in range(size)) + CANARY
            made[f"{folder}/{leaf}"] = ("text", text.encode())
    return made


def _create(client, prefix: str, name: str, kind: str, data: bytes) -> None:
    if kind == "binary":
        client.create_secret(Name=f"{prefix}files/{name}", SecretBinary=data)
    else:
        client.create_secret(Name=prefix + name, SecretString=data.decode())


def _vault_bytes(client: hvac.Client, mount: str, folder: str, name: str) -> bytes:
    data = client.secrets.kv.v2.read_secret_version(path=f"{folder}/{name}", mount_point=mount,
                                                     raise_on_deleted_version=True)["data"]["data"]
    return base64.b64decode(data["value"]) if data.get("encoding") == "base64" else data["value"].encode()


def _aws_bytes(client, prefix: str, name: str, kind: str) -> bytes:
    if kind == "binary":
        return client.get_secret_value(SecretId=f"{prefix}files/{name}")["SecretBinary"]
    return client.get_secret_value(SecretId=prefix + name)["SecretString"].encode()


def _json(result) -> dict:
    assert CANARY not in result.stdout and CANARY not in result.err
    return json.loads(result.stdout)


def test_an_aws_account_moves_into_vault_and_back_byte_for_byte(vault, moto_server, tmp_path):
    prefix, home = f"acct-{uuid.uuid4().hex[:8]}/", f"home-{uuid.uuid4().hex[:8]}/"
    mount = fresh_mount(vault, 2)
    env = base_env(VAULT_TOKEN=vault.root_token)
    aws = moto_server.client()
    account = _account()
    for name, (kind, data) in account.items():
        _create(aws, prefix, name, kind, data)
    too_big = {"prod/api/huge-json": ("text", b"{" + b"x" * 70_000 + b"}"),
               "shared/tls/huge.p12": ("binary", b"\x00" * 65_537)}
    for name, (kind, data) in too_big.items():
        _create(aws, prefix, name, kind, data)
    _create(aws, prefix, "prod/retired-key", "text", b"old")
    aws.delete_secret(SecretId=f"{prefix}prod/retired-key", RecoveryWindowInDays=7)
    everything = {**account, **too_big}

    config = _project(tmp_path, {"aws": _aws_manager(moto_server, prefix),
                                 "corp_vault": _vault_manager(vault, mount, "harness"),
                                 "home": _aws_manager(moto_server, home)})
    found = run_cli(["discover", "aws", "--migrate-to", "corp_vault", "--mode", "move"], tmp_path, env)
    assert found.code == 0, found
    assert f"{prefix}prod/retired-key: it is pending deletion until" in found.stdout
    assert f"{len(everything)} secret(s) in manager 'aws', 1 skipped" in found.err
    _merge(config, found.stdout)

    plan = _json(run_cli(["plan", "--format", "json", "--out", "in.json"], tmp_path, env))
    assert plan["errors"] == []
    assert plan["summary"]["move"] == len(everything)
    locations = {(a["kind"], a["name"]): a["target_location"] for a in plan["actions"]}
    first = next(iter(account))  # a binary one, in prod/payments/
    assert locations[("file", first)] == f"{mount}/harness/CONFIG_FILE/{first}"
    applied = run_cli(["apply", "in.json"], tmp_path, env)
    assert applied.code == 0, applied

    client = hvac.Client(url=vault.url, token=vault.root_token)
    for name, (kind, data) in everything.items():
        folder = "harness/CONFIG_FILE" if kind == "binary" else "harness/SECRET_TEXT"
        assert _vault_bytes(client, mount, folder, name) == data, name
    assert aws.describe_secret(SecretId=f"{prefix}files/{first}").get("DeletedDate")
    again = run_cli(["plan", "--detailed-exitcode"], tmp_path, env)
    assert again.code == 0, again  # no changes

    # back into AWS, under another prefix: what AWS cannot hold is a plan error, nothing written
    doc = yaml.safe_load(config.read_text())
    doc["migrations"] = [{"from": "corp_vault", "to": "home", "mode": "move"}]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    refused = _json(run_cli(["plan", "--format", "json"], tmp_path, env))
    assert sorted((e["code"], e["name"]) for e in refused["errors"]) == [
        ("too_large", "prod/api/huge-json"), ("too_large", "shared/tls/huge.p12")]
    assert run_cli(["apply", "--auto-approve"], tmp_path, env).code == 1
    listed = [s["Name"] for page in aws.get_paginator("list_secrets").paginate(IncludePlannedDeletion=True) for s in page["SecretList"]]
    assert len(listed) > len(everything) and not [n for n in listed if n.startswith(home)]

    doc["migrations"][0]["exclude"] = list(too_big)
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    back = run_cli(["apply", "--auto-approve"], tmp_path, env)
    assert back.code == 0, back
    for name, (kind, data) in account.items():
        assert _aws_bytes(aws, home, name, kind) == data, name
    for name, (kind, data) in too_big.items():  # stayed in Vault, whole
        folder = "harness/CONFIG_FILE" if kind == "binary" else "harness/SECRET_TEXT"
        assert _vault_bytes(client, mount, folder, name) == data, name
    final = run_cli(["plan", "--detailed-exitcode"], tmp_path, env)
    assert final.code == 0, final
