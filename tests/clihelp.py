"""Shared set-up for the CLI suites: run the INSTALLED `secretshift` command in a
subprocess, inside a throw-away project folder, and look at every store directly.

A project folder holds `secretshift.yaml`, `master.key` (base64 of 32 random bytes) and
`stores/harness.db`; the Vault token reaches the command only through the `VAULT_TOKEN`
environment variable of the subprocess (`token: {env: VAULT_TOKEN}`).

The builtin store is seeded through `secretshift put` once per session (`seeded_template`)
and copied into each project: a `put` costs a whole process start, and the suites must
stay fast. Stores are checked without the CLI: the builtin one through the backend class
(values and version history), Vault through raw `hvac` (exact API paths and JSON data).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import yaml

from engine.backends.builtin import BuiltinBackend
from engine.model import Kind, SecretId, SecretValue

SECRETSHIFT = Path(sys.executable).parent / "secretshift"
if not SECRETSHIFT.exists():  # an interpreter outside the venv that installed the command
    SECRETSHIFT = Path(shutil.which("secretshift") or "secretshift")

FOLDERS = {"text": "SECRET_TEXT", "file": "CONFIG_FILE"}
SOURCE, TARGET = "harness", "corp_vault"
RUN_TIMEOUT = 60


# --------------------------------------------------------------------------- the corpus

@dataclass(frozen=True)
class Secret:
    """One seeded secret: its kind, name and exact bytes."""

    kind: str
    name: str
    data: bytes

    @property
    def id(self) -> tuple[str, str]:
        return (self.kind, self.name)


def _pem(label: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode()
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def make_corpus() -> list[Secret]:
    """Over two dozen secrets of every shape secretshift must carry byte for byte."""
    texts = {
        "db_password": "fake-Pg-pa55word-2026",
        "stripe_api_key": "sk_test_$HOME_${NOT_EXPANDED}_`nope`_$(whoami)_$$",
        "mysql_root_password": "r00t-\"double\"-'single'-`back`-FAKE",
        "windows_path": "C:\\Users\\ci\\token\\n\\t\\\\end\\",
        "signing_passphrase": "Pässwörd-ünïcödé-密码-пароль-🔑-FAKE",
        "smtp_password": "FAKE-smtp-password-with-trailing-newline\n",
        "multi_line": "line 1\r\nline 2\n\n\tindented\n",
        "ldap_bind_password": " FAKE\ttab\tseparated ",
        "json_blob": '{"value": "nested", "encoding": "base64"}',
        "expression_inside": '${secrets.getValue("db_password")} <+secrets.getValue("db_password")>',
        "empty_text": "",
        "api.token-v2": "dots.and-dashes-in-the-name",
        "svc-account.prod.v1": "long-" + "0123456789abcdef" * 640,
        "github_token": "ghp_FAKEfakeFAKEfake0123456789abcdefABCD",
        "sp ace?q#h%41+semi;colon": "a name that needs percent-encoding in a URL",
    }
    files = {
        "tls_chain.pem": _pem("CERTIFICATE", os.urandom(700)) + _pem("CERTIFICATE", os.urandom(500)),
        "tls_key.pem": _pem("PRIVATE KEY", os.urandom(1190)),
        "keystore.p12": b"0\x82\x0b\x1f\x02\x01\x030\x82\n\xe5\x06\t*\x86H\x86\xf7\r\x01\x07\x01\xa0"
                        + b"\x00\x00\x00" + os.urandom(2000) + b"\x00",
        "all_bytes.bin": bytes(range(256)) * 3 + bytes(range(255, -1, -1)),
        "nul_only.bin": b"\x00" * 64,
        "empty.file": b"",
        "big.blob": os.urandom(512 * 1024),
        "db_password": b"DATABASE_URL=postgres://app:fake-pw@db.example.invalid/app\nDEBUG=false\n",
        "kubeconfig": b"apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: fake-k8s\n",
        "not_utf8.bin": b"\xff\xfe\xc3\x28 \x80\xbf",
        "crlf-lines.txt": b"a\r\nb\r\n\r\n",
        "trailing.newlines": b"x\n\n\n",
        "ünï-file.bin": b"\xe2\x82\xac\x00euro",
    }
    return ([Secret("text", n, v.encode("utf-8")) for n, v in texts.items()]
            + [Secret("file", n, v) for n, v in files.items()])


def by_id(secrets: list[Secret]) -> dict[tuple[str, str], bytes]:
    """{(kind, name): bytes} of a list of secrets."""
    return {s.id: s.data for s in secrets}


# --------------------------------------------------------------------------- running the CLI

@dataclass
class Result:
    """What one run of the command gave: exit code, raw stdout, stderr text."""

    args: list[str]
    code: int
    out: bytes
    err: str

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8")

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (f"Result(args={self.args!r}, code={self.code}, "
                f"stdout={self.out[:2000]!r}, stderr={self.err[:2000]!r})")


def run_cli(args: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = b"") -> Result:
    """Run `secretshift ARGS` in `cwd`; stdin is given whole (b"": closed at once)."""
    proc = subprocess.run([str(SECRETSHIFT), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=RUN_TIMEOUT, check=False)
    return Result(list(args), proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment for the command: no VAULT_* or proxies leak in from outside."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "SECRETSHIFT_")) and "proxy" not in k.lower()}
    env.update(NO_COLOR="1", LC_ALL="C.UTF-8", PYTHONWARNINGS="ignore", **extra)
    return env


def new_key_text() -> str:
    """A master key as the config expects it: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode() + "\n"


def assert_one_error_line(result: Result, *fragments: str) -> None:
    """Exit 1, nothing on stdout, one `error:` line on stderr naming every fragment."""
    assert result.code == 1, result
    assert "Traceback" not in result.err, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("error: "), result
    for fragment in fragments:
        assert fragment in lines[0], (fragment, result)


# --------------------------------------------------------------------------- seeding

_TEMPLATES: dict[str, tuple[Path, list[Secret]]] = {}


def seed_with_put(folder: Path, secrets: list[Secret], inputs: Path, workers: int = 3) -> None:
    """Store every secret in the project's builtin store through `secretshift put`:
    texts from stdin (one through --from-file), files through --from-file."""
    inputs.mkdir(parents=True, exist_ok=True)
    env = base_env()

    def put(index_secret: tuple[int, Secret]) -> Result:
        index, secret = index_secret
        args = ["put", SOURCE, secret.name]
        stdin = secret.data
        if secret.kind == "file" or index == 0:
            path = inputs / f"input-{index}"
            path.write_bytes(secret.data)
            args += ["--kind", secret.kind, "--from-file", str(path)]
            stdin = b""
        return run_cli(args, folder, env, stdin)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(put, enumerate(secrets)))
    for secret, result in zip(secrets, results):
        assert result.code == 0, result
        assert f"{secret.kind} secret '{secret.name}' ({len(secret.data)} bytes)" in result.err, result


def seeded_template(tmp_path_factory, key: str = "corpus",
                    secrets: list[Secret] | None = None) -> tuple[Path, list[Secret]]:
    """A folder holding `master.key` and `stores/harness.db` seeded through `put`
    (once per session and key); projects copy it."""
    if key not in _TEMPLATES:
        secrets = secrets if secrets is not None else make_corpus()
        folder = tmp_path_factory.mktemp(f"template-{key}")
        (folder / "master.key").write_text(new_key_text())
        write_config(folder / "secretshift.yaml", builtin_only_config())
        seed_with_put(folder, secrets, tmp_path_factory.mktemp(f"inputs-{key}"))
        _TEMPLATES[key] = (folder, secrets)
    return _TEMPLATES[key]


# --------------------------------------------------------------------------- config

def builtin_only_config() -> dict:
    return {"version": 1, "managers": {SOURCE: {
        "type": "builtin", "path": "stores/harness.db", "key": {"file": "master.key"}}}}


def vault_config(url: str, mount: str, *, base_path: str = "harness", kv_version: Any = "auto",
                 read_only: bool = False, mode: str = "move", include=("*",), kinds=("text", "file"),
                 on_conflict: str = "fail", secrets: list[dict] | None = None) -> dict:
    """builtin `harness` -> vault `corp_vault`, one migration, every knob a parameter."""
    doc = builtin_only_config()
    doc["managers"][TARGET] = {
        "type": "vault", "address": url, "token": {"env": "VAULT_TOKEN"},
        "secret_engine": mount, "base_path": base_path, "kv_version": kv_version,
        "read_only": read_only,
    }
    doc["migrations"] = [{"from": SOURCE, "to": TARGET, "kinds": list(kinds),
                          "include": list(include), "exclude": [], "mode": mode}]
    if secrets:
        doc["secrets"] = secrets
    doc["on_conflict"] = on_conflict
    doc["references"] = {"paths": ["pipelines/**/*.yaml"]}
    return doc


def write_config(path: Path, doc: dict) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


# --------------------------------------------------------------------------- a project

@dataclass
class Project:
    """One project folder wired to one fresh Vault mount."""

    root: Path
    vault: Any
    mount: str
    kv: int
    secrets: list[Secret]
    token: str = ""
    master_key: bytes = b""
    config: dict = field(default_factory=dict)

    # -- configuration and running

    @property
    def config_path(self) -> Path:
        return self.root / "secretshift.yaml"

    def configure(self, **options) -> dict:
        """Write secretshift.yaml for a builtin -> this Vault mount migration."""
        self.config = vault_config(self.vault.url, self.mount, **options)
        write_config(self.config_path, self.config)
        return self.config

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(**{"VAULT_TOKEN": self.token, **extra})

    def run(self, *args: str, stdin: bytes | None = b"", env: dict | None = None,
            cwd: Path | None = None) -> Result:
        return run_cli(list(args), cwd or self.root, env or self.env(), stdin)

    def put(self, name: str, data: bytes, kind: str = "text") -> Result:
        result = self.run("put", SOURCE, name, "--kind", kind, stdin=data)
        assert result.code == 0, result
        return result

    # -- the builtin store

    def builtin(self) -> BuiltinBackend:
        return BuiltinBackend(SOURCE, self.root / "stores" / "harness.db", SecretValue(self.master_key))

    def source_values(self) -> dict[tuple[str, str], bytes]:
        """{(kind, name): bytes} of every live secret in the builtin store."""
        store = self.builtin()
        try:
            return {(s.kind.value, s.name): store.read(s).data for s in store.list_ids()}
        finally:
            store.close()

    def source_history(self, kind: str, name: str) -> list[bool]:
        """The `deleted` flag of every stored version of one secret, oldest first."""
        store = self.builtin()
        try:
            return [v.deleted for v in store.history(SecretId(Kind(kind), name))]
        finally:
            store.close()

    def source_state(self) -> dict:
        """Values and full version history of every seeded or live secret."""
        store = self.builtin()
        try:
            ids = {SecretId(Kind(s.kind), s.name) for s in self.secrets} | set(store.list_ids())
            state = {}
            for secret in sorted(ids):
                value = store.read(secret)
                versions = [(v.version, v.deleted) for v in store.history(secret)]
                state[(secret.kind.value, secret.name)] = (None if value is None else value.data, versions)
            return state
        finally:
            store.close()

    # -- Vault

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.vault.url, token=token or self.vault.root_token)

    def vault_tree(self) -> dict[str, dict]:
        """Every key under the mount (relative path) -> its data (None when soft-deleted)
        and, on KV v2, its versions; read as root, straight from the API."""
        client = self.client()
        tree: dict[str, dict] = {}
        kv = client.secrets.kv.v2 if self.kv == 2 else client.secrets.kv.v1

        def walk(prefix: str) -> None:
            try:
                keys = kv.list_secrets(path=prefix, mount_point=self.mount)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                return
            for key in keys:
                if key.endswith("/"):
                    walk(prefix + key)
                    continue
                path = prefix + key
                if self.kv == 2:
                    reply = kv.read_secret_version(path=path, mount_point=self.mount,
                                                   raise_on_deleted_version=False)
                    meta = kv.read_secret_metadata(path=path, mount_point=self.mount)["data"]
                    versions = {k: bool(v.get("deletion_time")) for k, v in meta["versions"].items()}
                    tree[path] = {"data": reply["data"]["data"], "versions": versions}
                else:
                    tree[path] = {"data": kv.read_secret(path=path, mount_point=self.mount)["data"]}

        walk("")
        return tree

    def vault_values(self) -> dict[str, dict]:
        """Relative path -> data of every live (not deleted) key under the mount."""
        return {p: v["data"] for p, v in self.vault_tree().items() if v["data"] is not None}

    def vault_write(self, relative_path: str, data: dict) -> None:
        client = self.client()
        if self.kv == 2:
            client.secrets.kv.v2.create_or_update_secret(path=relative_path, secret=data,
                                                         mount_point=self.mount)
        else:
            client.secrets.kv.v1.create_or_update_secret(path=relative_path, secret=data,
                                                         mount_point=self.mount)

    def state(self) -> tuple[dict, dict]:
        """Everything in every store (to prove that a command changed nothing)."""
        return self.source_state(), self.vault_tree()


def vault_layout(secrets: list[Secret], base_path: str = "harness") -> dict[str, dict]:
    """The exact Vault data the contract gives these secrets, by path inside the mount."""
    prefix = f"{base_path}/" if base_path else ""
    layout = {}
    for s in secrets:
        path = f"{prefix}{FOLDERS[s.kind]}/{s.name}"
        if s.kind == "text":
            layout[path] = {"value": s.data.decode("utf-8")}
        else:
            layout[path] = {"value": base64.b64encode(s.data).decode("ascii"), "encoding": "base64"}
    return layout


def new_mount(vault, kv: int) -> str:
    """Enable a new, empty KV mount with a name no other suite uses."""
    mount = f"cli-kv{kv}-{uuid.uuid4().hex[:10]}"
    vault.enable_kv(mount, version=kv)
    return mount


def make_project(root: Path, vault, template: tuple[Path, list[Secret]], kv: int = 2,
                 mount: str | None = None, **config) -> Project:
    """A project folder with a copy of the seeded store, a fresh KV mount and a config."""
    folder, secrets = template
    root.mkdir(parents=True, exist_ok=True)
    (root / "stores").mkdir(mode=0o700)
    for store_file in (folder / "stores").iterdir():  # the db and any WAL side file
        if not store_file.name.endswith("-shm"):
            shutil.copy2(store_file, root / "stores" / store_file.name)
    shutil.copy2(folder / "master.key", root / "master.key")
    key = base64.b64decode((root / "master.key").read_text())
    project = Project(root, vault, mount or new_mount(vault, kv), kv, list(secrets),
                      token=vault.root_token, master_key=key)
    project.configure(**config)
    return project
