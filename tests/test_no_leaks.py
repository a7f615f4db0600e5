"""No secret value leaks: a store full of canary values goes through every command that
must never print a value (validate, plan in every format and saved, apply, list, refs,
and failing commands: stale plan, conflict, read-only, bad name, --debug), and no canary,
nor its base64 or hex, may appear in any stdout, stderr, saved plan, or file of the
project folder, the SQLite store included (values are encrypted there).
"""

from __future__ import annotations

import base64
import json
import os
import secrets as random_tokens
from concurrent.futures import ThreadPoolExecutor

import pytest
from clihelp import SOURCE, TARGET, Result, Secret, make_project, seeded_template


def _token(label: str) -> str:
    return f"CANARY-{label}-{random_tokens.token_hex(16)}"


def canary_secrets() -> list[Secret]:
    """Text and file secrets whose every value holds unique random markers."""
    return [
        Secret("text", "leak_db_password", _token("T1").encode()),
        Secret("text", "leak.api-key", f"{_token('T2')} $HOME \"quoted\"".encode()),
        Secret("text", "leak_multi_line", f"{_token('T3')}\nsecond {_token('T3b')}\n".encode()),
        Secret("file", "leak_cert.pem", f"-----BEGIN CERTIFICATE-----\n{_token('F1')}\n"
                                        "-----END CERTIFICATE-----\n".encode()),
        Secret("file", "leak_keystore.p12", b"\x00\x01" + _token("F2").encode() + b"\x00" + os.urandom(48)),
    ]


def forms_of(value: bytes) -> set[bytes]:
    """Every way a value could show up: raw, each of its lines, base64 (whole and prefix), hex."""
    forms = {value, base64.b64encode(value), base64.b64encode(value)[:24], value.hex().encode()}
    forms |= {line for line in value.split(b"\n") if len(line) >= 12 and b"CANARY" in line}
    if b"CANARY" in value:  # the marker alone, wherever it sits among binary bytes
        start = value.index(b"CANARY")
        forms.add(value[start:start + 42])
    return {f for f in forms if len(f) >= 12}


def assert_no_canary(where: str, data: bytes, canaries: set[bytes]) -> None:
    leaked = sorted(c for c in canaries if c in data)
    assert not leaked, f"{where} shows a secret value: {leaked[:3]}"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A builtin store seeded through `put` with canary values only."""
    return seeded_template(tmp_path_factory, key="canaries", secrets=canary_secrets())


PIPELINE = """\
steps:
  - script: |
      export DB='${secrets.getValue("leak_db_password")}'
      export API=<+secrets.getValue("account.leak.api-key")>
      echo '${configFile.getAsBase64("leak_keystore.p12")}' | base64 -d > ks.p12
      cat > cert.pem <<'PEM'
      <+configFile.getAsString("leak_cert.pem")>
      PEM
"""


def test_no_command_output_saved_plan_or_project_file_shows_a_secret_value(tmp_path, vault, template):
    """Canary values (and their base64/hex) never appear outside get/render output and
    Vault itself: not in any stdout/stderr, plan file, or file of the project folder."""
    project = make_project(tmp_path / "project", vault, template)
    policy = f"all-{project.mount}"
    vault.set_policy(policy, 'path "*" {\n  capabilities = ["create", "read", "update", "delete", "list", "sudo"]\n}\n')
    project.token = vault.create_token(policies=[policy])
    (project.root / "pipelines").mkdir()
    (project.root / "pipelines" / "ci.yaml").write_text(PIPELINE)

    conflict_value = _token("V1").encode()
    stale_value = _token("T4").encode()
    canaries = set().union(*(forms_of(s.data) for s in project.secrets), forms_of(conflict_value),
                           forms_of(stale_value), {project.token.encode()})
    outputs: list[Result] = []

    def run(*args, stdin=b"", expect=0) -> Result:
        result = project.run(*args, stdin=stdin)
        assert result.code == expect, result
        outputs.append(result)
        return result

    # every read-only command, concurrently (they only read the stores)
    reading = [("validate",), ("plan",), ("plan", "--format", "json"), ("plan", "--format", "markdown"),
               ("plan", "--out", "plan.json"), ("list", SOURCE), ("list", SOURCE, "--format", "json"),
               ("refs",), ("refs", "--format", "json")]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda args: run(*args), reading))
    assert f"{len(project.secrets)} to move" in results[1].stdout
    assert json.loads((project.root / "plan.json").read_text())["summary"]["move"] == len(project.secrets)

    # failing commands: bad name, conflict, read-only, stale saved plan (with --debug)
    run("put", SOURCE, "bad//name", stdin=stale_value, expect=1)
    project.vault_write("harness/SECRET_TEXT/leak_db_password", {"value": conflict_value.decode()})
    conflict = run("plan", "--format", "json", expect=1)
    assert [e["code"] for e in json.loads(conflict.out)["errors"]] == ["conflict"]
    run("apply", "--auto-approve", expect=1)
    project.configure(read_only=True)
    run("plan", "--format", "markdown", expect=1)
    project.configure(on_conflict="overwrite")
    run("plan", "--out", "stale.json")
    run("put", SOURCE, "leak.api-key", stdin=stale_value)
    stale = run("--debug", "apply", "stale.json", expect=1)
    assert "stale plan" in stale.err

    # a successful apply, and everything after it
    applied = run("apply", "--auto-approve")
    assert "Apply complete!" in applied.stdout
    run("plan", "--detailed-exitcode")
    run("plan", "--refresh-only", "--format", "markdown")
    run("list", SOURCE)
    run("refs", "--format", "json")

    for result in outputs:
        assert_no_canary(f"stdout of {result.args}", result.out, canaries)
        assert_no_canary(f"stderr of {result.args}", result.err.encode(), canaries)
    files = [p for p in project.root.rglob("*") if p.is_file()]
    assert any(p.name == "harness.db" for p in files)
    assert any(p.parent.name == "state" for p in files)  # the drift state file is scanned too
    for path in files:  # plans, state, journals, and the SQLite store (encrypted)
        assert_no_canary(str(path.relative_to(project.root)), path.read_bytes(), canaries)

    # the detector works: render, whose job is to print values, does show them
    rendered = project.run("render", "pipelines/ci.yaml")
    assert rendered.code == 0, rendered
    by_name = {s.name: s.data for s in project.secrets}
    assert by_name["leak_db_password"] in rendered.out
    assert base64.b64encode(by_name["leak_keystore.p12"]) in rendered.out
    assert stale_value in rendered.out
    assert project.vault_values()["harness/SECRET_TEXT/leak_db_password"] == {
        "value": by_name["leak_db_password"].decode()}
    assert TARGET in applied.stdout
