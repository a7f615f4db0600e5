"""End to end migrations for every ordered pair of manager types (issue 3, item 8).

Every case builds its own project: a config with a source manager `src` and a target
manager `dst` over fresh storage (a new SQLite file, a new KV mount, a new AWS name
prefix on the session's moto server), seeds the source through its backend with a corpus
every manager can hold, then drives the use cases in-process like the CLI does:
`plan` (JSON counts and target locations), `apply --auto-approve`, a second plan with
`--detailed-exitcode` (no changes), and `rollback`. After each step both sides are checked
through the backend AND, for Vault and AWS, through plain hvac/boto3 against the contract
layout (DESIGN.md "Storage layouts"), so a backend that reads back its own mistakes
cannot hide them.
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from conftest import fresh_mount
from motoserver import REGION

from engine import commands
from engine.errors import PlanError
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

KINDS = ("builtin", "vault_kv1", "vault_kv2", "aws")
PAIRS = [(source, target) for source in KINDS for target in KINDS if source != target]
TOKEN_ENV = "E2E_PAIRS_VAULT_TOKEN"
FOLDERS = {Kind.TEXT: "SECRET_TEXT", Kind.FILE: "CONFIG_FILE"}

PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    + "\n".join(base64.b64encode(random.Random(1).randbytes(48)).decode() for _ in range(3))
    + "\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n"
    + "\n".join(base64.b64encode(random.Random(2).randbytes(48)).decode() for _ in range(2))
    + "\n-----END CERTIFICATE-----\n"
).encode()

# Every manager can hold all of these: AWS-safe names, 1 byte to 64 KiB, text is UTF-8.
CORPUS: dict[SecretId, bytes] = {
    SecretId(Kind.TEXT, "db_password"):
        'pa$$w0rd "double" \'single\' back\\slash \\n ünïcødé ✓ 🔑 ${secrets.getValue("x")}\n'.encode(),
    SecretId(Kind.TEXT, "api-token"): b"tok_$HOME`id`\t\\\\ end\n",
    SecretId(Kind.TEXT, "svc+ci@corp=1.x"): "Grüße, 中文, emoji 🚀".encode(),
    SecretId(Kind.FILE, "api-token"): b"\x00the file twin of the text api-token\x00\n",
    SecretId(Kind.FILE, "tls.chain"): PEM,
    SecretId(Kind.FILE, "keystore.p12"): b"\x00\x00" + bytes(range(256)) + bytes(range(255, -1, -1)) + b"\x00",
    SecretId(Kind.FILE, "big_40k.bin"): random.Random(40).randbytes(40 * 1024),
}


class Recorder:
    """A Console that keeps what was printed and approves nothing it is asked."""

    def __init__(self):
        self.lines, self.errors = [], []
        self.color = False

    def out(self, text):
        self.lines.append(text)

    def err(self, text):
        self.errors.append(text)

    def ask(self, prompt):
        return False


# --------------------------------------------------------------------------- one store per side

@dataclass
class Store:
    """One manager of the project, with a raw view of its storage (no secretshift code)."""

    kind: str
    manager_id: str
    yaml: str
    vault_client: hvac.Client | None = None
    mount: str = ""
    base: str = ""
    aws_client: object = None
    prefix: str = ""
    versions: dict = field(default_factory=dict)  # AWS: VersionId of each seeded secret

    @property
    def is_vault(self) -> bool:
        return self.kind.startswith("vault")

    def location(self, secret: SecretId) -> str:
        """The contract's target_location for a secret in this manager."""
        if self.is_vault:
            return f"{self.mount}/{self.base}/{FOLDERS[secret.kind]}/{secret.name}"
        if self.kind == "aws":
            return self.aws_name(secret)
        return f"{self.manager_id}.db:{secret.kind.value}/{secret.name}"

    def aws_name(self, secret: SecretId) -> str:
        return f"{self.prefix}{'files/' if secret.kind is Kind.FILE else ''}{secret.name}"

    # --- raw views -------------------------------------------------------------------

    def raw_holdings(self) -> dict[SecretId, bytes] | None:
        """What the storage holds in the contract layout, read without secretshift; every
        entry's shape is asserted on the way. None for builtin (its rows are sealed)."""
        if self.is_vault:
            return self._vault_holdings()
        if self.kind == "aws":
            return self._aws_holdings()
        return None

    def _vault_holdings(self) -> dict[SecretId, bytes]:
        kv = self.vault_client.secrets.kv.v2 if self.kind == "vault_kv2" else self.vault_client.secrets.kv.v1
        found = {}
        for kind, folder in FOLDERS.items():
            try:
                keys = kv.list_secrets(path=f"{self.base}/{folder}", mount_point=self.mount)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                continue
            for key in keys:
                assert not key.endswith("/"), f"unexpected folder {self.mount}/{self.base}/{folder}/{key}"
                try:
                    if self.kind == "vault_kv2":
                        data = kv.read_secret_version(path=f"{self.base}/{folder}/{key}", mount_point=self.mount,
                                                      raise_on_deleted_version=True)["data"]["data"]
                    else:
                        data = kv.read_secret(path=f"{self.base}/{folder}/{key}", mount_point=self.mount)["data"]
                except hvac.exceptions.InvalidPath:
                    continue  # KV v2: the current version is soft-deleted
                if kind is Kind.TEXT:
                    assert set(data) == {"value"}, data.keys()
                    found[SecretId(kind, key)] = data["value"].encode("utf-8")
                else:
                    assert set(data) == {"value", "encoding"} and data["encoding"] == "base64", data.keys()
                    found[SecretId(kind, key)] = base64.b64decode(data["value"], validate=True)
        return found

    def aws_entries(self, include_planned_deletion: bool = False) -> dict[str, dict]:
        """ListSecrets entries under this prefix, by AWS name."""
        params = {"IncludePlannedDeletion": True} if include_planned_deletion else {}
        entries = {}
        for page in self.aws_client.get_paginator("list_secrets").paginate(**params):
            for entry in page["SecretList"]:
                if entry["Name"].startswith(self.prefix):
                    entries[entry["Name"]] = entry
        return entries

    def _aws_holdings(self) -> dict[SecretId, bytes]:
        found = {}
        for name, entry in self.aws_entries().items():
            assert not entry.get("DeletedDate"), entry
            rest = name[len(self.prefix):]
            kind = Kind.FILE if rest.startswith("files/") else Kind.TEXT
            secret = SecretId(kind, rest.removeprefix("files/"))
            reply = self.aws_client.get_secret_value(SecretId=name)
            if kind is Kind.TEXT:
                assert "SecretBinary" not in reply, name
                found[secret] = reply["SecretString"].encode("utf-8")
            else:
                assert "SecretString" not in reply, name
                found[secret] = reply["SecretBinary"]
        return found

    def aws_versions(self) -> dict[SecretId, str]:
        """The AWSCURRENT VersionId of every corpus secret present (scheduled ones included)."""
        versions = {}
        for secret in CORPUS:
            try:
                versions[secret] = self.aws_client.describe_secret(SecretId=self.aws_name(secret))
            except self.aws_client.exceptions.ResourceNotFoundException:
                continue
        return {s: next(v for v, stages in d["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
                for s, d in versions.items()}


@dataclass
class Project:
    root: Path
    config: Path
    src: Store
    dst: Store
    ws: Workspace  # the test's own view through secretshift's backends (the commands open theirs)

    def holdings(self, *stores: Store) -> list[dict[SecretId, bytes]]:
        """What each manager holds, through secretshift's backend."""
        found = []
        for store in stores:
            backend = self.ws.backend(store.manager_id)
            values = {s: backend.read(s) for s in backend.list_ids()}
            found.append({s: v.data for s, v in values.items() if v is not None})
        return found

    def assert_holds(self, src: dict[SecretId, bytes], dst: dict[SecretId, bytes]) -> None:
        """Each manager holds exactly what is expected, through the backend and the raw layout."""
        for store, expected, held in zip((self.src, self.dst), (src, dst), self.holdings(self.src, self.dst)):
            assert held == expected, f"{store.kind} ({store.manager_id}) through the backend"
            raw = store.raw_holdings()
            if raw is not None:
                assert raw == expected, f"{store.kind} ({store.manager_id}) read raw"

    def plan(self, detailed: bool = False) -> tuple[dict, int]:
        text, code = commands.plan(self.config, "json", detailed_exitcode=detailed)
        return json.loads(text), code

    def apply(self) -> int:
        return commands.apply(self.config, None, True, Recorder())

    def rollback(self) -> int:
        return commands.rollback(self.config, True, Recorder())


def make_store(kind: str, manager_id: str, request, tmp_path: Path) -> Store:
    if kind == "builtin":
        return Store(kind, manager_id, f"{{type: builtin, path: {manager_id}.db, key: {{file: master.key}}}}")
    if kind.startswith("vault"):
        vault = request.getfixturevalue("vault")
        mount = fresh_mount(vault, 2 if kind == "vault_kv2" else 1)
        base = f"e2e/{manager_id}"
        yaml = (f'{{type: vault, address: "{vault.url}", token: {{env: {TOKEN_ENV}}}, '
                f"secret_engine: {mount}, base_path: {base}, kv_version: auto, retries: 0}}")
        return Store(kind, manager_id, yaml, vault_client=hvac.Client(url=vault.url, token=vault.root_token),
                     mount=mount, base=base)
    server = request.getfixturevalue("moto_server")
    prefix = f"e2e-{uuid.uuid4().hex[:10]}/{manager_id}/"
    yaml = (f'{{type: aws_secrets_manager, region: {REGION}, endpoint_url: "{server.url}", '
            f'prefix: "{prefix}", recovery_window_days: 7}}')
    return Store(kind, manager_id, yaml, aws_client=server.client(), prefix=prefix)


def make_project(source: str, target: str, mode: str, request, tmp_path: Path, monkeypatch,
                 corpus: dict[SecretId, bytes]) -> Project:
    if "vault" in (source[:5], target[:5]):
        monkeypatch.setenv(TOKEN_ENV, request.getfixturevalue("vault").root_token)
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    src = make_store(source, "src", request, tmp_path)
    dst = make_store(target, "dst", request, tmp_path)
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  src: {src.yaml}
  dst: {dst.yaml}
migrations:
  - {{from: src, to: dst, mode: {mode}}}
""")
    ws = Workspace(config)
    request.addfinalizer(lambda: ws.__exit__(None, None, None))
    backend = ws.backend("src")
    for secret, data in corpus.items():
        backend.write(secret, SecretValue(data))
    if src.kind == "aws":
        src.versions = src.aws_versions()
    return Project(tmp_path, config, src, dst, ws)


def _summary(**counts) -> dict:
    return {"move": 0, "copy": 0, "update": 0, "delete": 0, "noop": 0, "errors": 0} | counts


# --------------------------------------------------------------------------- every pair, both modes

@pytest.mark.parametrize("mode", ["move", "copy"])
@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_migration_between_every_pair_round_trips_and_rolls_back(source, target, mode, request,
                                                                 tmp_path, monkeypatch):
    project = make_project(source, target, mode, request, tmp_path, monkeypatch, CORPUS)
    src, dst = project.src, project.dst
    n = len(CORPUS)
    project.assert_holds(CORPUS, {})

    # plan: one action per secret, at the contract location, nothing written yet
    doc, code = project.plan()
    assert code == 0, doc
    assert doc["errors"] == []
    assert doc["summary"] == _summary(**{mode: n})
    assert sorted((a["kind"], a["name"]) for a in doc["actions"]) == sorted((s.kind.value, s.name) for s in CORPUS)
    for action in doc["actions"]:
        secret = SecretId(Kind(action["kind"]), action["name"])
        assert (action["action"], action["from"], action["to"]) == (mode, "src", "dst"), action
        assert action["target_location"] == dst.location(secret), action
    assert json.dumps(doc).find("pa$$w0rd") == -1  # a plan never holds values
    project.assert_holds(CORPUS, {})

    # apply: every byte lands in the contract layout; the source is emptied or unchanged
    assert project.apply() == 0
    project.assert_holds({} if mode == "move" else CORPUS, CORPUS)
    # a moved-out source was deleted recoverably (KV v1 has no recoverable delete)
    if src.kind == "aws":
        scheduled = {n for n, e in src.aws_entries(include_planned_deletion=True).items() if e.get("DeletedDate")}
        assert scheduled == ({src.aws_name(s) for s in CORPUS} if mode == "move" else set())
        if mode == "copy":
            assert src.aws_versions() == src.versions  # not even a new version
    if src.kind == "builtin":
        history = {s: [v.deleted for v in project.ws.backend("src").history(s)] for s in CORPUS}
        assert history == {s: [False, True] if mode == "move" else [False] for s in CORPUS}
    if src.kind == "vault_kv2":
        kv2 = src.vault_client.secrets.kv.v2
        for secret in CORPUS:
            meta = kv2.read_secret_metadata(path=f"{src.base}/{FOLDERS[secret.kind]}/{secret.name}",
                                            mount_point=src.mount)["data"]
            assert meta["current_version"] == 1, secret
            assert meta["versions"]["1"]["destroyed"] is False, secret
            assert bool(meta["versions"]["1"]["deletion_time"]) is (mode == "move"), secret

    # a second plan has no changes
    again, code = project.plan(detailed=True)
    assert code == 0, again
    assert again["errors"] == []
    assert again["summary"] == (_summary() if mode == "move" else _summary(noop=n))

    # rollback: the source holds everything again, the target nothing of ours
    assert project.rollback() == 0
    project.assert_holds(CORPUS, {})
    if src.kind == "aws":  # restored (RestoreSecret), not rewritten: the very same versions
        assert src.aws_versions() == src.versions
        assert not any(e.get("DeletedDate") for e in src.aws_entries(include_planned_deletion=True).values())
    if dst.kind == "aws":  # what the apply created is only scheduled for deletion
        entries = dst.aws_entries(include_planned_deletion=True)
        assert set(entries) == {dst.aws_name(s) for s in CORPUS}
        assert all(e.get("DeletedDate") for e in entries.values())
        assert dst.aws_entries() == {}


# --------------------------------------------------------------------------- refused by the target's rules

REFUSALS = [
    # (source, target, the refused secret, its value, the plan error code)
    ("builtin", "aws", SecretId(Kind.FILE, "huge_70k.bin"), random.Random(70).randbytes(70 * 1024), "too_large"),
    ("vault_kv1", "aws", SecretId(Kind.FILE, "huge_70k.bin"), random.Random(70).randbytes(70 * 1024), "too_large"),
    ("builtin", "aws", SecretId(Kind.TEXT, "db password"), b"spaced out", "invalid_name"),
    ("vault_kv2", "aws", SecretId(Kind.TEXT, "db password"), b"spaced out", "invalid_name"),
    ("builtin", "vault_kv2", SecretId(Kind.FILE, "huge_2m.bin"), random.Random(2).randbytes(2 * 1024 * 1024), "too_large"),
    ("builtin", "vault_kv1", SecretId(Kind.FILE, "huge_2m.bin"), random.Random(2).randbytes(2 * 1024 * 1024), "too_large"),
]


@pytest.mark.parametrize("mode", ["move", "copy"])
@pytest.mark.parametrize(("source", "target", "secret", "data", "code"), REFUSALS,
                         ids=[f"{s}-to-{t}-{c}-{x.name.replace(' ', '_')}" for s, t, x, _, c in REFUSALS])
def test_a_secret_the_target_cannot_hold_is_a_plan_error_and_nothing_is_written(
        source, target, secret, data, code, mode, request, tmp_path, monkeypatch):
    corpus = CORPUS | {secret: data}
    project = make_project(source, target, mode, request, tmp_path, monkeypatch, corpus)
    src, dst = project.src, project.dst

    doc, exit_code = project.plan()
    assert exit_code == 1, doc
    assert [(e["code"], e["kind"], e["name"]) for e in doc["errors"]] == [(code, secret.kind.value, secret.name)]
    assert doc["summary"]["errors"] == 1
    assert doc["summary"][mode] == len(CORPUS)  # the others are still planned...

    with pytest.raises(PlanError, match=code):  # ...but a plan with errors is never applied
        project.apply()
    project.assert_holds(corpus, {})
    if src.kind == "aws":
        assert src.aws_versions() == src.versions
    if dst.kind == "aws":
        assert dst.aws_entries(include_planned_deletion=True) == {}
    if dst.kind == "vault_kv2":  # not even a soft-deleted version was written
        with pytest.raises(hvac.exceptions.InvalidPath):
            dst.vault_client.secrets.kv.v2.list_secrets(path=dst.base, mount_point=dst.mount)
