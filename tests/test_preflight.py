"""A token that may not write the target shows up in the plan as read_only errors,
secret by secret, before anyone approves it (invariant 3)."""

import base64
import os

import pytest

from engine import commands
from engine.errors import ReadOnlyManager
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

from conftest import fresh_mount


@pytest.fixture
def workspace(tmp_path, vault):
    mount = fresh_mount(vault, 2)
    vault.set_policy(f"{mount}-ro", f'path "{mount}/*" {{ capabilities = ["read", "list"] }}')
    vault.set_policy(f"{mount}-texts", f'path "{mount}/data/harness/SECRET_TEXT/*" '
                                        f'{{ capabilities = ["create", "update", "read"] }}\n'
                                        f'path "{mount}/data/*" {{ capabilities = ["read"] }}\n'
                                        f'path "{mount}/metadata/*" {{ capabilities = ["list"] }}')
    tokens = {"ro": vault.create_token(policies=[f"{mount}-ro"]),
              "texts": vault.create_token(policies=[f"{mount}-texts"])}
    for name, token in tokens.items():
        (tmp_path / f"{name}.token").write_text(token)
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())

    def make(token: str) -> Workspace:
        (tmp_path / "secretshift.yaml").write_text(f"""version: 1
managers:
  harness: {{type: builtin, path: h.db, key: {{file: master.key}}}}
  vault: {{type: vault, address: "{vault.url}", token: {{file: {token}.token}},
          secret_engine: {mount}, base_path: harness}}
migrations:
  - {{from: harness, to: vault, mode: copy}}
""")
        return Workspace(tmp_path / "secretshift.yaml")

    with make("ro") as ws:
        ws.backend("harness").write(SecretId(Kind.TEXT, "db"), SecretValue(b"pw"))
        ws.backend("harness").write(SecretId(Kind.FILE, "kube"), SecretValue(b"\x00cfg"))
    return make


def test_read_only_token_makes_every_write_a_plan_error(workspace):
    with workspace("ro") as ws:
        plan = commands.compute_plan(ws)
    assert sorted((e.code, e.id.name) for e in plan.errors) == [("read_only", "db"), ("read_only", "kube")]
    assert all("lacks the 'create' capability" in e.message for e in plan.errors)


def test_token_allowed_on_some_paths_only_errors_on_the_others(workspace):
    with workspace("texts") as ws:
        plan = commands.compute_plan(ws)
    assert [(e.code, e.id.kind.value, e.id.name) for e in plan.errors] == [("read_only", "file", "kube")]
    assert "CONFIG_FILE/kube" in plan.errors[0].message


def test_a_plan_made_with_a_read_only_token_for_a_write_token_to_apply(workspace, tmp_path, vault):
    """CI plans with a token that only reads (`plan --no-write-check`); the apply job's
    token is checked by apply itself, and one that cannot write is refused before any
    write."""
    with workspace("ro") as ws:
        plan = commands.compute_plan(ws, write_check=False)
    assert list(plan.errors) == []
    assert sorted((a.action, a.id.name) for a in plan.changes) == [("copy", "db"), ("copy", "kube")]
    text, code = commands.plan(tmp_path / "secretshift.yaml", "json", str(tmp_path / "plan.json"),
                               detailed_exitcode=True, write_check=False)
    assert code == 2, text
    with pytest.raises(ReadOnlyManager, match="lacks the 'create' capability"):
        commands.apply(tmp_path / "secretshift.yaml", str(tmp_path / "plan.json"), True, _Quiet())
    with workspace("ro") as ws:
        assert ws.backend("vault").list_ids() == []


class _Quiet:
    color = False

    def out(self, text):
        pass

    def err(self, text):
        pass

    def ask(self, prompt):
        return False
