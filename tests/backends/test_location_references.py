"""References that name a location (issue 4, item 7), end to end on real servers.

A project with three sources (Vault KV v2, Vault KV v1, AWS Secrets Manager on moto) and
one Vault KV v2 target, and a pipelines folder referring to the sources by location
(vals `ref+vault://` and `ref+awssecrets://`, Ansible `hashi_vault` lookups) and by name
(Harness `${secrets.getValue(...)}`). The use cases run in-process as the CLI runs them.
"""

from __future__ import annotations

import base64
import json
import os
import uuid

import hvac
import pytest
from clihelp import run_cli
from conftest import fresh_mount
from motoserver import REGION

from engine import commands
from engine.errors import PlanError, SecretShiftError, StalePlan
from engine.locrefs import places_of, resolve
from engine.locscan import scan_locations
from engine.model import Kind, SecretId, SecretValue
from engine.workspace import Workspace

TOKEN_ENV = "LOCREFS_VAULT_TOKEN"
VALUES = {
    ("v2", SecretId(Kind.TEXT, "db_password")): b"fake-db-pa55 \xc3\xbc",
    ("v2", SecretId(Kind.FILE, "tls.pem")): b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ("v2", SecretId(Kind.TEXT, "to_builtin")): b"fake-goes-to-builtin",
    ("v1", SecretId(Kind.TEXT, "api_token")): b"fake-api-token",
    ("aws", SecretId(Kind.TEXT, "stripe_key")): b"sk_fake_123",
}

DEPLOY = """\
env:
  DB_PASSWORD: ref+vault://{m2}/data/harness/SECRET_TEXT/db_password#/value
  TLS: "ref+vault://{m2}/data/harness/CONFIG_FILE/tls.pem?version=1#/value"
  API_TOKEN: ref+vault://{m1}/legacy/SECRET_TEXT/api_token#value
  STRIPE: ref+awssecrets://{prefix}stripe_key?region={region}
  OTHER: ref+vault://{m2}/data/elsewhere/SECRET_TEXT/x#/value
  TO_BUILTIN: ref+vault://{m2}/data/harness/SECRET_TEXT/to_builtin#/value
  HARNESS: ${{secrets.getValue("db_password")}}
"""
SITE = """\
- hosts: all
  vars:
    db: "{{{{ lookup('community.hashi_vault.hashi_vault', 'secret={m2}/data/harness/SECRET_TEXT/db_password:value url={url}') }}}}"
    api: "{{{{ lookup('hashi_vault', '{m1}/legacy/SECRET_TEXT/api_token:value') }}}}"
"""


class Recorder:
    """A Console that keeps what was printed; answers every question with `answer`."""

    def __init__(self, answer: bool = False):
        self.lines, self.errors, self.asked = [], [], []
        self.color, self.answer = False, answer

    def out(self, text):
        self.lines.append(text)

    def err(self, text):
        self.errors.append(text)

    def ask(self, prompt):
        self.asked.append(prompt)
        return self.answer


@pytest.fixture
def project(request, tmp_path, monkeypatch):
    """The project folder (cwd), its config and seeded managers; returns a dict of names."""
    vault, moto = request.getfixturevalue("vault"), request.getfixturevalue("moto_server")
    monkeypatch.setenv(TOKEN_ENV, vault.root_token)
    monkeypatch.chdir(tmp_path)
    names = {"m2": fresh_mount(vault, 2), "m1": fresh_mount(vault, 1), "mn": fresh_mount(vault, 2),
             "prefix": f"loc-{uuid.uuid4().hex[:8]}/", "region": REGION, "url": vault.url}
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    vault_yaml = f'type: vault, address: "{vault.url}", token: {{env: {TOKEN_ENV}}}, kv_version: auto, retries: 0'
    (tmp_path / "secretshift.yaml").write_text(f"""version: 1
managers:
  v2: {{{vault_yaml}, secret_engine: {names['m2']}, base_path: harness}}
  v1: {{{vault_yaml}, secret_engine: {names['m1']}, base_path: legacy}}
  aws: {{type: aws_secrets_manager, region: {REGION}, endpoint_url: "{moto.url}", prefix: "{names['prefix']}"}}
  new: {{{vault_yaml}, secret_engine: {names['mn']}, base_path: apps}}
  hb: {{type: builtin, path: hb.db, key: {{file: master.key}}}}
secrets:
  - {{name: to_builtin, manager: hb, from: v2, mode: move}}
migrations:
  - {{from: v2, to: new, mode: move}}
  - {{from: v1, to: new, mode: move}}
  - {{from: aws, to: new, mode: move}}
references:
  paths: ["pipelines/**/*.yaml"]
""")
    with Workspace(tmp_path / "secretshift.yaml") as ws:
        for (manager, secret), data in VALUES.items():
            ws.backend(manager).write(secret, SecretValue(data))
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "deploy.yaml").write_text(DEPLOY.format(**names))
    (tmp_path / "pipelines" / "site.yaml").write_text(SITE.format(**names))
    os.chmod(tmp_path / "pipelines" / "site.yaml", 0o640)
    names["root"] = tmp_path
    return names


def configure(project, mode: str) -> str:
    config = project["root"] / "secretshift.yaml"
    config.write_text(config.read_text().replace("mode: move", f"mode: {mode}"))
    return str(config)


def plan_json(config: str, out: str | None = None) -> dict:
    text, code = commands.plan(config, "json", out)
    assert code == 0, text
    return json.loads(text)


def expected_rewrites(p) -> dict[tuple[str, int], tuple[str, str | None]]:
    """(file, line) -> (text now, replacement) for every reference a move breaks."""
    url, m2, m1, mn = p["url"], p["m2"], p["m1"], p["mn"]
    plugin = "community.hashi_vault.hashi_vault"
    return {
        ("pipelines/deploy.yaml", 2): (f"ref+vault://{m2}/data/harness/SECRET_TEXT/db_password#/value",
                                       f"ref+vault://{mn}/data/apps/SECRET_TEXT/db_password#/value"),
        ("pipelines/deploy.yaml", 3): (f"ref+vault://{m2}/data/harness/CONFIG_FILE/tls.pem?version=1#/value",
                                       f"ref+vault://{mn}/data/apps/CONFIG_FILE/tls.pem#/value"),
        ("pipelines/deploy.yaml", 4): (f"ref+vault://{m1}/legacy/SECRET_TEXT/api_token#value",
                                       f"ref+vault://{mn}/data/apps/SECRET_TEXT/api_token#value"),
        ("pipelines/deploy.yaml", 5): (f"ref+awssecrets://{p['prefix']}stripe_key?region={REGION}",
                                       f"ref+vault://{mn}/data/apps/SECRET_TEXT/stripe_key?address={url}#/value"),
        ("pipelines/deploy.yaml", 7): (f"ref+vault://{m2}/data/harness/SECRET_TEXT/to_builtin#/value", None),
        ("pipelines/site.yaml", 3): (
            f"lookup('{plugin}', 'secret={m2}/data/harness/SECRET_TEXT/db_password:value url={url}')",
            f"lookup('{plugin}', 'secret={mn}/data/apps/SECRET_TEXT/db_password:value url={url}')"),
        ("pipelines/site.yaml", 4): (f"lookup('hashi_vault', '{m1}/legacy/SECRET_TEXT/api_token:value')",
                                     f"lookup('hashi_vault', '{mn}/data/apps/SECRET_TEXT/api_token:value')"),
    }


def rewritten_files(p) -> dict[str, str]:
    """The exact pipeline files after --rewrite-references."""
    deploy, site = DEPLOY.format(**p), SITE.format(**p)
    for (file, _), (old, new) in expected_rewrites(p).items():
        if new is not None:
            if file.endswith("deploy.yaml"):
                deploy = deploy.replace(old, new)
            else:
                site = site.replace(old, new)
    return {"pipelines/deploy.yaml": deploy, "pipelines/site.yaml": site}


def files(p) -> dict[str, str]:
    return {name: (p["root"] / name).read_text() for name in ("pipelines/deploy.yaml", "pipelines/site.yaml")}


def test_a_move_plan_lists_exactly_the_location_references_it_breaks(project):
    config = configure(project, "move")
    doc = plan_json(config)
    got = {(b["file"], b["line"]): (b["text"], b["replacement"]) for b in doc["broken_references"]}
    assert got == expected_rewrites(project)
    by_line = {(b["file"], b["line"]): b for b in doc["broken_references"]}
    stripe = by_line[("pipelines/deploy.yaml", 5)]
    assert (stripe["column"], stripe["syntax"], stripe["kind"], stripe["name"], stripe["from"], stripe["to"]) == \
        (11, "vals-awssecrets", "text", "stripe_key", "aws", "new")
    builtin = by_line[("pipelines/deploy.yaml", 7)]
    assert builtin["to"] == "hb" and "has no location a reference can name" in builtin["reason"]
    assert all(b["reason"] is None for b in doc["broken_references"] if b["replacement"])
    # the name-based reference is counted, with its site, and is not a broken one
    db = next(a for a in doc["actions"] if a["name"] == "db_password")
    assert (db["references"], db["reference_sites"]) == (1, ["pipelines/deploy.yaml:8:12"])
    assert "fake-" not in json.dumps(doc) and "sk_fake" not in json.dumps(doc)  # locations, never values
    text, _ = commands.plan(config, "text")
    assert "References naming a location this plan deletes" in text
    assert f"    > ref+vault://{project['mn']}/data/apps/SECRET_TEXT/db_password#/value" in text
    markdown, _ = commands.plan(config, "markdown")
    assert "### References broken by this plan" in markdown and "7 references name the location" in markdown


def test_a_copy_plan_breaks_no_reference(project):
    doc = plan_json(configure(project, "copy"))
    assert doc["summary"]["copy"] == 5 and doc["broken_references"] == []


def test_apply_rewrite_references_rewrites_the_files_and_the_new_locations_hold_the_values(project):
    config = configure(project, "move")
    root = project["root"]
    harness_before = commands.render(config, "pipelines/deploy.yaml")
    plan_json(config, out="plan.json")
    console = Recorder()
    assert commands.apply(config, "plan.json", True, console, rewrite_references=True) == 0
    assert files(project) == rewritten_files(project)
    assert os.stat(root / "pipelines" / "site.yaml").st_mode & 0o777 == 0o640
    printed = "\n".join(console.lines)
    assert f"-  DB_PASSWORD: ref+vault://{project['m2']}/data/harness/SECRET_TEXT/db_password#/value" in printed
    assert f"+  DB_PASSWORD: ref+vault://{project['mn']}/data/apps/SECRET_TEXT/db_password#/value" in printed
    assert printed.endswith("6 references naming a location now name the new one. "
                            "1 reference could not be rewritten and no longer works (see the plan).")
    assert printed.index("--- a/pipelines/deploy.yaml") < printed.index("Apply complete!")
    assert "fake-" not in printed and "sk_fake" not in printed
    # every rewritten reference names a location that really holds the value
    with Workspace(config) as ws:
        places = places_of(ws.backends())
        for file, text in files(project).items():
            for ref in scan_locations(text, file):
                named = resolve(ref, list(places.values()), lambda s: [])
                if ref.path.startswith(project["mn"]):
                    assert len(named) == 1 and named[0][0] == "new", ref
                    manager, secret = named[0]
                    source = next(m for m, s in VALUES if s == secret)
                    assert ws.backend(manager).read(secret).data == VALUES[(source, secret)]
    raw = hvac.Client(url=project["url"], token=os.environ[TOKEN_ENV])
    data = raw.secrets.kv.v2.read_secret_version(path="apps/SECRET_TEXT/stripe_key", mount_point=project["mn"],
                                                  raise_on_deleted_version=True)["data"]["data"]
    assert data == {"value": "sk_fake_123"}
    # name-based references are untouched and render the same values
    assert commands.render(config, "pipelines/deploy.yaml") != b""
    assert harness_before.split(b"HARNESS: ")[1] == commands.render(config, "pipelines/deploy.yaml").split(b"HARNESS: ")[1]
    assert '${secrets.getValue("db_password")}' in files(project)["pipelines/deploy.yaml"]
    # running the same plan again finds everything done and rewrites nothing twice
    again = Recorder()
    assert commands.apply(config, "plan.json", True, again, rewrite_references=True) == 0
    assert files(project) == rewritten_files(project)
    assert not any("--- a/" in line for line in again.lines)


def test_apply_without_the_flag_leaves_the_files_and_a_later_run_with_it_rewrites_them(project):
    config = configure(project, "move")
    before = files(project)
    console = Recorder()
    assert commands.apply(config, None, True, console) == 0
    assert files(project) == before
    assert console.lines[-1] == ("7 references naming where a secret was still point there (listed in the plan); "
                                 "`apply --rewrite-references` rewrites them.")
    # later, with the flag: nothing is left to move, and the last apply's rewrites are finished
    declined = Recorder(answer=False)
    assert commands.apply(config, None, False, declined, rewrite_references=True) == 1
    assert files(project) == before and declined.asked == ["Rewrite these references? Only 'yes' will be accepted: "]
    finishing = Recorder()
    assert commands.apply(config, None, True, finishing, rewrite_references=True) == 0
    assert files(project) == rewritten_files(project)
    assert finishing.lines[-1].startswith("6 references naming a location now name the new one.")
    assert commands.apply(config, None, True, Recorder(), rewrite_references=True) == 0  # done: nothing more
    assert files(project) == rewritten_files(project)


def test_a_stale_file_refuses_the_apply_before_any_write(project):
    config = configure(project, "move")
    plan_json(config, out="plan.json")
    deploy = project["root"] / "pipelines" / "deploy.yaml"
    deploy.write_text(deploy.read_text().replace("  API_TOKEN:", "  # edited\n  API_TOKEN:"))
    edited = files(project)
    with pytest.raises(StalePlan, match=r"pipelines/deploy.yaml:4:\d+ no longer holds"):
        commands.apply(config, "plan.json", True, Recorder(), rewrite_references=True)
    assert files(project) == edited
    with Workspace(config) as ws:  # no secret was written nor deleted anywhere
        for (manager, secret), data in VALUES.items():
            assert ws.backend(manager).read(secret).data == data
        assert ws.backend("new").list_ids() == [] and ws.backend("hb").list_ids() == []


def test_asking_shows_the_diff_and_no_answer_writes_nothing(project):
    config = configure(project, "move")
    before = files(project)
    console = Recorder(answer=False)
    assert commands.apply(config, None, False, console, rewrite_references=True) == 1
    assert files(project) == before and len(console.asked) == 1
    assert any(line.startswith("References to rewrite once every action is verified") for line in console.lines)
    with Workspace(config) as ws:
        assert ws.backend("new").list_ids() == []


def test_a_failed_apply_rewrites_nothing_and_its_resume_rewrites_everything(project, vault):
    if not hasattr(vault, "add_fault"):
        pytest.skip("needs the simulator's fault injection")
    config = configure(project, "move")
    before = files(project)
    vault.add_fault(403, rf"^{project['mn']}/data/apps/", "POST", count=None, after=1)
    try:
        with pytest.raises(Exception, match="cannot write"):
            commands.apply(config, None, True, Recorder(), rewrite_references=True)
        assert files(project) == before
    finally:
        vault.clear_faults()
    console = Recorder()
    assert commands.apply(config, None, True, console, rewrite_references=True) == 0
    assert console.lines[0].startswith("Resuming apply")
    assert files(project) == rewritten_files(project)


def test_a_saved_plan_whose_rewrite_was_edited_is_refused_before_any_write(project):
    config = configure(project, "move")
    plan_json(config, out="plan.json")
    plan_file = project["root"] / "plan.json"
    saved = json.loads(plan_file.read_text())
    saved["broken_references"][0]["replacement"] = "ref+vault://attacker/data/x/SECRET_TEXT/db_password#/value"
    plan_file.write_text(json.dumps(saved))
    before = files(project)
    with pytest.raises(PlanError, match=r"rewrite of pipelines/deploy.yaml:2:16 is not one this config produces"):
        commands.apply(config, "plan.json", True, Recorder(), rewrite_references=True)
    assert files(project) == before
    with Workspace(config) as ws:
        assert ws.backend("new").list_ids() == []


def test_the_installed_command_rewrites_with_a_saved_plan(project):
    config = configure(project, "move")
    root = project["root"]
    assert run_cli(["plan", "--out", "plan.json", "-c", config], root, dict(os.environ)).code == 0
    result = run_cli(["apply", "plan.json", "--rewrite-references", "--auto-approve"], root, dict(os.environ))
    assert result.code == 0, result
    assert "+++ b/pipelines/site.yaml" in result.stdout
    assert files(project) == rewritten_files(project)


def test_a_symlinked_pipeline_file_stays_a_link_and_the_file_it_points_to_is_rewritten(project):
    """The link is kept; its target, in a folder references.paths does not match, is rewritten
    in place with its mode, and no temporary file is left in either folder."""
    config = configure(project, "move")
    root = project["root"]
    (root / "shared").mkdir()
    real, link = root / "shared" / "deploy.yaml", root / "pipelines" / "deploy.yaml"
    os.replace(link, real)
    os.chmod(real, 0o640)
    link.symlink_to(os.path.join("..", "shared", "deploy.yaml"))
    assert commands.apply(config, None, True, Recorder(), rewrite_references=True) == 0
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "shared", "deploy.yaml")
    assert real.read_text() == rewritten_files(project)["pipelines/deploy.yaml"]
    assert os.stat(real).st_mode & 0o777 == 0o640
    assert files(project) == rewritten_files(project)
    assert not [p for p in (root / "shared").iterdir() if p != real]
    assert sorted(p.name for p in (root / "pipelines").iterdir()) == ["deploy.yaml", "site.yaml"]


def test_a_file_scanned_through_a_link_and_its_own_path_is_rewritten_once(project):
    """Both paths are in the plan; the file is shown and rewritten once, and the link stays."""
    config = configure(project, "move")
    alias = project["root"] / "pipelines" / "alias.yaml"
    alias.symlink_to("deploy.yaml")
    assert {b["file"] for b in plan_json(config)["broken_references"]} == \
        {"pipelines/alias.yaml", "pipelines/deploy.yaml", "pipelines/site.yaml"}
    console = Recorder()
    assert commands.apply(config, None, True, console, rewrite_references=True) == 0
    assert alias.is_symlink() and files(project) == rewritten_files(project)
    printed = "\n".join(console.lines)
    assert printed.count("+++ b/") == 2 and "+++ b/pipelines/alias.yaml" in printed


def test_a_link_pointed_elsewhere_after_the_diff_was_shown_is_not_rewritten(project):
    """The file written is the one checked and shown: a link retargeted meanwhile (here to a
    copy with the same text) counts as a change, and neither file is touched."""
    config = configure(project, "move")
    root = project["root"]
    real, copy, link = root / "deploy.real", root / "deploy.copy", root / "pipelines" / "deploy.yaml"
    os.replace(link, real)
    copy.write_text(real.read_text())
    link.symlink_to(real)

    class Retargeting(Recorder):
        def ask(self, prompt):
            link.unlink()
            link.symlink_to(copy)
            return True

    with pytest.raises(SecretShiftError, match="pipelines/deploy.yaml changed while apply ran"):
        commands.apply(config, None, False, Retargeting(), rewrite_references=True)
    assert real.read_text() == copy.read_text() == DEPLOY.format(**project)
    assert link.is_symlink() and os.readlink(link) == str(copy)


def test_nothing_left_to_rewrite_prints_no_rewrite_diff_header(project):
    """With every reference rewritten already, apply shows no diff header, whether the plan
    still has actions, is applied again, or nothing is left to move."""
    config = configure(project, "move")
    plan_json(config, out="plan.json")
    for name, text in rewritten_files(project).items():  # rewritten by hand before the apply
        (project["root"] / name).write_text(text)
    runs = [Recorder(), Recorder(), Recorder()]
    assert commands.apply(config, "plan.json", True, runs[0], rewrite_references=True) == 0
    assert commands.apply(config, "plan.json", True, runs[1], rewrite_references=True) == 0
    assert commands.apply(config, None, True, runs[2], rewrite_references=True) == 0
    for console in runs:
        assert not any("References to rewrite" in line or "--- a/" in line for line in console.lines)
    assert runs[0].lines[-1].startswith("6 references naming a location now name the new one.")
    assert files(project) == rewritten_files(project)
