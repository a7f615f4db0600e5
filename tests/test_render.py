"""Plan renderings: golden files for text and Markdown, Markdown escaping, determinism,
the GitHub comment size limit, and `secretshift show FILE`.

Golden files live in tests/data/golden/ and are compared exactly. They are never
rewritten by a normal run: after an intended change of output, refresh them with

    SECRETSHIFT_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py

and review the diff (`git diff tests/data/golden/`) before committing it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.model import Kind, SecretId
from engine.plan import (
    ACTION_TYPES,
    DRIFT_CHANGES,
    ERROR_CODES,
    Action,
    BrokenReference,
    Drift,
    Plan,
    Problem,
)
from engine.planfile import save_plan
from engine.render import render_json, render_markdown, render_text
from engine.render.markdown import GITHUB_COMMENT_LIMIT
from engine.render.markup import cell, html_text, mermaid_label, visible

GOLDEN = Path(__file__).parent / "data" / "golden"
UPDATE_GOLDEN = os.environ.get("SECRETSHIFT_UPDATE_GOLDEN") == "1"
SECRETSHIFT = Path(sys.executable).parent / "secretshift"
TEXT, FILE = Kind.TEXT, Kind.FILE


def fingerprint(n: int) -> str:
    return f"hmac-sha256:{n:064x}"


def vault_path(kind: Kind, name: str) -> str:
    return f"secret/harness/{'SECRET_TEXT' if kind is TEXT else 'CONFIG_FILE'}/{name}"


def sites(count: int, file: str = "pipelines/deploy.yaml") -> tuple[str, ...]:
    """`count` reference sites, as the planner gives them (file:line:col, in order)."""
    return tuple(f"{file}:{10 * i + 3}:{i + 7}" for i in range(count))


def action(kind_of_action: str, kind: Kind, name: str, source: str | None = "harness",
           target: str = "corp_vault", references: int = 0, n: int = 1) -> Action:
    target_fp = fingerprint(n + 1000) if kind_of_action in ("update", "delete") else None
    return Action(kind_of_action, SecretId(kind, name), source, target, vault_path(kind, name),
                  fingerprint(n), target_fp, delete_source=kind_of_action == "update", references=references,
                  reference_sites=sites(references))


def every_kind_plan() -> Plan:
    """Every action kind over two manager pairs, and every error code."""
    actions = (
        action("move", TEXT, "db_password", references=3, n=1),
        action("copy", FILE, "tls_chain.pem", n=2),
        action("update", TEXT, "stripe_api_key", references=1, n=3),
        action("delete", TEXT, "legacy_token", n=4),
        action("noop", TEXT, "already_there", source=None, n=5),
        action("move", FILE, "kubeconfig", source="aws", references=7, n=6),
        action("copy", TEXT, "odd|name<b>", source="aws", n=7),
    )
    errors = tuple(
        Problem(code, SecretId(TEXT, f"broken_{i}") if code != "unresolved_reference" else None,
                f"{code.replace('_', ' ')}: the plan found a problem with secret 'broken_{i}'")
        for i, code in enumerate(ERROR_CODES)
    )
    broken = (
        BrokenReference("pipelines/deploy.yaml", 4, 16, "ref+vault://secret/data/old/SECRET_TEXT/db_password#/value",
                        "ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value", None, "vals-vault",
                        SecretId(TEXT, "db_password"), "harness", "corp_vault"),
        BrokenReference("site.yml", 9, 12, "lookup('hashi_vault', 'secret/data/old/CONFIG_FILE/kubeconfig:value')",
                        None, "a hashi_vault lookup reads only Vault", "ansible-hashi_vault",
                        SecretId(FILE, "kubeconfig"), "aws", "corp_vault"),
    )
    return Plan(actions, errors, config_digest="sha256:" + "0f" * 32, secretshift_version="0.1.0",
                broken_references=broken)


def empty_plan() -> Plan:
    return Plan(actions=(), errors=())


def drifts() -> tuple[Drift, ...]:
    return (Drift("corp_vault", SecretId(TEXT, "db_password"), "changed", vault_path(TEXT, "db_password")),
            Drift("corp_vault", SecretId(FILE, "tls_chain.pem"), "deleted", vault_path(FILE, "tls_chain.pem")),
            Drift("corp_vault", SecretId(TEXT, "added|by<hand>"), "added", vault_path(TEXT, "added|by<hand>")))


def drift_plan() -> Plan:
    """Drift of every kind beside two changes, and policy errors (one per secret, one plan-wide)."""
    actions = (action("move", TEXT, "api_key", n=1), action("copy", FILE, "kubeconfig", n=2))
    errors = (Problem("policy", SecretId(TEXT, "api_key"), "policy.no_deletes: the move of text secret 'api_key' "
                      "would delete it from manager 'harness'; the policy forbids deletes"),
              Problem("policy", None, "policy.max_changes: the plan has 2 changes, more than the 1 the policy allows"))
    return Plan(actions, errors, drift=tuple(sorted(drifts(), key=lambda d: (d.manager, d.id))))


def drift_report() -> Plan:
    """What `plan --refresh-only` renders."""
    return Plan((), drift=drift_plan().drift, refresh_only=True)


def check_golden(name: str, rendered: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rendered.encode("utf-8"))
        return
    assert path.exists(), f"no golden file {path}: run with SECRETSHIFT_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_bytes().decode("utf-8"), \
        f"{name} differs from its golden file; if intended, refresh with SECRETSHIFT_UPDATE_GOLDEN=1"


# --- golden files -------------------------------------------------------------------

def test_golden_plan_covers_every_action_kind_and_error_code():
    plan = every_kind_plan()
    assert {a.action for a in plan.actions} == set(ACTION_TYPES)
    assert {e.code for e in plan.errors} == set(ERROR_CODES)


@pytest.mark.parametrize(("golden", "make", "render"), [
    ("every_kind.txt", every_kind_plan, render_text),
    ("every_kind.md", every_kind_plan, render_markdown),
    ("empty.txt", empty_plan, render_text),
    ("empty.md", empty_plan, render_markdown),
    ("drift.txt", drift_plan, render_text),
    ("drift.md", drift_plan, render_markdown),
    ("drift_report.txt", drift_report, render_text),
    ("drift_report.md", drift_report, render_markdown),
], ids=lambda value: value if isinstance(value, str) else None)
def test_rendering_matches_golden_file(golden, make, render):
    check_golden(golden, render(make()))


def test_summarised_markdown_matches_golden_file():
    """The summarised layout, forced on a small plan by a small budget."""
    plan = Plan(tuple(action(("move", "copy")[i % 2], TEXT, f"svc_{i:02d}", n=i) for i in range(30)),
                every_kind_plan().errors)
    check_golden("summarised.md", render_markdown(plan, max_chars=3000))


# --- Markdown content ---------------------------------------------------------------

def test_markdown_puts_errors_before_the_summary_and_says_the_plan_cannot_be_applied():
    rendered = render_markdown(every_kind_plan())
    assert rendered.index("### Errors") < rendered.index("### Summary") < rendered.index("```mermaid")
    assert f"This plan cannot be applied: it has {len(ERROR_CODES)} errors." in rendered
    for code in ERROR_CODES:
        assert f"<code>{cell(code)}</code>" in rendered


def test_markdown_summary_counts_each_pair_and_the_totals():
    rendered = render_markdown(every_kind_plan())
    assert "| <code>harness</code> | <code>corp\\_vault</code> | 1 | 1 | 1 | 1 | 4 |" in rendered
    assert "| <code>aws</code> | <code>corp\\_vault</code> | 1 | 1 | 0 | 0 | 2 |" in rendered
    assert "| **total** | | **2** | **2** | **1** | **1** | **6** |" in rendered
    assert "    m0 -->|1 move, 1 copy, 1 update, 1 delete| m1" in rendered
    assert "    m2 -->|1 move, 1 copy| m1" in rendered


def test_markdown_of_a_plan_without_changes_says_no_changes():
    rendered = render_markdown(empty_plan())
    assert "**No changes.**" in rendered
    assert "mermaid" not in rendered and "<details" not in rendered and "[!CAUTION]" not in rendered


def test_markdown_lists_only_changes_in_sections_and_counts_the_noops():
    rendered = render_markdown(every_kind_plan())
    assert "already\\_there" not in rendered
    assert "1 secret is already where the config places it (no change)." in rendered


def test_markdown_shows_drift_before_the_actions_and_after_the_errors():
    rendered = render_markdown(drift_plan())
    drift_heading = rendered.index("### Drift since the last apply")
    assert rendered.index("### Errors") < drift_heading < rendered.index("### Summary")
    assert "**3 secrets changed outside secretshift since the last apply** (1 changed, 1 deleted, 1 added)" in rendered
    assert {d.change for d in drift_plan().drift} == set(DRIFT_CHANGES)
    assert "<code>added\\|by&lt;hand&gt;</code>" in rendered  # escaped like every other name
    assert "<details>" not in rendered.split("### Summary")[0]  # a short drift list is open


def test_a_long_drift_list_is_collapsed_and_a_huge_one_fits_in_a_comment():
    many = tuple(Drift("corp_vault", SecretId(TEXT, f"gone_{i:05d}"), "deleted", vault_path(TEXT, f"gone_{i:05d}"))
                 for i in range(10_000))
    rendered = render_markdown(Plan((), drift=many[:11]))
    assert "<details>\n<summary>11 secrets: 11 deleted</summary>" in rendered
    for plan in (Plan((), drift=many), Plan((), drift=many, refresh_only=True)):
        rendered = render_markdown(plan)
        assert len(rendered) < 65_000
        listed = sum(1 for line in rendered.splitlines() if line.startswith("| `-` | deleted"))
        assert 0 < listed < 10_000
        assert f"... and {10_000 - listed} more (see the JSON plan)" in rendered


def test_drift_alone_is_not_a_change_and_a_report_says_when_there_is_none():
    assert not Plan((), drift=drifts()).has_changes
    assert render_text(Plan((), refresh_only=True)).startswith("No drift:")
    assert "**No drift.**" in render_markdown(Plan((), refresh_only=True))


# --- escaping -------------------------------------------------------------------------

HOSTILE = "a|b`c<script>alert(1)</script>\nd_*e*[x](y)$z$&amp;"


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_hostile_names_stay_inside_their_table_cell_and_inject_no_html():
    plan = Plan((action("move", TEXT, HOSTILE), action("copy", FILE, "ok", n=2)),
                (Problem("conflict", SecretId(TEXT, HOSTILE), f"conflict on {HOSTILE}"),))
    rendered = render_markdown(plan)
    assert "<script" not in rendered and "&lt;script&gt;" in rendered
    assert "&amp;amp;" in rendered  # a literal entity in a name is shown, not decoded
    rows = [line for line in rendered.splitlines() if line.startswith("| `")]
    assert len(rows) == 2  # the newline in the name did not split its row
    assert all(unescaped_pipes(row) == 7 for row in rows)  # six cells each
    error_rows = [line for line in rendered.splitlines() if line.startswith("| <code>conflict")]
    assert len(error_rows) == 1 and unescaped_pipes(error_rows[0]) == 4
    name_cell = cell(HOSTILE)
    assert name_cell in rows[0] and "\\\\n" in name_cell
    assert not re.search(r"(?<!\\)[`*\[\]$]", name_cell)  # no live Markdown punctuation


def test_hostile_manager_ids_cannot_break_the_diagram_or_the_summary_line():
    hostile = 'vault"]\n  x[<b>`end'
    plan = Plan((action("move", TEXT, "s", source=hostile, target="end"),))
    rendered = render_markdown(plan)
    diagram = rendered.split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    assert diagram[0] == "flowchart LR"
    assert all(re.fullmatch(r'    m\d+\["[A-Za-z0-9 _\-./,#;]*"\]', line) for line in diagram[1:3])
    assert diagram[3] == "    m0 -->|1 move| m1"
    summary = next(line for line in rendered.splitlines() if line.startswith("<summary>"))
    assert summary == f"<summary><b>{html_text(hostile, 60)} → end</b>: 1 move</summary>"
    assert "<b>`" not in rendered and "&lt;b&gt;" in summary


def test_markup_helpers_spell_out_control_characters():
    assert visible("a\nb\tc\x07d\u2028") == "a\\nb\\tc\\x07d\\u2028"
    assert visible("x" * 10, limit=5) == "xxxx…"
    assert cell("a|b") == "a\\|b"
    assert html_text('<"&>') == "&lt;&quot;&amp;&gt;"
    assert mermaid_label('a"b]') == '"a#34;b#93;"'


# --- determinism and size -----------------------------------------------------------------

@pytest.mark.parametrize("make", [every_kind_plan, drift_plan, drift_report])
@pytest.mark.parametrize("render", [render_text, render_markdown, render_json])
def test_rendering_twice_or_from_a_saved_plan_gives_identical_output(render, make):
    plan = make()
    reloaded = Plan.from_dict(json.loads(render_json(plan)))
    assert render(plan) == render(plan) == render(reloaded)


def big_plan(actions: int, errors: int = 0, pairs: int = 2) -> Plan:
    kinds = ("move", "copy", "update", "delete")
    return Plan(
        tuple(action(kinds[i % 4], TEXT, f"team-{i % 7}/service_{i:05d}_db_password",
                     source=f"harness_{i % pairs}", references=(i % 3) * 4, n=i) for i in range(actions)),
        tuple(Problem("conflict", SecretId(TEXT, f"conflicting_{i}"), "the target holds a different value " * 8)
              for i in range(errors)),
    )


def test_a_10000_action_plan_is_summarised_under_the_comment_limit_with_exact_totals():
    plan = big_plan(10_000)
    rendered = render_markdown(plan)
    assert len(rendered) < 65_000 <= GITHUB_COMMENT_LIMIT
    assert "**This comment is summarised**" in rendered.split("### Summary")[0]
    assert "**Plan: 2500 to move, 2500 to copy, 2500 to update, 2500 to delete.**" in rendered
    assert "| **total** | | **2500** | **2500** | **2500** | **2500** | **10000** |" in rendered
    assert "| <code>harness\\_0</code> | <code>corp\\_vault</code> | 2500 | 0 | 2500 | 0 | 5000 |" in rendered
    listed = sum(1 for line in rendered.splitlines() if line.startswith("| `"))
    left_out = sum(int(n) for n in re.findall(r"^\.\.\. and (\d+) more \(see the JSON plan\)$", rendered, re.M))
    assert listed + left_out == 10_000 and listed > 0


@pytest.mark.parametrize(("actions", "errors", "pairs"), [(10_000, 2_000, 2), (10_000, 0, 10_000)],
                         ids=["many-errors", "a-pair-per-action"])
def test_worst_case_plans_still_fit_and_keep_their_totals(actions, errors, pairs):
    rendered = render_markdown(big_plan(actions, errors, pairs))
    assert len(rendered) < 65_000
    assert "**Plan: 2500 to move, 2500 to copy, 2500 to update, 2500 to delete.**" in rendered
    assert f"it has {errors} errors" in rendered or not errors
    if errors:
        shown = sum(1 for line in rendered.splitlines() if line.startswith("| <code>conflict"))
        assert f"... and {errors - shown} more errors (see the JSON plan)" in rendered


def test_a_summarised_plan_of_many_pairs_lists_as_many_actions_per_pair_as_fit():
    """60 pairs of about 167 actions: the comment uses its budget for rows of every pair
    rather than dropping to a level that lists none ("its first 0 actions")."""
    rendered = render_markdown(big_plan(10_000, pairs=60))
    assert len(rendered) < 65_000
    sections = rendered.split("<details>")[1:]
    listed = [sum(1 for line in section.splitlines() if line.startswith("| `")) for section in sections]
    assert len(sections) == 60 and min(listed) >= 1
    assert f"each manager pair lists only its first {min(listed)} action" in rendered
    assert "first 0" not in rendered


def test_a_summarised_plan_too_wide_to_list_any_action_says_they_are_not_listed():
    rendered = render_markdown(big_plan(10_000, pairs=150))
    assert len(rendered) < 65_000 and rendered.count("<details>") == 150
    assert not any(line.startswith("| `") for line in rendered.splitlines())
    assert "the actions are counted per manager pair but not listed" in rendered and "first 0" not in rendered


def test_a_plan_that_fits_is_not_summarised():
    rendered = render_markdown(every_kind_plan())
    assert "summarised" not in rendered and "more (see the JSON plan)" not in rendered


# --- secretshift show ---------------------------------------------------------------------

def run_show(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRETSHIFT", "VAULT"))}
    return subprocess.run([str(SECRETSHIFT), "show", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("fmt", "render"), [("text", render_text), ("json", render_json),
                                             ("markdown", render_markdown)])
def test_show_renders_a_saved_plan_without_any_config(tmp_path, fmt, render):
    plan = every_kind_plan()
    save_plan(tmp_path / "plan.json", plan)
    assert not (tmp_path / "secretshift.yaml").exists()
    result = run_show(tmp_path, "plan.json", "--format", fmt, "--no-color")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == render(plan)


def test_show_of_a_file_that_is_not_a_plan_is_one_error_line(tmp_path):
    (tmp_path / "plan.json").write_text('{"format_version": 1, "actions": []}', encoding="utf-8")
    result = run_show(tmp_path, "plan.json")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: plan.json: not a valid plan file")
    missing = run_show(tmp_path, "nowhere.json", "--format", "markdown")
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot read plan file nowhere.json")


# --- reference sites ----------------------------------------------------------------------

def test_markdown_lists_each_secrets_reference_sites_and_caps_them_at_five():
    rendered = render_markdown(Plan(every_kind_plan().actions))  # name references only
    row = next(line for line in rendered.splitlines() if "<code>db\\_password</code>" in line)
    assert row.endswith("| 3<br><code>pipelines/deploy.yaml:3:7</code><br><code>pipelines/deploy.yaml:13:8</code>"
                        "<br><code>pipelines/deploy.yaml:23:9</code> |")
    kubeconfig = next(line for line in rendered.splitlines() if "<code>kubeconfig</code>" in line)
    assert kubeconfig.count("<br><code>pipelines/deploy.yaml:") == 5 and kubeconfig.endswith("<br>… and 2 more |")
    assert unescaped_pipes(kubeconfig) == 7


def test_text_shows_the_first_three_reference_sites_on_the_action_line():
    rendered = render_text(every_kind_plan())
    assert ("(3 references: pipelines/deploy.yaml:3:7, pipelines/deploy.yaml:13:8, "
            "pipelines/deploy.yaml:23:9)") in rendered
    assert "(7 references: pipelines/deploy.yaml:3:7, pipelines/deploy.yaml:13:8, " \
           "pipelines/deploy.yaml:23:9 and 4 more)" in rendered


def test_reference_sites_are_in_the_json_plan_and_survive_a_saved_plan():
    document = json.loads(render_json(every_kind_plan()))
    by_name = {a["name"]: a for a in document["actions"]}
    assert by_name["db_password"]["reference_sites"] == list(sites(3))
    assert by_name["tls_chain.pem"]["reference_sites"] == []
    assert Plan.from_dict(document).actions == every_kind_plan().actions


def test_a_hostile_reference_site_cannot_break_its_table_cell():
    hostile = Action("move", SecretId(TEXT, "s"), "harness", "corp_vault", vault_path(TEXT, "s"), fingerprint(1),
                     references=1, reference_sites=("pipe|lines/<b>x`.yaml:1:1",))
    row = next(line for line in render_markdown(Plan((hostile,))).splitlines() if line.startswith("| `"))
    assert unescaped_pipes(row) == 7 and "<b>" not in row and "&lt;b&gt;" in row


def broken_reference(file: str, line: int, name: str) -> BrokenReference:
    """A reference to the location of text secret `name` in harness, broken by its move to corp_vault."""
    return BrokenReference(file, line, 5, f"ref+vault://secret/data/old/SECRET_TEXT/{name}#/value", None,
                           "a builtin store has no location syntax", "vals-vault", SecretId(TEXT, name), "harness",
                           "corp_vault")


def test_markdown_counts_and_lists_the_location_references_an_action_breaks_first():
    """A secret referenced only by location counts them; the sites naming a location come
    before the name references, as they break, and only in the row of the action breaking them."""
    plan = Plan((action("move", TEXT, "only_by_location", n=1), action("move", TEXT, "both", references=6, n=2),
                 action("move", TEXT, "only_by_location", source="aws", n=3)),
                broken_references=(broken_reference("a.env", 1, "only_by_location"),
                                   broken_reference("b|<i>.env", 2, "only_by_location"),
                                   broken_reference("c.env", 3, "both")))
    rows = [line for line in render_markdown(plan).splitlines() if line.startswith("| `")]
    name_sites = "".join(f"<br><code>{site}</code>" for site in sites(4))
    assert [row.rsplit(" | ", 1)[1] for row in rows] == [
        "2 (2 by location)<br><code>a.env:1:5</code> by location<br><code>b\\|&lt;i&gt;.env:2:5</code> by location |",
        f"7 (1 by location)<br><code>c.env:3:5</code> by location{name_sites}<br>… and 2 more |",
        "0 |",  # aws -> corp_vault: the references name the copy in harness
    ]
    assert all(unescaped_pipes(row) == 7 for row in rows)


@pytest.mark.parametrize("make", [every_kind_plan, empty_plan, drift_plan, drift_report])
def test_the_streamed_json_is_byte_for_byte_what_json_dumps_writes(make):
    """Saved plans and the journal stream the plan a piece at a time (render/json.py);
    the pieces must make exactly the document json.dumps makes, indented and compact."""
    from engine.render.json import json_chunks

    plan = make()
    assert "".join(json_chunks(plan)) == json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"
    assert "".join(json_chunks(plan, compact=True)) == json.dumps(plan.to_dict(), ensure_ascii=False,
                                                                   separators=(",", ":"))
    assert "".join(json_chunks(plan, compact=True, sort_keys=True)) == json.dumps(
        plan.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)  # history's plan digest
