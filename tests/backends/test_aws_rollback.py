"""Rollback of a move out of AWS Secrets Manager: the source is in its recovery window,
where AWS refuses writes, so rollback must restore it (RestoreSecret), not rewrite it."""

import base64
import os
import uuid

from engine import commands
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

from motoserver import REGION


class Quiet:
    color = False

    def out(self, text):
        pass

    def err(self, text):
        pass

    def ask(self, prompt):
        return True


def test_rollback_of_a_move_out_of_aws_restores_the_source(tmp_path, moto_server):
    prefix = f"rollback-{uuid.uuid4().hex[:8]}/"
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  aws: {{type: aws_secrets_manager, region: {REGION}, endpoint_url: "{moto_server.url}", prefix: "{prefix}"}}
  store: {{type: builtin, path: store.db, key: {{file: master.key}}}}
migrations:
  - {{from: aws, to: store, mode: move}}
""")
    values = {SecretId(Kind.TEXT, "db"): b"aws text", SecretId(Kind.FILE, "cert"): b"\x00aws file"}
    with Workspace(config) as ws:
        for secret, data in values.items():
            ws.backend("aws").write(secret, SecretValue(data))
    assert commands.apply(config, None, True, Quiet()) == 0
    assert commands.rollback(config, True, Quiet()) == 0
    with Workspace(config) as ws:
        aws, store = ws.backend("aws"), ws.backend("store")
        assert {s: aws.read(s).data for s in aws.list_ids()} == values
        assert store.list_ids() == []
