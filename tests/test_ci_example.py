"""examples/ci: the GitHub Actions workflow, its config, and the commands it runs.

GitHub itself cannot run here, so this checks what can be checked: the workflow's shape
(triggers, jobs, permissions, concurrency, pinned actions, the secretshift commands in
order), that the example config loads, and that the workflow's own `run:` scripts, taken
from the YAML and run with bash as Actions runs them, do the review loop on the quickstart:
the plan job in one checkout, the apply job in another (sharing only the builtin store, as
the self-hosted runner does, and the keys, as the repository secrets do), and the rollback
job in a third, from the journal the apply job keeps as an artifact.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.config import load_config
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "examples" / "ci"
WORKFLOW = CI / "github-actions.yml"
QUICKSTART = ROOT / "examples" / "quickstart"
BIN = Path(sys.executable).parent  # secretshift is installed beside this interpreter

# Part of the quickstart, seeded through `secretshift put`: the secrets that
# pipelines/build-frontend.yaml refers to (the other pipelines are left out of the copies,
# so that every reference resolves without seeding all 28 secrets).
PIPELINE = "build-frontend.yaml"
SEED = {
    ("text", "npm_token"): b"npm_FAKEfakeFAKEfake0000000000000000000",
    ("text", "shared_token"): b"FAKE-account-level-token",
    ("text", "signing_passphrase"): "Pässwörd-ünïcödé-密码-пароль-🔑-FAKE".encode(),
    ("text", "sonar_token"): b"it's a 'single-quoted' FAKE token",
    ("file", "npmrc"): b"//registry.npmjs.org/:_authToken=npm_FAKE\nalways-auth=true\n",
}


def _workflow() -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    data = yaml.safe_load(WORKFLOW.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def _step(job: dict, step_id: str) -> dict:
    matches = [s for s in job["steps"] if s.get("id") == step_id]
    assert len(matches) == 1, f"expected one step with id {step_id!r}"
    return matches[0]


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# --- the workflow file ---------------------------------------------------------------

def test_workflow_triggers_jobs_permissions_and_concurrency():
    wf = _workflow()
    on = wf["on"]
    assert on["pull_request"]["branches"] == ["main"] and on["push"]["branches"] == ["main"]
    assert on["pull_request"]["paths"] == on["push"]["paths"], "a merge must find the plan run its PR had"
    assert "rollback_run_id" in on["workflow_dispatch"]["inputs"]
    assert "pull_request_target" not in on

    assert wf["permissions"] == {}, "nothing by default; jobs ask for what they need"
    jobs = wf["jobs"]
    assert set(jobs) == {"plan", "apply", "rollback"}
    assert jobs["plan"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["apply"]["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "read"}
    assert jobs["rollback"]["permissions"] == {"contents": "read", "actions": "read"}
    assert "github.event_name == 'pull_request'" in jobs["plan"]["if"]
    assert "head.repo.full_name == github.repository" in jobs["plan"]["if"], "no fork code with secrets"
    assert jobs["apply"]["if"] == "github.event_name == 'push'"
    assert jobs["rollback"]["if"] == "github.event_name == 'workflow_dispatch'"

    # Two applies (or an apply and a rollback) never run at once, and none is cancelled halfway.
    assert jobs["apply"]["concurrency"] == jobs["rollback"]["concurrency"] == {
        "group": "secretshift-apply", "cancel-in-progress": False}
    assert jobs["plan"]["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in jobs["plan"]["concurrency"]["group"]


def test_workflow_credentials_come_only_from_secrets():
    wf = _workflow()
    text = WORKFLOW.read_text()
    for name, job in wf["jobs"].items():
        env = job["env"]
        assert env["SECRETSHIFT_KEY"] == "${{ secrets.SECRETSHIFT_KEY }}", name
        assert env["SECRETSHIFT_FINGERPRINT_KEY"] == "${{ secrets.SECRETSHIFT_FINGERPRINT_KEY }}", name
    assert wf["jobs"]["plan"]["env"]["VAULT_TOKEN"] == "${{ secrets.VAULT_READ_TOKEN }}"
    assert wf["jobs"]["apply"]["env"]["VAULT_TOKEN"] == "${{ secrets.VAULT_TOKEN }}"
    assert wf["jobs"]["rollback"]["env"]["VAULT_TOKEN"] == "${{ secrets.VAULT_TOKEN }}"
    # secrets appear nowhere but in those env mappings
    assert text.count("${{ secrets.") == 9
    for job in wf["jobs"].values():
        for step in job["steps"]:
            # No expression is pasted into a shell script (script injection); everything
            # reaches the scripts through env.
            assert "${{" not in step.get("run", ""), step.get("name")
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False


def test_workflow_actions_are_pinned_by_major_version():
    uses = [s["uses"] for job in _workflow()["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"actions/[a-z-]+@v\d+", ref), ref


def _commands(job: dict) -> list[str]:
    """The secretshift command lines of a job's run scripts, in order."""
    lines = [line.strip() for step in job["steps"] for line in step.get("run", "").splitlines()]
    return [re.sub(r"\s*(\|\||>>?).*$", "", line) for line in lines if line.startswith("secretshift ")]


def test_workflow_runs_the_commands_in_order():
    jobs = _workflow()["jobs"]
    assert _commands(jobs["plan"]) == [
        "secretshift validate --no-color",
        "secretshift plan --out plan.json --detailed-exitcode --no-color --no-write-check",
        "secretshift show plan.json --format markdown",
    ]
    assert _commands(jobs["apply"]) == [
        "secretshift show reviewed-plan/plan.json --no-color",
        "secretshift show reviewed-plan/plan.json --format markdown",
        "secretshift apply reviewed-plan/plan.json --no-color",
        "secretshift plan --detailed-exitcode --no-color",
    ]
    assert _commands(jobs["rollback"]) == ["secretshift rollback --auto-approve --no-color"]


def test_workflow_moves_the_reviewed_plan_from_pull_request_to_merge():
    jobs = _workflow()["jobs"]
    plan_steps, apply_steps = jobs["plan"]["steps"], jobs["apply"]["steps"]
    names = [s.get("uses", "").split("@")[0] or s.get("id") for s in plan_steps]
    assert names.index("render") < names.index("actions/github-script") < names.index("actions/upload-artifact")
    upload = next(s for s in plan_steps if s.get("uses", "").startswith("actions/upload-artifact"))
    download = next(s for s in apply_steps if s.get("uses", "").startswith("actions/download-artifact"))
    assert upload["with"]["name"] == download["with"]["name"] == "secretshift-plan"
    assert "plan.json" in upload["with"]["path"]
    assert download["with"]["run-id"] == "${{ steps.reviewed.outputs.run_id }}"
    assert download["with"]["path"].endswith("/reviewed-plan")

    comment = next(s for s in plan_steps if s.get("uses", "").startswith("actions/github-script"))
    script = comment["with"]["script"]
    assert "<!-- secretshift-plan -->" in script and "updateComment" in script and "createComment" in script
    assert comment["if"] == "${{ !cancelled() }}", "a failed plan replaces the old comment, never leaves it up"

    reviewed = _step(jobs["apply"], "reviewed")["with"]["script"]
    assert "listPullRequestsAssociatedWithCommit" in reviewed and "merge_commit_sha === context.sha" in reviewed
    assert "conclusion !== 'success'" in reviewed

    keep = next(s for s in apply_steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert keep["with"]["include-hidden-files"] is True  # .secretshift/ is a hidden folder
    assert "!${{ env.SECRETSHIFT_DIR }}/.secretshift/apply.lock" in keep["with"]["path"]
    restore = next(s for s in jobs["rollback"]["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert restore["with"]["name"] == keep["with"]["name"]


# --- the example config --------------------------------------------------------------

def test_example_config_loads_with_its_env_vars(monkeypatch):
    for name in ("SECRETSHIFT_KEY", "VAULT_TOKEN", "SECRETSHIFT_FINGERPRINT_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as refused:
        load_config(CI / "secretshift.yaml")
    for name in ("SECRETSHIFT_KEY", "VAULT_TOKEN", "SECRETSHIFT_FINGERPRINT_KEY"):
        assert f"environment variable {name}" in str(refused.value)

    monkeypatch.setenv("SECRETSHIFT_KEY", _key())
    monkeypatch.setenv("VAULT_TOKEN", "hvs.FAKE")
    monkeypatch.setenv("SECRETSHIFT_FINGERPRINT_KEY", _key())
    config = load_config(CI / "secretshift.yaml")
    assert {m: config.managers[m].type for m in config.managers} == {"harness": "builtin", "corp_vault": "vault"}
    assert config.fingerprint_key is not None
    assert [(m.source, m.target, m.mode) for m in config.migrations] == [("harness", "corp_vault", "move")]
    # the workflow checks for the store where the config says it is
    raw = yaml.safe_load((CI / "secretshift.yaml").read_text())
    assert raw["fingerprint_key"] == {"env": "SECRETSHIFT_FINGERPRINT_KEY"}
    assert raw["managers"]["harness"]["path"] == _workflow()["env"]["BUILTIN_STORE"]


# --- the workflow's scripts on the quickstart ------------------------------------------

class Runner:
    """Runs one job's `run:` scripts as GitHub Actions does (bash -eo pipefail, the job's
    env with secrets filled in, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files)."""

    def __init__(self, job: str, checkout: Path, secrets: dict[str, str], store: Path):
        self.job = _workflow()["jobs"][job]
        self.checkout = checkout
        self.secrets = secrets
        self.outputs: dict[str, dict[str, str]] = {}
        self.summary = checkout.parent / f"{checkout.name}-summary.md"
        self.env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                    "HOME": os.environ.get("HOME", str(checkout)), "LANG": "C.UTF-8",
                    "SECRETSHIFT_DIR": str(checkout), "BUILTIN_STORE": str(store / "harness.db"),
                    "GITHUB_STEP_SUMMARY": str(self.summary)}
        self.env.update({k: self._resolve(v) for k, v in self.job["env"].items()})

    def _resolve(self, value: str) -> str:
        def one(match: re.Match) -> str:
            expr = match.group(1).strip()
            if m := re.fullmatch(r"secrets\.(\w+)", expr):
                return self.secrets[m.group(1)]
            if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.(\w+)", expr):
                return self.outputs.get(m.group(1), {}).get(m.group(2), "")
            raise AssertionError(f"the test cannot evaluate ${{{{ {expr} }}}}")
        return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))

    def run(self, step_id: str, expect: int = 0) -> subprocess.CompletedProcess:
        step = _step(self.job, step_id)
        output = self.checkout.parent / f"{self.checkout.name}-{step_id}.out"
        output.write_text("")
        env = dict(self.env, GITHUB_OUTPUT=str(output))
        env.update({k: self._resolve(v) for k, v in step.get("env", {}).items()})
        script = self.checkout.parent / f"{self.checkout.name}-{step_id}.sh"
        script.write_text(step["run"])
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              check=False, cwd=self.checkout, env=env, capture_output=True, text=True, timeout=60)
        self.outputs[step_id] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        assert done.returncode == expect, f"step {step_id}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done


def _checkout(dest: Path, store: Path) -> Path:
    """A copy of the quickstart as CI would check it out, with the CI example's
    credential handling: keys from env vars, the builtin stores in a folder outside the
    checkout (the self-hosted runner's disk). Every checkout gets the same config bytes."""
    shutil.copytree(QUICKSTART, dest, ignore=shutil.ignore_patterns("work", ".secretshift", "__pycache__"))
    for pipeline in (dest / "pipelines").glob("*.yaml"):
        if pipeline.name != PIPELINE:
            pipeline.unlink()
    config = dest / "secretshift.yaml"
    text = config.read_text()
    for old, new in [("path: work/", f"path: {store}/"),
                     ("key: {file: work/master.key}", "key: {env: SECRETSHIFT_KEY}"),
                     ("fingerprint_key: {file: work/fingerprint.key}",
                      "fingerprint_key: {env: SECRETSHIFT_FINGERPRINT_KEY}")]:
        assert old in text, f"the quickstart config changed: {old!r} not found"
        text = text.replace(old, new)
    config.write_text(text)
    return dest


def _cli(*args: str, cwd: Path, env: dict, data: bytes | None = None, expect: int = 0) -> bytes:
    done = subprocess.run([str(BIN / "secretshift"), *args], check=False, cwd=cwd, env=env, input=data,
                          capture_output=True, timeout=60)
    assert done.returncode == expect, f"{args}: exit {done.returncode}\n{done.stderr.decode()}"
    return done.stdout


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A builtin store 'harness' holding SEED, and the keys, made once (copied per test)."""
    base = tmp_path_factory.mktemp("ci-seed")
    store = base / "store"
    secrets = {"SECRETSHIFT_KEY": _key(), "SECRETSHIFT_FINGERPRINT_KEY": _key(),
               "VAULT_READ_TOKEN": "unused-read", "VAULT_TOKEN": "unused-write"}
    checkout = _checkout(base / "checkout", store)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "SECRETSHIFT_KEY": secrets["SECRETSHIFT_KEY"],
           "SECRETSHIFT_FINGERPRINT_KEY": secrets["SECRETSHIFT_FINGERPRINT_KEY"]}
    items = list(SEED.items())
    (kind, name), value = items[0]  # the first put creates the store
    _cli("put", "harness", name, "--kind", kind, cwd=checkout, env=env, data=value)
    puts = [(subprocess.Popen([str(BIN / "secretshift"), "put", "harness", name, "--kind", kind],
                              cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE), value) for (kind, name), value in items[1:]]
    for proc, value in puts:
        _, err = proc.communicate(value, timeout=60)
        assert proc.returncode == 0, err.decode()
    return store, secrets


@pytest.fixture
def runners(seeded, tmp_path):
    """plan, apply and rollback runners: three checkouts sharing one copy of the store."""
    seed_store, secrets = seeded
    store = tmp_path / "store"
    shutil.copytree(seed_store, store)
    return {job: Runner(job, _checkout(tmp_path / job, store), secrets, store)
            for job in ("plan", "apply", "rollback")}


def _deliver(plan_checkout: Path, apply_checkout: Path) -> None:
    """upload-artifact secretshift-plan, then download-artifact into reviewed-plan/."""
    (apply_checkout / "reviewed-plan").mkdir()
    for name in ("plan.json", "plan.md"):
        (apply_checkout / "reviewed-plan" / name).write_bytes((plan_checkout / name).read_bytes())


def _store_env(runner: Runner) -> dict:
    return {k: runner.env[k] for k in ("PATH", "LANG", "SECRETSHIFT_KEY", "SECRETSHIFT_FINGERPRINT_KEY")}


def test_review_loop_on_the_quickstart(runners):
    pr, main, back = runners["plan"], runners["apply"], runners["rollback"]

    pipeline = f"pipelines/{PIPELINE}"  # what the pipelines resolve to, before any move
    rendered = _cli("render", pipeline, cwd=pr.checkout, env=_store_env(pr))
    assert all(value in rendered for value in SEED.values())

    # pull request: validate, plan (exit 2 = changes, a success here), render, verdict
    assert "is valid" in pr.run("validate").stdout
    pr.run("plan")
    assert pr.outputs["plan"]["exitcode"] == "2"
    pr.run("render")
    comment = (pr.checkout / "plan.md").read_text()
    assert comment.startswith("## secretshift plan")
    assert "### Summary" in comment and "```mermaid" in comment
    assert "| **total** | | **5** | **0** | **0** | **0** | **5** |" in comment
    for _kind, name in SEED:
        assert f"<code>{name.replace('_', chr(92) + '_')}</code>" in comment
    assert comment in pr.summary.read_text()
    assert "merging applies exactly this plan" in pr.run("verdict").stdout
    for artifact in (pr.checkout / "plan.json", pr.checkout / "plan.md"):
        published = artifact.read_bytes()
        assert not any(value in published for value in SEED.values()), "no value in a published plan"

    # merge: the apply job, in another checkout, applies the downloaded reviewed plan
    _deliver(pr.checkout, main.checkout)
    assert "move" in main.run("show").stdout
    assert "Apply complete!" in main.run("apply").stdout
    assert "No changes" in main.run("verify").stdout
    env = _store_env(main)
    assert _cli("render", pipeline, cwd=main.checkout, env=env) == rendered  # byte for byte
    assert _cli("list", "harness", cwd=main.checkout, env=env) == b""

    # rollback: a third checkout gets the journal artifact (.secretshift/ without the lock)
    state = main.checkout / ".secretshift"
    for source in state.rglob("*"):
        if source.is_file() and source.name not in ("apply.lock", "fingerprint.key"):
            target = back.checkout / ".secretshift" / source.relative_to(state)
            target.parent.mkdir(parents=True, exist_ok=True)  # as an artifact download: default modes
            target.write_bytes(source.read_bytes())
    back.run("rollback")
    assert _cli("render", pipeline, cwd=back.checkout, env=env) == rendered
    assert len(_cli("list", "harness", cwd=back.checkout, env=env).splitlines()) == len(SEED)
    assert _cli("list", "newstore", cwd=back.checkout, env=env) == b""


def test_a_plan_with_errors_is_posted_and_fails_the_job(runners):
    pr = runners["plan"]
    env = _store_env(pr)
    # the target already holds a different value: a `conflict` (on_conflict: fail)
    _cli("put", "newstore", "sonar_token", cwd=pr.checkout, env=env, data=b"another FAKE value")
    pr.run("validate")
    pr.run("plan")  # the step itself succeeds: the plan is saved, to be shown
    assert pr.outputs["plan"]["exitcode"] == "1"
    pr.run("render")
    comment = (pr.checkout / "plan.md").read_text()
    assert "conflict" in comment and comment.index("conflict") < comment.index("### Summary")
    assert "has errors" in pr.run("verdict", expect=1).stdout


def test_plan_without_a_store_fails_before_planning(runners):
    pr = runners["plan"]
    pr.env["BUILTIN_STORE"] = str(pr.checkout / "no-such-store.db")
    assert "not on this runner" in pr.run("validate", expect=1).stdout


def test_a_stale_plan_is_refused_at_merge_and_nothing_is_written(runners):
    pr, main = runners["plan"], runners["apply"]
    pr.run("plan")
    pr.run("render")
    _deliver(pr.checkout, main.checkout)
    env = _store_env(main)
    # between review and merge, someone changes a source value
    _cli("put", "harness", "npm_token", cwd=main.checkout, env=env, data=b"npm_FAKE_rotated")
    refused = main.run("apply", expect=1)
    assert "stale plan" in refused.stderr and "nothing was written" in refused.stderr
    assert _cli("list", "newstore", cwd=main.checkout, env=env) == b""
    assert len(_cli("list", "harness", cwd=main.checkout, env=env).splitlines()) == len(SEED)


def test_apply_with_another_fingerprint_key_is_refused(runners):
    pr, main = runners["plan"], runners["apply"]
    pr.run("plan")
    pr.run("render")
    _deliver(pr.checkout, main.checkout)
    main.env["SECRETSHIFT_FINGERPRINT_KEY"] = _key()  # the apply job's secret differs
    refused = main.run("apply", expect=1)
    assert "another fingerprint key" in refused.stderr
    assert _cli("list", "newstore", cwd=main.checkout, env=_store_env(main)) == b""
