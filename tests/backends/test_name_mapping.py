"""Name mapping (issue 3, item 3): `name_map` on a manager and `rename:` on a secret put
a secret at a physical name the manager accepts, while its identity, and so every
reference to it, keeps the original name. Runs builtin -> AWS (moto) and AWS -> Vault
(simulator), and reads what landed through raw boto3/hvac."""

from __future__ import annotations

from engine import commands
from engine.model import Kind, SecretId, SecretValue

from .migration_project import make_project

VALUES = {"db password": "pa$$ word", "api key#1": "k-1", "plain_name": "p"}
PIPELINE = ('steps:\n  - run: login "${secrets.getValue("db password")}"\n'
            '  - run: key <+secrets.getValue("api key#1")> and ${secrets.getValue("plain_name")}\n')
MIGRATE = "migrations:\n  - {from: src, to: dst, mode: move}\nreferences:\n  paths: [pipeline.yaml]\n"
NAME_MAP = ', name_map: {" ": "+", "#": "="}'


def seeded(request, tmp_path, monkeypatch, dst_extra: str, body: str = MIGRATE):
    project = make_project(request, tmp_path, monkeypatch, "builtin", "aws", body, dst_extra=dst_extra)
    for name, value in VALUES.items():
        project.put("src", name, value)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    return project


def test_without_a_mapping_names_aws_refuses_are_invalid_name_errors_suggesting_one(request, tmp_path, monkeypatch):
    project = seeded(request, tmp_path, monkeypatch, "")
    doc, code = project.plan()
    assert code == 1
    assert sorted((e["code"], e["name"]) for e in doc["errors"]) == [
        ("invalid_name", "api key#1"), ("invalid_name", "db password")]
    for error in doc["errors"]:
        assert "name_map: {" in error["message"] and "rename: {dst: NEW-NAME}" in error["message"]
    assert project.dst.aws_state() == {}


def test_name_map_stores_at_the_mapped_name_and_references_still_resolve(request, tmp_path, monkeypatch):
    project = seeded(request, tmp_path, monkeypatch, NAME_MAP)
    rendered_before = commands.render(project.config, str(tmp_path / "pipeline.yaml"))

    doc, code = project.plan()
    assert code == 0, doc["errors"]
    locations = {a["name"]: a["target_location"] for a in doc["actions"]}
    assert locations == {"db password": project.dst.aws_name("db+password"),
                         "api key#1": project.dst.aws_name("api+key=1"),
                         "plain_name": project.dst.aws_name("plain_name")}
    assert all(a["references"] == 1 for a in doc["actions"])
    assert project.apply() == 0

    raw = project.dst.aws
    assert raw.get_secret_value(SecretId=project.dst.aws_name("db+password"))["SecretString"] == "pa$$ word"
    assert raw.get_secret_value(SecretId=project.dst.aws_name("api+key=1"))["SecretString"] == "k-1"
    assert sorted(project.dst.aws_state()) == sorted(locations.values())
    assert project.backend("src").list_ids() == []
    # the identities come back from the physical names: nothing left to do, pipelines unchanged
    assert sorted(s.name for s in project.backend("dst").list_ids()) == sorted(VALUES)
    doc, _ = project.plan()
    assert (doc["errors"], doc["actions"]) == ([], [])
    assert commands.render(project.config, str(tmp_path / "pipeline.yaml")) == rendered_before
    assert b'login "pa$$ word"' in rendered_before


def test_rename_on_a_secret_names_it_physically_in_that_manager(request, tmp_path, monkeypatch):
    body = MIGRATE + ('secrets:\n  - {name: "db password", manager: dst, from: src, rename: {dst: DB_PASSWORD_PROD}}\n')
    project = seeded(request, tmp_path, monkeypatch, NAME_MAP, body)
    doc, code = project.plan()
    assert code == 0, doc["errors"]
    assert {a["name"]: a["target_location"] for a in doc["actions"]}["db password"] == \
        project.dst.aws_name("DB_PASSWORD_PROD")
    assert project.apply() == 0
    assert project.dst.aws.get_secret_value(SecretId=project.dst.aws_name("DB_PASSWORD_PROD"))["SecretString"] == \
        "pa$$ word"
    assert project.read("dst", "db password") == SecretValue.from_text("pa$$ word")


def test_two_secrets_mapping_to_one_physical_name_are_a_conflict_naming_both(request, tmp_path, monkeypatch):
    body = MIGRATE + 'secrets:\n  - {name: plain_name, manager: dst, from: src, rename: {dst: "db+password"}}\n'
    project = seeded(request, tmp_path, monkeypatch, NAME_MAP, body)
    doc, code = project.plan()
    assert code == 1
    conflicts = [e for e in doc["errors"] if e["code"] == "conflict"]
    assert len(conflicts) == 1
    message = conflicts[0]["message"]
    assert "'db password'" in message and "'plain_name'" in message
    assert project.dst.aws_name("db+password") in message
    assert project.dst.aws_state() == {}


def test_a_name_that_would_read_back_as_another_is_invalid(request, tmp_path, monkeypatch):
    """With " " -> "+", the name `a+b` would come back as `a b`: refused, with the way out."""
    project = make_project(request, tmp_path, monkeypatch, "builtin", "aws", MIGRATE, dst_extra=NAME_MAP)
    project.put("src", "a+b", "v")
    doc, _ = project.plan()
    assert [(e["code"], e["name"]) for e in doc["errors"]] == [("invalid_name", "a+b")]
    assert "reads back as 'a b'" in doc["errors"][0]["message"]


def test_the_mapping_applies_when_aws_is_the_source(request, tmp_path, monkeypatch):
    """AWS -> Vault: physical AWS names map back to identities, which Vault stores as they are."""
    project = make_project(request, tmp_path, monkeypatch, "aws", "vault_kv2", MIGRATE, src_extra=NAME_MAP)
    raw = project.src.aws
    raw.create_secret(Name=project.src.aws_name("db+password"), SecretString="pa$$ word")
    raw.create_secret(Name=project.src.aws_name("api+key=1"), SecretString="k-1")
    raw.create_secret(Name=project.src.aws_name("plain_name"), SecretString="p")
    raw.create_secret(Name=project.src.aws_name("has space"), SecretString="x")  # not a mapped name
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    rendered_before = commands.render(project.config, str(tmp_path / "pipeline.yaml"))

    doc, code = project.plan()
    assert code == 0, doc["errors"]
    assert sorted(a["name"] for a in doc["actions"]) == sorted(VALUES)
    assert project.apply() == 0
    vault = project.dst.vault.secrets.kv.v2
    read = vault.read_secret_version("harness/SECRET_TEXT/db password", mount_point=project.dst.mount,
                                     raise_on_deleted_version=True)
    assert read["data"]["data"] == {"value": "pa$$ word"}
    assert commands.render(project.config, str(tmp_path / "pipeline.yaml")) == rendered_before
    assert project.backend("src").list_ids() == []
    assert project.read("dst", "api key#1", Kind.TEXT) == SecretValue.from_text("k-1")
    assert SecretId(Kind.TEXT, "has space") not in project.backend("dst").list_ids()
