"""The command line itself, through the installed `secretshift` command: exit codes,
usage errors, one clear line per bad input with nothing changed, and the JSON shapes of
`refs` and `list`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys

import pytest
from clihelp import (
    SOURCE,
    TARGET,
    assert_one_error_line,
    make_project,
    new_key_text,
    seeded_template,
    write_config,
)


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """The session's builtin store holding the whole corpus, seeded through `put`."""
    return seeded_template(tmp_path_factory)


@pytest.fixture
def project(tmp_path, vault, template):
    """builtin `harness` (the corpus) -> `corp_vault` (a fresh KV v2 mount, base_path harness)."""
    return make_project(tmp_path / "project", vault, template)


# --------------------------------------------------------------------------- exit codes

def test_config_flag_works_before_and_after_the_command_and_detailed_exitcode_gives_2(project, tmp_path):
    """From another folder, `-c PATH plan` and `plan -c PATH` give the same plan; with
    --detailed-exitcode a plan with changes exits 2, without it 0."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(project.config_path)
    before = project.run("-c", config, "plan", "--detailed-exitcode", cwd=elsewhere)
    after = project.run("plan", "--detailed-exitcode", "--config", config, cwd=elsewhere)
    plain = project.run("plan", "-c", config, cwd=elsewhere)
    for result in (before, after):
        assert result.code == 2, result
        assert result.err == ""
        assert f"Plan: {len(project.secrets)} to move" in result.stdout
    assert after.out == before.out
    assert (plain.code, plain.out) == (0, before.out)
    assert project.vault_tree() == {}


def test_detailed_exitcode_is_0_when_nothing_needs_to_change(project):
    """A config whose migration matches no secret: plan --detailed-exitcode exits 0."""
    project.configure(include=["no-such-secret-*"])
    result = project.run("plan", "--detailed-exitcode")
    assert result.code == 0, result
    assert result.err == ""
    assert "No changes" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["plan", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["apply", "--auto-approve", "--format", "json"], "unrecognized arguments: --format"),
], ids=["unknown-flag", "unknown-command", "flag-of-another-command"])
def test_usage_errors_exit_1_not_2(project, args, message):
    """argparse's usage errors exit 1 (2 means "plan has changes"), with a usage line."""
    before = project.state()
    result = project.run(*args)
    assert result.code == 1, result
    if "json" in args:  # JSON was asked for, even of a command without --format: the error comes as JSON too
        assert message in json.loads(result.out)["errors"][0]["message"]
    else:
        assert result.out == b""
    assert message in result.err
    assert "usage: secretshift" in result.err
    assert "Traceback" not in result.err
    assert project.state() == before


def test_python_dash_m_engine_help_lists_every_command(tmp_path):
    """`python -m engine --help` works like the console script and exits 0."""
    proc = subprocess.run([sys.executable, "-m", "engine", "--help"], cwd=tmp_path,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc
    text = proc.stdout.decode()
    assert text.startswith("usage: ")
    for command in ("validate", "plan", "apply", "put", "get", "list", "refs", "render"):
        assert command in text
    assert proc.stderr == b""


# --------------------------------------------------------------------------- bad input

def _dump_with(project, old: str, new: str) -> int:
    """Replace `old` by `new` in the config text; return the 1-based line of the change."""
    text = project.config_path.read_text()
    assert old in text, old
    line = text[:text.index(old)].count("\n") + 1
    project.config_path.write_text(text.replace(old, new, 1))
    return line


def _broken_yaml(project, tmp_path):
    line = _dump_with(project, "on_conflict: fail", "on_conflict: fail: twice")
    return ["apply", "--auto-approve"], None, [f"secretshift.yaml:{line}"]


def _unknown_manager(project, tmp_path):
    line = _dump_with(project, f"to: {TARGET}", "to: corp_vaultt")
    return ["apply", "--auto-approve"], None, [f"secretshift.yaml:{line}", "corp_vaultt"]


def _duplicate_secret(project, tmp_path):
    entry = {"name": "db_password", "kind": "text", "manager": TARGET}
    project.configure(secrets=[entry, dict(entry)])
    return ["apply", "--auto-approve"], None, ["secretshift.yaml:", "db_password"]


def _bad_name_traversal(project, tmp_path):
    return ["put", SOURCE, "../x"], None, ["../x"]


def _bad_name_slash(project, tmp_path):
    return ["put", SOURCE, "a//b"], None, ["a//b", "separates folders"]


def _unreachable_vault(project, tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    project.config["managers"][TARGET]["address"] = address
    write_config(project.config_path, project.config)
    return ["apply", "--auto-approve"], None, [TARGET, f"127.0.0.1:{port}"]


def _wrong_token(project, tmp_path):
    return ["apply", "--auto-approve"], project.env() | {"VAULT_TOKEN": "hvs.not-a-real-token"}, \
        [TARGET, "invalid token"]


def _wrong_master_key(project, tmp_path):
    (project.root / "master.key").write_text(new_key_text())
    return ["apply", "--auto-approve"], None, [SOURCE, "wrong key?"]


def _missing_config(project, tmp_path):
    return ["-c", "missing.yaml", "apply", "--auto-approve"], None, ["missing.yaml"]


def _plan_not_json(project, tmp_path):
    (project.root / "p.json").write_text("secretshift will perform these actions:\n")
    return ["apply", "p.json"], None, ["p.json"]


def _plan_not_a_plan(project, tmp_path):
    (project.root / "p.json").write_text(json.dumps({"format_version": 1, "hello": "world"}))
    return ["apply", "p.json"], None, ["p.json"]


def _plan_out_into_missing_folder(project, tmp_path):
    return ["plan", "--out", "no/such/folder/p.json"], None, ["no/such/folder/p.json"]


BAD_INPUTS = {
    "broken-yaml": _broken_yaml,
    "unknown-manager-in-migration": _unknown_manager,
    "duplicate-secret": _duplicate_secret,
    "put-name-with-traversal": _bad_name_traversal,
    "put-name-with-slash": _bad_name_slash,
    "unreachable-vault": _unreachable_vault,
    "wrong-vault-token": _wrong_token,
    "wrong-master-key": _wrong_master_key,
    "missing-config-file": _missing_config,
    "plan-file-not-json": _plan_not_json,
    "plan-file-not-a-plan": _plan_not_a_plan,
    "plan-out-into-missing-folder": _plan_out_into_missing_folder,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_clear_error_line_and_changes_nothing(project, tmp_path, case):
    """Each bad input: exit 1, one `error:` line on stderr naming what is at fault (no
    traceback), and both stores exactly as they were."""
    before = project.state()
    args, env, fragments = BAD_INPUTS[case](project, tmp_path)
    result = project.run(*args, stdin=b"x", env=env)
    assert_one_error_line(result, *fragments)
    assert "Apply complete" not in result.stdout
    assert project.state() == before


# --------------------------------------------------------------------------- refs and list

REFS_PIPELINE = """\
# a FirstGen comment naming ${secrets.getValue("db_password")}
steps:
  - script: echo ${configFile.getAsBase64("keystore.p12")} and '${configFile.getAsString('kubeconfig')}'
  - nextgen: <+secrets.getValue("github_token")> <+secrets.getValue("account.signing_passphrase")>
  - org: <+secrets.getValue( 'org.api.token-v2' )>
  - missing: ${secrets.getValue("not_stored_anywhere")}
  - built: <+secrets.getValue("db_" + <+env.name>)>
"""


def _position(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text[:index].count("\n") + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def test_refs_json_reports_every_reference_with_position_scope_kind_and_resolution(project):
    """refs --format json: the contract's keys for each reference, and run-time names
    listed as unresolvable."""
    (project.root / "pipelines").mkdir()
    (project.root / "pipelines" / "ci.yaml").write_text(REFS_PIPELINE)
    result = project.run("refs", "--format", "json")
    assert result.code == 0, result
    assert result.err == ""
    doc = json.loads(result.out)
    assert set(doc) == {"references", "unresolvable"}

    def ref(needle, syntax, function, name, scope, kind, resolves):
        line, column = _position(REFS_PIPELINE, needle)
        return {"file": "pipelines/ci.yaml", "line": line, "column": column, "syntax": syntax,
                "function": function, "name": name, "scope": scope, "kind": kind, "resolves": resolves}

    assert doc["references"] == [
        ref('${secrets.getValue("db_password")}', "firstgen", "secrets.getValue", "db_password", None, "text", True),
        ref("${configFile.getAsBase64", "firstgen", "configFile.getAsBase64", "keystore.p12", None, "file", True),
        ref("${configFile.getAsString", "firstgen", "configFile.getAsString", "kubeconfig", None, "file", True),
        ref('<+secrets.getValue("github_token")>', "nextgen", "secrets.getValue", "github_token", "project",
            "text", True),
        ref("<+secrets.getValue(\"account.", "nextgen", "secrets.getValue", "signing_passphrase", "account",
            "text", True),
        ref("<+secrets.getValue( 'org.", "nextgen", "secrets.getValue", "api.token-v2", "org", "text", True),
        ref("${secrets.getValue(\"not_stored", "firstgen", "secrets.getValue", "not_stored_anywhere", None,
            "text", False),
    ]
    assert len(doc["unresolvable"]) == 1
    unresolvable = doc["unresolvable"][0]
    assert set(unresolvable) == {"file", "line", "column", "text", "reason"}
    line, column = _position(REFS_PIPELINE, '<+secrets.getValue("db_" +')
    assert (unresolvable["file"], unresolvable["line"], unresolvable["column"]) == ("pipelines/ci.yaml", line, column)
    assert unresolvable["text"].startswith('<+secrets.getValue("db_" +')
    assert unresolvable["reason"]


def test_list_prints_kinds_and_names_only_in_text_and_json(project):
    """list MANAGER gives every (kind, name) sorted, in text and JSON, and no value."""
    expected = sorted(s.id for s in project.secrets)
    text = project.run("list", SOURCE)
    assert text.code == 0, text
    assert text.err == ""
    assert [tuple(line.split(None, 1)) for line in text.stdout.splitlines()] == expected

    as_json = project.run("list", SOURCE, "--format", "json")
    assert as_json.code == 0, as_json
    assert json.loads(as_json.out) == {
        "manager": SOURCE, "secrets": [{"kind": k, "name": n} for k, n in expected]}
    for secret in project.secrets:
        if len(secret.data) >= 8:
            assert secret.data not in text.out and secret.data not in as_json.out, secret.id


def test_put_and_get_round_trip_raw_bytes_from_stdin_and_file(project, tmp_path):
    """put from stdin and --from-file stores exact bytes (no newline added or dropped);
    get prints them back unchanged."""
    source = tmp_path / "value.bin"
    source.write_bytes(b"\x00\xff line\r\n")
    stored = project.run("put", SOURCE, "fresh.file", "--kind", "file", "--from-file", str(source))
    assert stored.code == 0, stored
    assert "fresh.file" in stored.err and "(9 bytes)" in stored.err
    source.write_bytes(b"x")
    one = project.run("put", SOURCE, "one.byte", "--kind", "file", "--from-file", str(source))
    assert "(1 byte)" in one.err, one
    project.put("fresh-text", "é $X \\n\n".encode())
    assert project.source_values()[("file", "fresh.file")] == b"\x00\xff line\r\n"
    got = project.run("get", SOURCE, "fresh-text")
    assert (got.code, got.out, got.err) == (0, "é $X \\n\n".encode(), "")


def test_debug_shows_the_traceback_and_plain_runs_do_not(tmp_path):
    import subprocess

    from clihelp import SECRETSHIFT

    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "secretshift.yaml").write_text(
        "version: 1\nmanagers:\n  a: {type: builtin, path: a.db, key: {file: master.key}}\n")
    plain = subprocess.run([str(SECRETSHIFT), "get", "nope", "x"], cwd=tmp_path, capture_output=True, text=True)
    debug = subprocess.run([str(SECRETSHIFT), "--debug", "get", "nope", "x"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert plain.returncode == debug.returncode == 1
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert "unknown manager 'nope'" in debug.stderr


def test_with_format_json_errors_come_as_json_on_stdout_too(tmp_path):
    import subprocess

    from clihelp import SECRETSHIFT

    (tmp_path / "secretshift.yaml").write_text("version: 1\nmanagers:\n  a: {type: builtin, path: a.db}\n")
    result = subprocess.run([str(SECRETSHIFT), "plan", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"errors": [{
        "file": "secretshift.yaml", "line": 3, "column": 3,
        "message": "managers.a is missing required key 'key'"}]}
    assert result.stderr == "error: secretshift.yaml:3:3: managers.a is missing required key 'key'\n"


@pytest.mark.parametrize("args", [["plan", "--format", "json", "--bogus"], ["plan", "--format=json", "--bogus"]])
def test_a_usage_error_comes_as_json_too_when_json_was_asked_for(tmp_path, args):
    import subprocess

    from clihelp import SECRETSHIFT

    result = subprocess.run([str(SECRETSHIFT), *args], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"errors": [{"message": "secretshift: error: unrecognized arguments: --bogus"}]}
    assert result.stderr.endswith("secretshift: error: unrecognized arguments: --bogus\n")


def test_quiet_prints_only_what_was_asked_for(tmp_path):
    import subprocess

    from clihelp import SECRETSHIFT

    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "secretshift.yaml").write_text(
        "version: 1\nmanagers:\n  a: {type: builtin, path: a.db, key: {file: master.key}}\n"
        "  b: {type: builtin, path: b.db, key: {file: master.key}}\n"
        "migrations:\n  - {from: a, to: b, mode: move}\n")

    def run(*args, stdin=None):
        return subprocess.run([str(SECRETSHIFT), "--quiet", *args], cwd=tmp_path, input=stdin,
                              capture_output=True)

    assert run("put", "a", "x", stdin=b"v").stderr == b""
    applied = run("apply", "--auto-approve")
    assert (applied.returncode, applied.stdout, applied.stderr) == (0, b"", b"")
    assert run("get", "b", "x").stdout == b"v"
