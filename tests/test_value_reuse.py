"""apply keeps the values its staleness check read (within a byte budget) so a copy
costs four requests per secret, and that reuse never writes over a change it did not see.

Why reuse is safe: the check reads every source and target before the first write. A
copy then writes the value the check read, whose fingerprint is the plan's: the result
is exactly the reviewed plan. A source edited after the check keeps its new value and
the next plan shows it (an edit one moment after the copy would look the same; no
client can tell the two apart). A target edited after the check is never overwritten:
KV v2 writes carry check-and-set on the version the check read, other managers are read
again before the write. A move reads its source again before writing, as without reuse.
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from pathlib import Path

import hvac
import pytest
from vaultsim import VaultServer

from engine.applier import apply_plan
from engine.errors import StalePlan
from engine.held import Held, HeldValues
from engine.journal import Journal, journal_key
from engine.model import SecretValue
from engine.planning import compute_plan
from engine.workspace import Workspace

COUNT = 12


@pytest.fixture
def server():
    with VaultServer(root_token="root") as srv:
        yield srv


def project(tmp_path: Path, server: VaultServer, mode: str = "copy", target_version: int = 2) -> Path:
    """Vault (KV v2, seeded with COUNT secrets) -> Vault, in `mode`."""
    server.enable_kv("src", version=2)
    server.enable_kv("dst", version=target_version)
    client = hvac.Client(url=server.url, token="root")
    for i in range(COUNT):
        client.secrets.kv.v2.create_or_update_secret(f"app/SECRET_TEXT/s{i:02d}", secret={"value": f"v{i}"},
                                                     mount_point="src")
    (tmp_path / "token").write_text("root")
    (tmp_path / "fp.key").write_text(base64.b64encode(os.urandom(32)).decode())
    vault = f'type: vault, address: "{server.url}", token: {{file: token}}, base_path: app'
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  old: {{{vault}, secret_engine: src, kv_version: 2}}
  new: {{{vault}, secret_engine: dst, kv_version: {target_version}}}
fingerprint_key: {{file: fp.key}}
migrations:
  - {{from: old, to: new, mode: {mode}}}
""")
    return config


def run_apply(config: Path, server: VaultServer, hold_bytes: int | None = None, meanwhile=lambda: None):
    """Plan, then apply that plan; `meanwhile()` runs after the staleness check and the
    preflight, before the first write. Returns the requests apply sent, by method."""
    with Workspace(config) as ws:
        plan = compute_plan(ws)
        server.reset_counts()

        def start_journal() -> Journal:
            meanwhile()
            return Journal.create(ws.journal_dir, "test-apply", journal_key(ws.fingerprint_key), plan, {})

        extra = {} if hold_bytes is None else {"hold_bytes": hold_bytes}
        apply_plan(plan, ws.backends(), ws.fingerprint, start_journal, **extra)
    return Counter(method for method, path, status in server.request_log if "/data/" in path)


def value_in(server: VaultServer, mount: str, name: str, version: int = 2) -> str | None:
    client = hvac.Client(url=server.url, token="root")
    try:
        if version == 2:
            return client.secrets.kv.v2.read_secret_version(f"app/SECRET_TEXT/{name}", mount_point=mount,
                                                            raise_on_deleted_version=True)["data"]["data"]["value"]
        return client.secrets.kv.v1.read_secret(f"app/SECRET_TEXT/{name}", mount_point=mount)["data"]["value"]
    except hvac.exceptions.InvalidPath:
        return None


def test_a_copy_costs_four_requests_per_secret(tmp_path, server):
    """Read source and target (the staleness check), write, read back."""
    config = project(tmp_path, server)
    sent = run_apply(config, server)
    assert sent == {"GET": 3 * COUNT, "POST": COUNT}
    assert [value_in(server, "dst", f"s{i:02d}") for i in range(COUNT)] == [f"v{i}" for i in range(COUNT)]


def test_beyond_the_byte_budget_actions_read_their_values_again(tmp_path, server):
    """No budget: every action reads source and target again (six requests a copy);
    the result is the same."""
    config = project(tmp_path, server)
    sent = run_apply(config, server, hold_bytes=0)
    assert sent == {"GET": 5 * COUNT, "POST": COUNT}
    assert [value_in(server, "dst", f"s{i:02d}") for i in range(COUNT)] == [f"v{i}" for i in range(COUNT)]


def test_a_move_reads_its_source_again_before_writing(tmp_path, server):
    config = project(tmp_path, server, mode="move")
    sent = run_apply(config, server)
    assert sent == {"GET": 4 * COUNT, "POST": COUNT, "DELETE": COUNT}
    assert [value_in(server, "src", f"s{i:02d}") for i in range(COUNT)] == [None] * COUNT


def test_a_source_edited_after_the_check_gets_the_planned_value_copied_and_the_next_plan_shows_it(
        tmp_path, server):
    config = project(tmp_path, server)
    client = hvac.Client(url=server.url, token="root")
    run_apply(config, server, meanwhile=lambda: client.secrets.kv.v2.create_or_update_secret(
        "app/SECRET_TEXT/s03", secret={"value": "edited"}, mount_point="src"))
    assert value_in(server, "dst", "s03") == "v3"  # what the plan showed, verified
    assert value_in(server, "src", "s03") == "edited"  # kept
    with Workspace(config) as ws:
        again = compute_plan(ws)
    flagged = {a.id.name for a in again.changes} | {e.id.name for e in again.errors if e.id}
    assert flagged == {"s03"}


@pytest.mark.parametrize("target_version", [2, 1], ids=["kv2-check-and-set", "kv1-read-again"])
def test_a_target_written_after_the_check_is_never_overwritten(tmp_path, server, target_version):
    config = project(tmp_path, server, target_version=target_version)
    client = hvac.Client(url=server.url, token="root")

    def someone_writes():
        if target_version == 2:
            client.secrets.kv.v2.create_or_update_secret("app/SECRET_TEXT/s05", secret={"value": "theirs"},
                                                         mount_point="dst")
        else:
            client.secrets.kv.v1.create_or_update_secret("app/SECRET_TEXT/s05", secret={"value": "theirs"},
                                                         mount_point="dst", method="POST")

    with pytest.raises(StalePlan, match="text secret 's05' changed in manager 'new' during apply"):
        run_apply(config, server, meanwhile=someone_writes)
    assert value_in(server, "dst", "s05", target_version) == "theirs"


def test_a_check_and_set_miss_on_our_own_landed_write_is_not_an_error(tmp_path, server):
    """The write reached Vault but its answer was lost: the retry's check-and-set misses
    (the version moved on); the target holds our value, so the action goes on."""
    config = project(tmp_path, server)
    server.add_fault(drop=True, handled=True, path_regex=r"^dst/data/app/SECRET_TEXT/s07$", method="POST", count=1)
    run_apply(config, server)
    assert value_in(server, "dst", "s07") == "v7"
    versions = hvac.Client(url=server.url, token="root").secrets.kv.v2.read_secret_metadata(
        "app/SECRET_TEXT/s07", mount_point="dst")["data"]["versions"]
    assert list(versions) == ["1"]  # written once


def test_held_values_stay_within_the_budget_and_are_released_when_taken():
    value = SecretValue(b"x" * 1000)
    held = HeldValues(budget=3 * Held(value, None).size)
    assert [held.offer(i, Held(value, None)) for i in range(5)] == [True, True, True, False, False]
    assert held.used == held.budget and held.refused == 2
    assert held.take(1) == Held(value, None)
    assert held.take(1) is None
    assert held.offer(9, Held(value, None)) is True  # room again
    assert len(held) == 3
    assert "x" * 10 not in repr(held.take(0))


def test_a_copied_secrets_metadata_comes_with_its_value_not_from_a_request_of_its_own(tmp_path, server):
    """KV v2 answers a data read with the version's custom_metadata: the copy carries the
    description and tags from there. Only secrets with metadata to write cost a metadata
    request (the target's, to merge into)."""
    config = project(tmp_path, server)
    client = hvac.Client(url=server.url, token="root")
    tagged = range(0, COUNT, 3)
    for i in tagged:
        client.secrets.kv.v2.update_metadata(f"app/SECRET_TEXT/s{i:02d}", mount_point="src",
                                             custom_metadata={"owner": f"team-{i}", "description": f"secret {i}"})
    run_apply(config, server)
    metadata_requests = Counter(method for method, path, _ in server.request_log if "/metadata/" in path)
    assert metadata_requests == {"GET": len(tagged), "POST": len(tagged)}
    for i in range(COUNT):
        custom = client.secrets.kv.v2.read_secret_metadata(f"app/SECRET_TEXT/s{i:02d}",
                                                           mount_point="dst")["data"]["custom_metadata"]
        assert custom == ({"owner": f"team-{i}", "description": f"secret {i}"} if i in tagged else None)
