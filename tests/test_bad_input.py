"""Bad input, through the installed `secretshift` command: malformed plan files, damaged
journals, corrupted builtin stores and keys, broken configs, bad secret names and bad
command arguments. Each gives exit 1, exactly one `error:` line on stderr naming the
file, manager or secret at fault (no traceback, no "internal error"), and changes
nothing: every store file, every journal and the whole Vault mount are byte-identical.

Static inputs live in tests/data/bad_input/; the rest are derived from a real plan or a
real journal of the test's own project. This corpus adds to tests/data/configs/invalid/
(config rules, checked by test_config.py) and to test_cli.py's bad-input table.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clihelp import SOURCE, TARGET, Secret, make_project, new_key_text, seeded_template

from engine import commands
from engine.journal import journals
from engine.workspace import Workspace

DATA = Path(__file__).parent / "data" / "bad_input"
SECRETS = [
    Secret("text", "db_password", b"bad-input-canary-db-password"),
    Secret("text", "api_token", b"bad-input-canary-api-token"),
    Secret("file", "tls.pem", b"-----BEGIN CERTIFICATE-----\nbad-input-canary\n-----END CERTIFICATE-----\n"),
    Secret("file", "keystore.p12", b"\x00\x01bad-input-canary\xff\x00"),
]


@dataclass
class Case:
    """What to run and what its one error line must contain."""

    args: list[str]
    fragments: list[str]
    stdin: bytes = b""
    usage: bool = False  # an argparse usage error: a usage block, then one error line
    env: dict[str, str] = field(default_factory=dict)


class Recorder:
    def __init__(self):
        self.lines, self.color = [], False

    def out(self, text):
        self.lines.append(text)

    def err(self, text):
        self.lines.append(text)

    def ask(self, prompt):
        return False


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    return seeded_template(tmp_path_factory, key="bad-input", secrets=SECRETS)


@pytest.fixture
def project(tmp_path, vault, template, monkeypatch):
    made = make_project(tmp_path / "project", vault, template)
    monkeypatch.setenv("VAULT_TOKEN", made.token)  # for the in-process set-up steps
    return made


# --------------------------------------------------------------------------- helpers

def snapshot(project) -> tuple[dict[str, bytes], dict]:
    """Every file of the project (stores, keys, plans, journals, config) by bytes, and
    every key of the Vault mount with its data and versions. SQLite's -shm index, the
    fingerprint key made on first use and the apply lock file (empty when free) are
    left out."""
    files = {}
    for path in sorted(project.root.rglob("*")):
        if path.is_file() and not path.name.endswith("-shm") and path.name not in ("fingerprint.key", "apply.lock"):
            files[str(path.relative_to(project.root))] = path.read_bytes()
    return files, project.vault_tree()


def save_plan(project, name: str = "p.json") -> dict:
    """A real plan of the project, saved (in-process) and returned as JSON."""
    commands.plan(project.config_path, "json", str(project.root / name))
    return json.loads((project.root / name).read_text())


def write_json(project, name: str, document) -> None:
    (project.root / name).write_text(json.dumps(document, indent=2), encoding="utf-8")


def edited_plan(edit: Callable[[dict], None]) -> Callable:
    def setup(project) -> Case:
        document = save_plan(project)
        edit(document)
        write_json(project, "p.json", document)
        return Case(["apply", "p.json"], ["p.json"])
    return setup


def applied_journal(project) -> Path:
    """Run a complete apply (in-process) and return its journal."""
    assert commands.apply(project.config_path, None, True, Recorder()) == 0
    return journals(journal_dir(project))[-1]


def journal_dir(project) -> Path:
    with Workspace(project.config_path) as ws:
        return ws.journal_dir


def journal_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def edited_journal(edit: Callable[[list[dict]], None], command: str, *fragments: str) -> Callable:
    """Apply, then edit the journal's records; `fragments` may use {journal}."""
    def setup(project) -> Case:
        path = applied_journal(project)
        records = journal_records(path)
        edit(records)
        write_records(path, records)
        return Case([command, "--auto-approve"], [f.format(journal=path.name) for f in fragments])
    return setup


def first_sealed(records: list[dict]) -> dict:
    return next(r for r in records if "sealed" in r)


def _flip_last_byte(record: dict) -> None:
    sealed = bytearray(base64.b64decode(record["sealed"]))
    sealed[-1] ^= 0x01
    record["sealed"] = base64.b64encode(bytes(sealed)).decode()


def config_text_with(project, extra: str) -> str:
    return project.config_path.read_text() + extra


def config_line(project, needle: str) -> int:
    text = project.config_path.read_text()
    return text[:text.index(needle)].count("\n") + 1


# --------------------------------------------------------------------------- plan files

def plan_static(name: str) -> Callable:
    def setup(project) -> Case:
        shutil.copy(DATA / name, project.root / "p.json")
        return Case(["apply", "p.json"], ["p.json"])
    return setup


def _plan_truncated(project) -> Case:
    save_plan(project)
    text = (project.root / "p.json").read_text()
    (project.root / "p.json").write_text(text[:len(text) // 2])
    return Case(["apply", "p.json"], ["p.json:", "not a valid plan file"])


def _plan_extra_data(project) -> Case:
    save_plan(project)
    with (project.root / "p.json").open("a") as handle:
        handle.write('\n{"format_version": 1}\n')
    return Case(["apply", "p.json"], ["p.json:", "not a valid plan file (Extra data)"])


def _plan_with_errors(project) -> Case:
    project.vault_write("harness/SECRET_TEXT/db_password", {"value": "a different value"})
    save_plan(project)
    assert json.loads((project.root / "p.json").read_text())["errors"]
    return Case(["apply", "p.json"], ["the plan has 1 error(s), nothing was applied", "conflict",
                                      "db_password"])


def _plan_for_another_config(project) -> Case:
    project.configure(include=["db_*"])
    save_plan(project)
    project.configure()
    return Case(["apply", "p.json"], ["stale plan", "p.json", "secretshift.yaml", "nothing was written"])


def _plan_with_another_fingerprint_key(project) -> Case:
    document = save_plan(project)
    document["fingerprint_key_id"] = "0123456789abcdef"
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["p.json was made with another fingerprint key"])


def _plan_with_a_wrong_fingerprint(project) -> Case:
    document = save_plan(project)
    action = next(a for a in document["actions"] if a["name"] == "api_token")
    action["source_fingerprint"] = "hmac-sha256:" + "0" * 64
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["stale plan, nothing was written",
                                      f"text secret 'api_token' changed in manager '{SOURCE}'"])


def _plan_naming_an_unknown_manager(project) -> Case:
    document = save_plan(project)
    document["actions"][0]["to"] = "corp_vaultt"
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["p.json", "corp_vaultt"])


def _plan_with_a_nul_in_a_name(project) -> Case:
    document = save_plan(project)
    document["actions"][0]["name"] += "\x00"
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["p.json", "\\x00"])


def _plan_listing_one_secret_twice(project) -> Case:
    document = save_plan(project)
    document["actions"].append(dict(document["actions"][0]))
    document["summary"]["move"] += 1
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["p.json", repr(document["actions"][0]["name"])])


def _plan_with_a_lone_surrogate_in_a_name(project) -> Case:
    """JSON may escape a lone surrogate; the fast schema check cannot take it and must
    leave the verdict to the full one, never crash."""
    document = save_plan(project)
    text = json.dumps(document).replace(json.dumps(document["actions"][0]["name"]), '"db\\ud800"', 1)
    (project.root / "p.json").write_text(text)
    return Case(["apply", "p.json"], ["p.json"])


def _plan_with_a_fingerprint_ending_in_a_newline(project) -> Case:
    """Python's `$` matches before a final newline, so the schema's fingerprint pattern
    alone would pass it; the plan is still refused (a fingerprint is exact)."""
    document = save_plan(project)
    document["actions"][0]["source_fingerprint"] += "\n"
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["stale plan, nothing was written"])


def _plan_asking_for_history_the_config_does_not(project) -> Case:
    """`history: all` copies every earlier version: only the config may ask for it."""
    document = save_plan(project)
    document["actions"][0]["history"] = "all"
    write_json(project, "p.json", document)
    return Case(["apply", "p.json"], ["p.json", "history all where the config says history current"])


def _plan_missing(project) -> Case:
    return Case(["apply", "no-such-plan.json"], ["cannot read plan file no-such-plan.json"])


def _plan_is_a_folder(project) -> Case:
    (project.root / "plans").mkdir()
    return Case(["apply", "plans"], ["plans"])


PLAN_CASES = {
    "plan-json-array": plan_static("plan_array.json"),
    "plan-json-string": plan_static("plan_string.json"),
    "plan-empty-file": plan_static("plan_empty.json"),
    "plan-binary-garbage": plan_static("plan_garbage.bin"),
    "plan-truncated": _plan_truncated,
    "plan-extra-data-after-the-object": _plan_extra_data,
    "plan-wrong-format-version": edited_plan(lambda d: d.update(format_version=2)),
    "plan-missing-actions": edited_plan(lambda d: d.pop("actions")),
    "plan-unknown-action": edited_plan(lambda d: d["actions"][0].update(action="teleport")),
    "plan-unknown-secret-kind": edited_plan(lambda d: d["actions"][0].update(kind="binary")),
    "plan-malformed-fingerprint": edited_plan(lambda d: d["actions"][0].update(source_fingerprint="md5:abc")),
    "plan-unknown-action-key": edited_plan(lambda d: d["actions"][0].update(value="hunter2")),
    "plan-with-errors": _plan_with_errors,
    "plan-for-another-config": _plan_for_another_config,
    "plan-with-another-fingerprint-key": _plan_with_another_fingerprint_key,
    "plan-with-a-wrong-fingerprint": _plan_with_a_wrong_fingerprint,
    "plan-naming-an-unknown-manager": _plan_naming_an_unknown_manager,
    "plan-with-nul-in-a-name": _plan_with_a_nul_in_a_name,
    "plan-listing-one-secret-twice": _plan_listing_one_secret_twice,
    "plan-with-a-lone-surrogate-in-a-name": _plan_with_a_lone_surrogate_in_a_name,
    "plan-with-a-fingerprint-ending-in-a-newline": _plan_with_a_fingerprint_ending_in_a_newline,
    "plan-asking-for-history-the-config-does-not": _plan_asking_for_history_the_config_does_not,
    "plan-file-missing": _plan_missing,
    "plan-file-is-a-folder": _plan_is_a_folder,
}
PLAN_FRAGMENTS = {  # beyond naming p.json: what the message must say
    "plan-wrong-format-version": ["at format_version"],
    "plan-missing-actions": ["'actions' is a required property"],
    "plan-unknown-action": ["at actions/0/action", "'teleport'"],
    "plan-unknown-secret-kind": ["at actions/0/kind", "'binary'"],
    "plan-malformed-fingerprint": ["at actions/0/source_fingerprint"],
    "plan-unknown-action-key": ["'value' was unexpected"],
    "plan-binary-garbage": ["not a plan file (not UTF-8 text)"],
}


# --------------------------------------------------------------------------- journals

def _journal_damaged_middle_line(command: str) -> Callable:
    def setup(project) -> Case:
        path = applied_journal(project)
        lines = path.read_bytes().split(b"\n")
        lines[3] = lines[3][:len(lines[3]) // 2]
        path.write_bytes(b"\n".join(lines))
        return Case([command, "--auto-approve"], [f"{path.name}:4: the journal is damaged"])
    return setup


def _journal_static(name: str, *fragments: str) -> Callable:
    def setup(project) -> Case:
        folder = journal_dir(project)
        folder.mkdir(parents=True)
        path = folder / "20260101T000000000000Z-abcdef.jsonl"
        shutil.copy(DATA / name, path)
        return Case(["rollback", "--auto-approve"], [path.name, *fragments])
    return setup


def _journal_after_fingerprint_key_changed(project) -> Case:
    """Nothing changed in the stores; only the key the journal was sealed under did:
    rollback must say so, not blame the secrets."""
    applied_journal(project)
    (project.root / ".secretshift" / "fingerprint.key").write_text(new_key_text())
    return Case(["rollback", "--auto-approve"], ["fingerprint key"])


def _set_index(value):
    def edit(records):
        for record in records:
            if record.get("event") == "step":
                record["index"] = value
    return edit


JOURNAL_CASES = {
    "journal-damaged-middle-line-on-rollback": _journal_damaged_middle_line("rollback"),
    "journal-damaged-middle-line-on-apply": _journal_damaged_middle_line("apply"),
    "journal-binary-garbage": _journal_static("journal_garbage.jsonl", ":1: the journal is damaged"),
    "journal-without-begin-record": _journal_static("journal_no_begin.jsonl", "no begin record"),
    "journal-sealed-value-altered": edited_journal(
        lambda records: _flip_last_byte(first_sealed(records)), "rollback",
        "{journal}", "cannot be decrypted (the fingerprint key changed, or the journal was altered)"),
    "journal-sealed-after-fingerprint-key-changed": _journal_after_fingerprint_key_changed,
    "journal-plan-unreadable": edited_journal(
        lambda records: records[0].update(plan={"format_version": 1}), "rollback",
        "{journal}", "the plan in this journal cannot be read"),
    "journal-step-index-not-a-number": edited_journal(_set_index("first"), "rollback", "{journal}"),
    "journal-step-index-out-of-range": edited_journal(_set_index(99), "rollback", "{journal}"),
    "journal-step-without-step-name": edited_journal(
        lambda records: [r.pop("step") for r in records if r.get("event") == "step"], "rollback", "{journal}"),
}


# --------------------------------------------------------------------------- stores and keys

def store_replaced(name: str, command: list[str], *fragments: str, stdin: bytes = b"") -> Callable:
    def setup(project) -> Case:
        store = project.root / "stores" / "harness.db"
        for side in store.parent.glob("harness.db-*"):
            side.unlink()
        if name == "truncated":
            store.write_bytes(store.read_bytes()[:3000])
        else:
            shutil.copy(DATA / name, store)
        return Case(command, [f"manager '{SOURCE}'", "stores/harness.db", *fragments], stdin=stdin)
    return setup


def key_replaced(name: str, *fragments: str) -> Callable:
    def setup(project) -> Case:
        shutil.copy(DATA / name, project.root / "master.key")
        line = config_line(project, "file: master.key")
        return Case(["list", SOURCE], [f"secretshift.yaml:{line}:", "managers.harness.key is not usable",
                                       "master.key", *fragments])
    return setup


def _wrong_master_key(command: list[str], stdin: bytes = b"") -> Callable:
    def setup(project) -> Case:
        (project.root / "master.key").write_text(new_key_text())
        return Case(command, [f"manager '{SOURCE}'", "harness.db", "wrong key?"], stdin=stdin)
    return setup


NOT_SQLITE = "it is not a SQLite database or it is corrupted"
STORE_CASES = {
    "store-garbage-bytes-list": store_replaced("store_garbage.db", ["list", SOURCE], NOT_SQLITE),
    "store-garbage-bytes-put": store_replaced("store_garbage.db", ["put", SOURCE, "new_one"], NOT_SQLITE,
                                              stdin=b"v"),
    "store-truncated-get": store_replaced("truncated", ["get", SOURCE, "db_password"], NOT_SQLITE),
    "store-truncated-apply": store_replaced("truncated", ["apply", "--auto-approve"], NOT_SQLITE),
    "store-foreign-sqlite-list": store_replaced("store_foreign.db", ["list", SOURCE], "not a secretshift store"),
    "wrong-master-key-get": _wrong_master_key(["get", SOURCE, "db_password"]),
    "wrong-master-key-put": _wrong_master_key(["put", SOURCE, "db_password"], stdin=b"new value"),
    "key-file-bad-base64": key_replaced("key_bad_base64.key", "not valid base64"),
    "key-file-31-bytes": key_replaced("key_31_bytes.key", "must be 32 bytes (base64), not 31"),
    "key-file-raw-binary": key_replaced("key_raw_binary.key", "not valid base64"),
}


# --------------------------------------------------------------------------- configs

def config_static(name: str, *fragments: str) -> Callable:
    def setup(project) -> Case:
        shutil.copy(DATA / name, project.root / "bad.yaml")
        return Case(["-c", "bad.yaml", "plan"], ["bad.yaml", *fragments])
    return setup


def config_with_secret_name(yaml_name: str, *fragments: str) -> Callable:
    def setup(project) -> Case:
        project.config_path.write_text(config_text_with(
            project, f"secrets:\n  - {{name: {yaml_name}, manager: {TARGET}}}\n"))
        line = config_line(project, "secrets:") + 1
        return Case(["plan"], [f"secretshift.yaml:{line}:", "secrets[0].name", "is not a valid secret name",
                               *fragments])
    return setup


def _config_huge(project) -> Case:
    entries = "".join(f"  - {{name: s{i:06}, manager: {TARGET}}}\n" for i in range(40000))
    project.config_path.write_text(config_text_with(project, "secrets:\n" + entries))
    assert project.config_path.stat().st_size > 1 << 20
    return Case(["plan"], ["secretshift.yaml: is larger than 1 MiB"])


def _token_with_a_comment_line(project) -> Case:
    """A token file or variable with a second line would reach an HTTP header."""
    line = config_line(project, "env: VAULT_TOKEN")
    return Case(["validate"], [f"secretshift.yaml:{line}:", "environment variable VAULT_TOKEN", "several lines"],
                env={"VAULT_TOKEN": project.token + "\n# the CI token"})


CONFIG_CASES = {
    "config-truncated-mid-mapping": config_static("config_truncated.yaml", "invalid YAML"),
    "config-random-bytes": config_static("config_random_bytes.yaml", "is a binary file"),
    "config-utf16": config_static("config_utf16.yaml", "is a binary file"),
    "config-scalar-document": config_static("config_scalar.yaml", "must be a mapping"),
    "config-control-character": config_static("config_bell.yaml", "bad.yaml:2:", "#x0007"),
    "config-nested-too-deeply": config_static("config_deep.yaml", "nested too deeply"),
    "config-huge": _config_huge,
    "config-token-with-a-comment-line": _token_with_a_comment_line,
    "config-secret-name-with-nul": config_with_secret_name('"db\\0password"', "'\\x00'"),
    "config-secret-name-with-newline": config_with_secret_name('"db\\npassword"', "'\\n'"),
    "config-secret-name-dotdot-slash": config_with_secret_name('"../db_password"', "'..' are not names"),
    "config-secret-name-double-slash": config_with_secret_name('"team//db"', "'/' separates folders"),
    "config-secret-name-empty": config_with_secret_name('""', "the name is empty"),
    "config-secret-name-300-chars": config_with_secret_name("x" * 300, "longer than 256"),
    "config-secret-name-lone-surrogate": config_with_secret_name('"db\\ud800"'),
}


# --------------------------------------------------------------------------- commands

def cli(args: list[str], *fragments: str, stdin: bytes = b"", usage: bool = False) -> Callable:
    return lambda project: Case(list(args), list(fragments), stdin=stdin, usage=usage)


COMMAND_CASES = {
    "put-name-dotdot-slash-into-vault": cli(["put", TARGET, "../db_password"], "'../db_password'", f"'{TARGET}'",
                                            stdin=b"v"),
    "put-name-empty-folder-into-vault": cli(["put", TARGET, "team//db"], "'team//db'", "'/'", stdin=b"v"),
    "put-name-trailing-slash-into-vault": cli(["put", TARGET, "team/"], "'team/'", "'/'", stdin=b"v"),
    "put-name-with-newline": cli(["put", SOURCE, "db\npassword"], "'db\\npassword'", "'\\n'", stdin=b"v"),
    "put-name-empty": cli(["put", SOURCE, ""], "text secret ''", "the name is empty", stdin=b"v"),
    "put-name-300-chars-into-vault": cli(["put", TARGET, "n" * 300], "n" * 300, "longer than 256", stdin=b"v"),
    "put-name-trailing-space": cli(["put", SOURCE, "db_password "], "'db_password '", "white space", stdin=b"v"),
    "put-text-not-utf8": cli(["put", SOURCE, "db_password"], "'db_password'", "not UTF-8", "--kind file",
                             stdin=b"\xff\xfe\x00"),
    "put-from-missing-file": cli(["put", SOURCE, "x", "--kind", "file", "--from-file", "no-such.bin"],
                                 "cannot read no-such.bin"),
    "put-from-a-folder": cli(["put", SOURCE, "x", "--kind", "file", "--from-file", "stores"],
                             "cannot read stores"),
    "get-missing-secret": cli(["get", SOURCE, "no_such_secret"], f"text secret 'no_such_secret' not found in "
                              f"manager '{SOURCE}'"),
    "get-missing-in-vault": cli(["get", TARGET, "db_password"], f"not found in manager '{TARGET}'"),
    "list-unknown-manager": cli(["list", "corp_vaultt"], "unknown manager 'corp_vaultt'", "secretshift.yaml"),
    "render-missing-file": cli(["render", "pipelines/missing.yaml"], "pipelines/missing.yaml"),
    "refs-missing-path": cli(["refs", "no/such/folder"], "no/such/folder"),
    "plan-unknown-format": cli(["plan", "--format", "yaml"], "invalid choice: 'yaml'", usage=True),
    "rollback-with-nothing-to-undo": cli(["rollback", "--auto-approve"], "nothing to roll back",
                                         "secretshift.yaml"),
}


def _render_binary(project) -> Case:
    (project.root / "blob.yaml").write_bytes(b"\x00\x01" + os.urandom(64))
    return Case(["render", "blob.yaml"], ["blob.yaml is a binary file"])


COMMAND_CASES["render-binary-file"] = _render_binary

CASES = {**PLAN_CASES, **JOURNAL_CASES, **STORE_CASES, **CONFIG_CASES, **COMMAND_CASES}


def test_the_corpus_has_at_least_40_cases_and_every_static_input_is_used():
    assert len(CASES) >= 40
    source = Path(__file__).read_text()
    for path in DATA.iterdir():
        assert f'"{path.name}"' in source, f"{path.name} is not used by any case"


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_gives_one_clear_error_line_and_changes_nothing(project, case_id):
    """Exit 1, one `error:` line naming what is at fault, and every store, journal and
    project file exactly as before."""
    case = CASES[case_id](project)
    case.fragments += PLAN_FRAGMENTS.get(case_id, [])
    before = snapshot(project)
    result = project.run(*case.args, stdin=case.stdin, env=project.env(**case.env) if case.env else None)

    assert result.code == 1, result
    assert "Traceback" not in result.err and "internal error" not in result.err, result
    assert result.out == b"" or b"Apply complete" not in result.out, result
    if case.usage:
        errors = [line for line in result.err.splitlines() if "error:" in line]
        assert len(errors) == 1 and result.err.startswith("usage: secretshift"), result
        line = errors[0]
    else:
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result
        line = lines[0]
    for fragment in case.fragments:
        assert fragment in line, (fragment, result)
    for secret in SECRETS:
        assert secret.data.decode("latin-1") not in line
    assert snapshot(project) == before
    lock = project.root / ".secretshift" / "apply.lock"
    assert not lock.exists() or lock.stat().st_size == 0, "the apply lock is still held"


def test_a_refused_bad_input_leaves_the_seeded_layout_intact(project):
    """The fixture's project really holds the seeded secrets, and a bad plan refused
    by apply leaves them all in the source, exact, and Vault empty."""
    shutil.copy(DATA / "plan_garbage.bin", project.root / "p.json")
    assert project.run("apply", "p.json").code == 1
    assert project.source_values() == {s.id: s.data for s in SECRETS}
    assert project.vault_tree() == {}
