"""Config loading: secretshift.yaml -> a checked, typed Config, or every problem at file:line:col.

Invalid configs live in tests/data/configs/invalid/, one file per case, with a marker
comment on each failing line:
    `# ERROR: message`       the problem is on this line
    `# ERROR@17: message`    ... at column 17
    `# ERROR@file: message`  the problem is about the file as a whole (no line)
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import jsonschema
import pytest

from engine import schema, yamlmarks
from engine.config import Config, ManagerConfig, Migration, Policy, SecretPlacement, load_config
from engine.errors import ConfigError
from engine.model import Kind, SecretValue

DATA = Path(__file__).parent / "data" / "configs"
VALID = DATA / "valid"
INVALID_FILES = sorted((DATA / "invalid").glob("*.yaml"))

ENV_KEY = bytes(range(100, 132))  # the builtin master key given through SECRETSHIFT_KEY
FILE_KEY = bytes(range(32))  # the one in valid/keys/master.key
ENV_TOKEN = "env-token-for-config-tests"
MARKER = re.compile(r"#\s*ERROR(?:@(\d+|file))?:\s*(.*?)\s*$")


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """Every test sees the same variables, whatever the developer's shell holds."""
    monkeypatch.setenv("SECRETSHIFT_KEY", base64.b64encode(ENV_KEY).decode())
    monkeypatch.setenv("SECRETSHIFT_TEST_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("SECRETSHIFT_TEST_EMPTY", "")
    monkeypatch.setenv("SECRETSHIFT_TEST_SHORT_KEY", base64.b64encode(b"k" * 16).decode())
    monkeypatch.setenv("SECRETSHIFT_TEST_TINY", "tiny!")
    monkeypatch.delenv("VAULT_TOKEN", raising=False)


def expected_problems(path: Path) -> list[tuple[int | None, int | None, str]]:
    """(line, column, message) for each marker comment in `path`."""
    expected = []
    text = path.read_bytes().decode("utf-8", "replace")
    for number, line in enumerate(text.split("\n"), start=1):
        found = MARKER.search(line)
        if found:
            where, message = found.groups()
            if where == "file":
                expected.append((None, None, message))
            else:
                expected.append((number, int(where) if where else None, message))
    return expected


def load_problems(path: Path) -> list:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


# ---- invalid configs ------------------------------------------------------------------


def test_there_is_an_invalid_config_for_every_rule():
    """The marker suite covers at least the 25 cases the contract lists."""
    assert len(INVALID_FILES) >= 25
    assert all(expected_problems(path) for path in INVALID_FILES)


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_invalid_config_reports_exactly_the_marked_problems(path):
    """Each marked problem is reported at its line (and column), and nothing else is."""
    expected = expected_problems(path)
    problems = load_problems(path)
    assert all(p.file == str(path) for p in problems)
    columns_checked = {line for line, column, _ in expected if column is not None}
    actual = [
        (p.line, p.column if p.line in columns_checked or p.line is None else None, p.message)
        for p in problems
    ]
    assert sorted(actual, key=repr) == sorted(expected, key=repr)


def test_several_problems_are_all_reported_sorted_by_line():
    """One ConfigError carries every schema and semantic problem, in file order."""
    path = DATA / "invalid" / "several_problems.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert [p.line for p in problems] == [9, 10, 11, 14, 15, 18, 20]
    assert str(caught.value).splitlines() == [str(p) for p in problems]
    assert str(problems[2]) == f"{path}:11:17: managers.corp_vault.kv_version must be auto, 1 or 2"


def test_missing_config_file_names_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("secretshift.yaml")
    assert str(caught.value) == "secretshift.yaml: no such file (use -c/--config to name another)"


def test_folder_given_as_config_is_refused(tmp_path):
    assert [p.message for p in load_problems(tmp_path)] == ["is a folder, not a config file"]


def test_huge_config_is_refused_without_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"version: 1\n" + b"#" * (1 << 20))
    problems = load_problems(path)
    assert [(p.line, p.message) for p in problems] == [
        (None, "is larger than 1 MiB; a config file this big is refused")
    ]


def test_alias_bomb_is_refused(tmp_path):
    """Nested aliases that would expand to millions of values stop at a fixed budget."""
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert [p.message for p in load_problems(path)] == [
        "expands to more than 100000 values (aliases nested too deeply)"
    ]


def test_no_credential_content_appears_in_any_message(tmp_path, monkeypatch):
    """Unusable credentials are named by variable, file and key path, never shown."""
    canary = "Zq7xW-41e9c"  # appears in no name, path or message text
    monkeypatch.setenv("CANARY_KEY", f"{canary}-not-base64")
    monkeypatch.setenv("CANARY_FINGERPRINT", canary[:10])  # too short for a key
    (tmp_path / "canary.key").write_text(f"{canary}-in-a-key-file\n")
    (tmp_path / "canary.token").write_bytes(f"{canary}-token".encode() + b"\xff\n")
    (tmp_path / "secretshift.yaml").write_text(
        "version: 1\n"
        "managers:\n"
        "  from_env: {type: builtin, path: a.db, key: {env: CANARY_KEY}}\n"
        "  from_file: {type: builtin, path: b.db, key: {file: canary.key}}\n"
        "  vault_file: {type: vault, address: 'https://v.example', token: {file: canary.token}}\n"
        f"  vault_inline: {{type: vault, address: 'https://v.example', token: {canary}}}\n"
        "fingerprint_key: {env: CANARY_FINGERPRINT}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "secretshift.yaml")
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 5, messages
    assert "managers.from_env.key is not usable: the key from environment variable CANARY_KEY " \
           "is not valid base64" in messages
    assert "managers.vault_file.token is not usable: the token from file canary.token " \
           "is not UTF-8 text" in messages
    assert canary not in str(caught.value)
    assert canary not in repr(caught.value.problems)


# ---- valid configs --------------------------------------------------------------------


def test_full_example_loads_every_key():
    path = VALID / "full.yaml"
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.path == path and config.base_dir == VALID
    assert list(config.managers) == ["harness", "corp_vault", "aws"]
    assert config.managers["harness"] == ManagerConfig(
        id="harness", type="builtin", read_only=True, line=4,
        settings={"path": str(VALID / ".secretshift/harness.db"), "key": SecretValue(ENV_KEY),
                  "read_only": True},
    )
    assert dict(config.managers["corp_vault"].settings) == {
        "address": "https://vault.example.com:8200", "token": SecretValue.from_text(ENV_TOKEN),
        "namespace": "platform", "secret_engine": "kv", "base_path": "harness", "kv_version": 2,
        "ca_cert": str(VALID / "certs/ca.pem"), "read_only": False, "file_encoding": "utf-8",
        "max_value_bytes": 1048576, "timeout": 7.5, "parallelism": 8, "retries": 3, "name_map": None,
    }
    assert config.managers["aws"] == ManagerConfig(
        id="aws", type="aws_secrets_manager", read_only=False, line=24,
        settings={"region": "eu-west-1", "prefix": "harness/", "endpoint_url": "http://127.0.0.1:5000",
                  "profile": "migration", "read_only": False, "parallelism": 4,
                  "recovery_window_days": None, "name_map": None},
    )
    assert config.secrets == (
        SecretPlacement("db_password", Kind.TEXT, "corp_vault", source="harness", mode="copy", line=33),
        SecretPlacement("db_password", Kind.FILE, "aws", source=None, mode="move", line=38),
    )
    assert config.migrations == (
        Migration("harness", "corp_vault", "move", kinds=(Kind.FILE,), include=("app_*", "db_*"),
                  exclude=("*_old",), line=42),
    )
    assert config.on_conflict == "skip"
    assert config.reference_paths == ("pipelines/**/*.yaml", "templates/*.json")
    assert config.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config.fingerprint_key == SecretValue(b"fingerprint key for the config tests\n")
    assert config.policy == Policy(no_deletes=False, no_overwrite_unmanaged=True, max_changes=200,
                                   source_only=("harness",))
    assert load_config(VALID / "minimal.yaml").policy == Policy()  # every gate open by default


def test_defaults_are_filled_in():
    config = load_config(str(VALID / "minimal.yaml"))
    assert dict(config.managers["harness"].settings) == {
        "path": str(VALID / "harness.db"), "key": SecretValue(ENV_KEY), "read_only": False,
    }
    assert dict(config.managers["corp_vault"].settings) == {
        "address": "https://vault.example.com", "token": SecretValue.from_text(ENV_TOKEN),
        "namespace": None, "secret_engine": "secret", "base_path": "", "kv_version": "auto",
        "ca_cert": None, "read_only": False, "file_encoding": "base64", "max_value_bytes": None,
        "timeout": None, "parallelism": None, "retries": 5, "name_map": None,
    }
    assert dict(config.managers["aws"].settings) == {
        "region": None, "prefix": "", "endpoint_url": None, "profile": None,
        "read_only": False, "parallelism": None, "recovery_window_days": None, "name_map": None,
    }
    assert config.secrets == (SecretPlacement("db_password", Kind.TEXT, "corp_vault", None, "move", line=15),)
    assert config.migrations == (
        Migration("harness", "corp_vault", "copy", (Kind.TEXT, Kind.FILE), ("*",), (), line=18),
    )
    assert (config.on_conflict, config.reference_paths, config.fingerprint_key) == ("fail", (), None)


@pytest.mark.parametrize("config_arg", ["absolute", "relative to the working folder"])
def test_relative_paths_resolve_against_the_config_folder(config_arg, tmp_path, monkeypatch):
    if config_arg == "absolute":
        monkeypatch.chdir(tmp_path)
        config = load_config(VALID / "relative.yaml")
    else:
        monkeypatch.chdir(DATA)
        config = load_config(Path("valid/relative.yaml"))
    harness, vault = config.managers["harness"].settings, config.managers["local_vault"].settings
    assert Path(harness["path"]) == VALID / "stores/harness.db"
    assert harness["key"] == SecretValue(FILE_KEY)
    assert vault["token"] == SecretValue.from_text("test-token-from-file")
    assert Path(vault["ca_cert"]) == VALID / "certs/ca.pem"
    assert config.fingerprint_key == SecretValue(b"fingerprint key for the config tests\n")


def test_fingerprint_key_in_base64_is_decoded(tmp_path):
    (tmp_path / "fp.key").write_text(base64.b64encode(FILE_KEY).decode() + "\n")
    text = (VALID / "minimal.yaml").read_text() + "fingerprint_key: {file: fp.key}\n"
    (tmp_path / "secretshift.yaml").write_text(text)
    assert load_config(tmp_path / "secretshift.yaml").fingerprint_key == SecretValue(FILE_KEY)


def test_anchors_aliases_and_merge_keys_are_plain_yaml():
    config = load_config(VALID / "anchors.yaml")
    settings = {name: manager.settings for name, manager in config.managers.items()}
    assert settings["vault_b"]["token"] == SecretValue.from_text(ENV_TOKEN)
    assert settings["vault_c"]["token"] == SecretValue.from_text(ENV_TOKEN)
    assert [settings[n]["kv_version"] for n in ("vault_a", "vault_b", "vault_c")] == [1, 2, "auto"]
    assert settings["vault_b"]["address"] == "http://[::1]:8201"
    assert [(s.name, s.source) for s in config.secrets] == [("2024-01-01", None), ("yes", "vault_a")]


def test_loaded_config_does_not_show_credentials():
    assert ENV_TOKEN not in repr(load_config(VALID / "full.yaml"))


# ---- the schema file ------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_closed():
    loaded = schema.load_schema()
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(loaded)
    for name, definition in loaded["$defs"].items():
        if definition.get("type") == "object" and name != "manager":
            assert definition["additionalProperties"] is False, name


def test_every_valid_example_passes_the_schema_alone():
    """The schema accepts the valid examples on its own (other tools may use it)."""
    for path in VALID.glob("*.yaml"):
        data, _, problems = yamlmarks.parse_yaml(path.read_bytes(), path.name)
        assert problems == []
        assert list(jsonschema.Draft202012Validator(schema.load_schema()).iter_errors(data)) == [], path


def _yaml_documents() -> list[tuple[str, object]]:
    import yaml

    found = []
    for path in sorted(VALID.glob("*.yaml")) + INVALID_FILES:
        try:
            found.append((path.name, yaml.safe_load(path.read_text("utf-8"))))
        except (yaml.YAMLError, UnicodeDecodeError, ValueError):
            continue  # not YAML at all: never reaches the schema
    return found


def test_the_fast_validity_check_agrees_with_jsonschema_on_every_sample_config():
    """jsonschema-rs decides whether a config goes on to jsonschema's worded errors, so it
    must call valid exactly what jsonschema does: checked on every sample, valid or not."""
    fast, full = schema._fast_validator(), schema._validator()
    documents = _yaml_documents()
    assert len(documents) > 40
    for name, document in documents:
        assert schema.fast_is_valid(fast, document) == full.is_valid(document), name


def test_an_entry_naming_one_vault_as_manager_and_from_does_not_clash_with_itself():
    from engine.vault_mapping import check_entries

    managers = {"v": {"type": "vault"}}
    entry = {"name": "db", "manager": "v", "from": "v", "vault_path": "app/db", "vault_key": "password"}
    assert check_entries([(("secrets", 0), entry)], managers) == []
