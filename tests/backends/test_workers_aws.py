"""A move out of AWS Secrets Manager into Vault split over two worker processes: each
worker talks to moto's server and the Vault simulator over connections of its own (a
botocore client made after the fork), and the source is only scheduled for deletion
once its copy was read back."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import fresh_mount
from motoserver import REGION

from engine import workers
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

SECRETSHIFT = Path(sys.executable).parent / "secretshift"


def test_an_aws_to_vault_move_split_over_two_workers_moves_every_byte(tmp_path, moto_server, vault, monkeypatch):
    monkeypatch.setenv("WORKERS_AWS_VAULT_TOKEN", vault.root_token)
    mount = fresh_mount(vault, 2)
    prefix = f"workers-{uuid.uuid4().hex[:8]}/"
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  aws: {{type: aws_secrets_manager, region: {REGION}, endpoint_url: "{moto_server.url}", prefix: "{prefix}",
        recovery_window_days: 7, parallelism: 4}}
  corp_vault: {{type: vault, address: "{vault.url}", token: {{env: WORKERS_AWS_VAULT_TOKEN}}, secret_engine: {mount},
               base_path: moved, parallelism: 4}}
migrations:
  - {{from: aws, to: corp_vault, mode: move}}
""")
    expected = {SecretId(Kind.TEXT, f"text-{i:02}"): f"value {i} ✓".encode() for i in range(12)}
    expected |= {SecretId(Kind.FILE, f"file-{i:02}.bin"): bytes([i, 0, 255]) + os.urandom(32) for i in range(12)}
    with Workspace(config) as ws:
        for secret, data in expected.items():
            ws.backend("aws").write(secret, SecretValue(data))

    run = subprocess.run([str(SECRETSHIFT), "-c", str(config), "apply", "--auto-approve"],
                         env={**os.environ, workers.PROCESSES_ENV: "2"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("done, verified") == len(expected)
    with Workspace(config) as ws:
        target, source = ws.backend("corp_vault"), ws.backend("aws")
        assert {s: target.read(s).data for s in target.list_ids()} == expected
        assert source.list_ids() == []
    scheduled = [entry for page in moto_server.client().get_paginator("list_secrets").paginate(
        IncludePlannedDeletion=True) for entry in page["SecretList"] if entry["Name"].startswith(prefix)]
    assert len(scheduled) == len(expected) and all(entry.get("DeletedDate") for entry in scheduled)
