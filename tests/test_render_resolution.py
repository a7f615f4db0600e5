"""render and refs resolve a reference from the first manager that still has a value,
not merely from the first that lists the name (an older Vault lists soft-deleted keys)."""

import base64
import os

from engine import commands
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

from conftest import fresh_mount


def test_a_listed_but_deleted_vault_key_does_not_hide_the_live_copy(tmp_path, vault, monkeypatch):
    mount = fresh_mount(vault, 2)
    monkeypatch.setenv("RESOLVE_TEST_TOKEN", vault.root_token)
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  old_vault: {{type: vault, address: "{vault.url}", token: {{env: RESOLVE_TEST_TOKEN}},
              secret_engine: {mount}, base_path: app}}
  store: {{type: builtin, path: store.db, key: {{file: master.key}}}}
""")
    with Workspace(config) as ws:
        ws.backend("store").write(SecretId(Kind.TEXT, "db"), SecretValue(b"live value"))
    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text('password: ${secrets.getValue("db")}\n')
    # Vault lists "db" (as Vaults before 2025 do for a soft-deleted key) but has no value for it
    vault.add_fault(status=200, path_regex=f"{mount}/metadata/app/SECRET_TEXT", method="LIST",
                    count=None, body={"data": {"keys": ["db"]}})
    try:
        assert commands.render(config, str(pipeline)) == b"password: live value\n"
        text, _ = commands.refs(config, [str(pipeline)], "json")
    finally:
        vault.clear_faults()
    assert '"resolves": true' in text
