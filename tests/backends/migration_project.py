"""A throw-away secretshift project for the AWS-rules, soft-delete and name-mapping
suites: a config over fresh stores (a builtin file, a new KV mount on the session's
Vault, a new name prefix on the session's moto server), driven in-process through the
same use cases the CLI calls, with raw hvac/boto3 clients to look behind secretshift.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import hvac
from conftest import fresh_mount
from motoserver import REGION

from engine import commands
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

TOKEN_ENV = "AWS_RULES_VAULT_TOKEN"


class Quiet:
    """A Console that keeps what was printed and approves nothing it is asked."""

    color = False

    def __init__(self):
        self.lines: list[str] = []

    def out(self, text):
        self.lines.append(text)

    def err(self, text):
        self.lines.append(text)

    def ask(self, prompt):
        return False


@dataclass
class Manager:
    """One manager of the project: its YAML and raw access to its storage."""

    kind: str
    id: str
    yaml: str
    vault: hvac.Client | None = None
    mount: str = ""
    base: str = ""
    aws: object = None
    prefix: str = ""

    def aws_name(self, name: str, kind: Kind = Kind.TEXT) -> str:
        return f"{self.prefix}{'files/' if kind is Kind.FILE else ''}{name}"

    def aws_state(self) -> dict[str, tuple]:
        """Every AWS secret under the prefix: (versions with their stages, DeletedDate)."""
        pages = self.aws.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [self.prefix]}], IncludePlannedDeletion=True)
        state = {}
        for entry in (e for page in pages for e in page["SecretList"] if e["Name"].startswith(self.prefix)):
            versions = self.aws.list_secret_version_ids(SecretId=entry["Name"], IncludeDeprecated=True)["Versions"]
            state[entry["Name"]] = (sorted((v["VersionId"], tuple(v.get("VersionStages", []))) for v in versions),
                                    entry.get("DeletedDate"))
        return state

    def vault_state(self) -> dict[str, dict]:
        """Every KV v2 key under the base path with its version metadata."""
        state = {}
        for folder in ("SECRET_TEXT", "CONFIG_FILE"):
            try:
                keys = self.vault.secrets.kv.v2.list_secrets(f"{self.base}/{folder}", mount_point=self.mount)
            except hvac.exceptions.InvalidPath:
                continue
            for key in keys["data"]["keys"]:
                meta = self.vault.secrets.kv.v2.read_secret_metadata(f"{self.base}/{folder}/{key}",
                                                                     mount_point=self.mount)
                state[f"{folder}/{key}"] = meta["data"]["versions"]
        return state


def make_manager(kind: str, manager_id: str, request, extra: str = "") -> Manager:
    """A manager of that kind ("builtin", "vault_kv2", "aws") over fresh storage."""
    if kind == "builtin":
        return Manager(kind, manager_id, f"{{type: builtin, path: {manager_id}.db, key: {{file: master.key}}{extra}}}")
    if kind == "vault_kv2":
        vault = request.getfixturevalue("vault")
        mount = fresh_mount(vault, 2)
        yaml = (f'{{type: vault, address: "{vault.url}", token: {{env: {TOKEN_ENV}}}, secret_engine: {mount}, '
                f"base_path: harness, kv_version: 2, retries: 0{extra}}}")
        return Manager(kind, manager_id, yaml, vault=hvac.Client(url=vault.url, token=vault.root_token),
                       mount=mount, base="harness")
    server = request.getfixturevalue("moto_server")
    prefix = f"rules-{uuid.uuid4().hex[:10]}/{manager_id}/"
    yaml = (f'{{type: aws_secrets_manager, region: {REGION}, endpoint_url: "{server.url}", '
            f'prefix: "{prefix}", recovery_window_days: 7{extra}}}')
    return Manager(kind, manager_id, yaml, aws=server.client(), prefix=prefix)


@dataclass
class Project:
    """Managers `src` and `dst` and the rest of the config (`secrets:`/`migrations:` YAML)."""

    folder: Path
    src: Manager
    dst: Manager
    body: str
    workspaces: list = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.folder / "secretshift.yaml"

    def write_config(self, body: str | None = None) -> None:
        self.body = self.body if body is None else body
        self.config.write_text(f"version: 1\nmanagers:\n  src: {self.src.yaml}\n  dst: {self.dst.yaml}\n"
                               f"{self.body}")

    def backend(self, manager: str):
        """The manager's backend, built from the config as commands build it."""
        ws = Workspace(self.config)
        self.workspaces.append(ws)
        return ws.backend(manager)

    def put(self, manager: str, name: str, data: bytes | str, kind: Kind = Kind.TEXT) -> None:
        value = SecretValue.from_text(data) if isinstance(data, str) else SecretValue(data)
        self.backend(manager).write(SecretId(kind, name), value)

    def read(self, manager: str, name: str, kind: Kind = Kind.TEXT):
        return self.backend(manager).read(SecretId(kind, name))

    def plan(self) -> tuple[dict, int]:
        text, code = commands.plan(self.config, "json")
        return json.loads(text), code

    def plan_text(self, fmt: str = "text") -> str:
        return commands.plan(self.config, fmt)[0]

    def apply(self) -> int:
        return commands.apply(self.config, None, True, Quiet())

    def close(self) -> None:
        for ws in self.workspaces:
            ws.__exit__(None, None, None)


def make_project(request, tmp_path: Path, monkeypatch, source: str, target: str, body: str,
                 src_extra: str = "", dst_extra: str = "") -> Project:
    """A project whose config has managers `src` (source kind) and `dst` (target kind)."""
    if "vault_kv2" in (source, target):
        monkeypatch.setenv(TOKEN_ENV, request.getfixturevalue("vault").root_token)
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    project = Project(tmp_path, make_manager(source, "src", request, src_extra),
                      make_manager(target, "dst", request, dst_extra), body)
    project.write_config()
    request.addfinalizer(project.close)
    return project
