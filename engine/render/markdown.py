"""The plan as Markdown, for a pull-request comment that reviewers approve.

Layout, top to bottom: a title; a notice when the comment is summarised; the errors
(first, as the plan cannot be applied while it has any); the warnings; a summary table per source ->
target manager pair with totals; a Mermaid diagram of the managers with those counts on
the arrows; the actions of each pair in a collapsible section; the summary line.

Pure formatting of a Plan: no I/O, and the plan's own order throughout, so re-running
`plan` on an unchanged world posts a byte-identical comment. A plan whose full rendering
would not fit in one GitHub comment (65,536 characters) is summarised, and says so:
totals and the diagram stay exact, the lists are cut and say how much was left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from engine.model import SecretId
from engine.plan import CHANGES, Action, Plan, PlanWarning, Problem
from engine.render import drift
from engine.render.markup import cell, code, html_text, mermaid_label
from engine.render.text import SYMBOLS, summary_line

GITHUB_COMMENT_LIMIT = 65_536
BUDGET = 60_000  # leaves room for a CI job's own header or footer around the plan
OPEN_SECTIONS_UP_TO = 25  # small plans show their actions without a click
NO_MANAGER = "(none)"

LEGEND = ("`>` move: write to the target, read back, then delete the source · "
          "`+` copy: write and read back, the source keeps its copy · "
          "`~` update: overwrite a different value in the target (the config says overwrite; "
          "in move mode the source is then deleted) · "
          "`-` delete: the target already holds the same value; remove the source copy")


@dataclass(frozen=True)
class _Level:
    """How much of the plan one rendering lists (None: everything). A summarised level
    lists at least `actions_per_pair` rows per pair, and more when they fit."""

    actions_per_pair: int | None
    errors: int | None
    cell_chars: int | None
    pairs: bool = True  # per-pair table, diagram and sections
    sites: int = 5  # reference sites (file:line:col) listed per secret


# Tried in order until one fits the budget; the last one is small whatever the plan.
_FULL = _Level(None, None, None)
_SUMMARISED = (
    _Level(100, 100, 300),
    _Level(25, 50, 120, sites=3),
    _Level(5, 20, 80, sites=2),
    _Level(0, 10, 60, sites=2),
    _Level(0, 5, 60, pairs=False),
)

_MIN_CHARS_PER_PAIR = 200
Pair = tuple[str, str]
LocationSites = Mapping[tuple[str, str, SecretId], list[str]]


def render_markdown(plan: Plan, color: bool = False, max_chars: int = BUDGET) -> str:
    """The whole plan as a GitHub-flavoured Markdown comment of at most about
    `max_chars` characters (summarised, and saying so, when the full one is longer).
    `color` is accepted for the renderer interface and ignored. A `--refresh-only` plan
    renders as a drift report."""
    if plan.refresh_only:
        return drift.render_markdown_report(plan, max_chars)
    pairs = _pairs(plan)
    text = _render(plan, pairs, _FULL)
    too_many = max(map(len, pairs.values()), default=0)  # rows per pair that did not fit
    for level in _SUMMARISED:
        if len(text) <= max_chars:
            break
        if level.pairs and len(pairs) * _MIN_CHARS_PER_PAIR > max_chars:
            continue  # cannot fit: a section, a table row and an arrow per pair
        text = _render(plan, pairs, level)
        if level.pairs and len(text) <= max_chars:
            text = _most_rows(plan, pairs, level, too_many, max_chars, text)
        too_many = level.actions_per_pair
    return text


def _most_rows(plan: Plan, pairs: dict[Pair, list[Action]], level: _Level, too_many: int, max_chars: int,
               text: str) -> str:
    """`level` (whose rendering `text` fits) listing as many rows per pair as fit, fewer
    than `too_many` (what the richer level before it could not fit), so the summarised
    comment uses its budget rather than dropping to the next fixed number of rows. A
    binary search: the length only grows with the rows."""
    fits = level.actions_per_pair
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        candidate = _render(plan, pairs, replace(level, actions_per_pair=middle))
        if len(candidate) <= max_chars:
            fits, text = middle, candidate
        else:
            too_many = middle
    return text


def _pairs(plan: Plan) -> dict[Pair, list[Action]]:
    """The changes grouped by (source, target) manager, pairs in order of first
    appearance and actions in plan order."""
    groups: dict[Pair, list[Action]] = {}
    for action in plan.changes:
        groups.setdefault((action.source or NO_MANAGER, action.target), []).append(action)
    return groups


def _render(plan: Plan, pairs: dict[Pair, list[Action]], level: _Level) -> str:
    located = _location_sites(plan)
    blocks = ["## secretshift plan"]
    if level is not _FULL:
        blocks.append(_summarised_notice(plan, level))
    if plan.errors:
        blocks += _errors(plan.errors, level)
    if plan.warnings:
        blocks += _warnings(plan.warnings, level)
    blocks += drift.markdown_blocks(plan.drift, level.errors, level.cell_chars)  # before the actions
    if plan.changes:
        blocks += _summary(plan, pairs, level)
        if level.pairs:
            blocks += [_diagram(pairs), "### Actions", LEGEND]
            opened = level is _FULL and sum(map(len, pairs.values())) <= OPEN_SECTIONS_UP_TO
            blocks += [_section(pair, actions, level, opened, located) for pair, actions in pairs.items()]
    if plan.broken_references:
        blocks += _broken_references(plan, level)
    blocks.append(_closing(plan))
    if plan.secretshift_version or plan.config_digest:
        blocks.append(_provenance(plan))
    return "\n\n".join(blocks) + "\n"


def _summarised_notice(plan: Plan, level: _Level) -> str:
    rows = level.actions_per_pair
    if level.pairs and rows:
        listed = (f"each manager pair lists only its first {rows} action{'s' if rows != 1 else ''} "
                  f"(each with at most {level.sites} reference sites)")
    elif level.pairs:
        listed = "the actions are counted per manager pair but not listed"
    else:
        listed = "only the totals are shown"
    return ("> [!NOTE]\n"
            f"> **This comment is summarised**: the full plan ({len(plan.changes)} changes, "
            f"{len(plan.errors)} errors) is too large for one GitHub comment. The totals are exact; "
            f"{listed}, at most {level.errors} errors are shown and long names are cut. "
            "The JSON plan (`secretshift show FILE --format json`) has everything.")


# --- errors -----------------------------------------------------------------------

def _errors(errors: tuple[Problem, ...], level: _Level) -> list[str]:
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    shown = errors if level.errors is None else errors[: level.errors]
    rows = ["| code | secret | message |", "|---|---|---|"]
    rows += [f"| {code(e.code)} | {_secret(e, level)} | {cell(e.message, level.cell_chars)} |" for e in shown]
    blocks = [
        "> [!CAUTION]\n"
        f"> **This plan cannot be applied: it has {count}.** Fix them and run `secretshift plan` again.",
        "### Errors",
        "\n".join(rows),
    ]
    if len(shown) < len(errors):
        blocks.append(f"... and {len(errors) - len(shown)} more errors (see the JSON plan)")
    return blocks


def _warnings(warnings: tuple[PlanWarning, ...], level: _Level) -> list[str]:
    """After the errors: what the plan skips or writes over, for the reviewer to confirm."""
    shown = warnings if level.errors is None else warnings[: level.errors]
    rows = ["| code | secret | manager | message |", "|---|---|---|---|"]
    rows += [(f"| {code(w.code)} | {_secret(w, level)} | {code(w.manager or NO_MANAGER, level.cell_chars)} | "
              f"{cell(w.message, level.cell_chars)} |") for w in shown]
    blocks = ["### Warnings", "\n".join(rows)]
    if len(shown) < len(warnings):
        blocks.append(f"... and {len(warnings) - len(shown)} more warnings (see the JSON plan)")
    return blocks


def _secret(problem: Problem | PlanWarning, level: _Level) -> str:
    if problem.id is None:
        return "—"
    return f"{problem.id.kind.value} {code(problem.id.name, level.cell_chars)}"


# --- summary and diagram ----------------------------------------------------------

def _summary(plan: Plan, pairs: dict[Pair, list[Action]], level: _Level) -> list[str]:
    rows = ["| from | to | move | copy | update | delete | total |", "|---|---|--:|--:|--:|--:|--:|"]
    if level.pairs:
        for (source, target), actions in pairs.items():
            counts = Counter(a.action for a in actions)
            numbers = " | ".join(str(counts.get(name, 0)) for name in CHANGES)
            rows.append(f"| {code(source, level.cell_chars)} | {code(target, level.cell_chars)} | "
                        f"{numbers} | {len(actions)} |")
    totals = plan.summary()
    numbers = " | ".join(f"**{totals[name]}**" for name in CHANGES)
    rows.append(f"| **total** | | {numbers} | **{len(plan.changes)}** |")
    blocks = ["### Summary", "\n".join(rows)]
    if totals["noop"]:
        blocks.append(f"{totals['noop']} secret{'s are' if totals['noop'] != 1 else ' is'} "
                      "already where the config places it (no change).")
    return blocks


def _diagram(pairs: dict[Pair, list[Action]]) -> str:
    """A `flowchart LR`: node ids are generated (m0, m1...), manager ids only appear as
    escaped, quoted labels, so no manager name can break the diagram."""
    nodes: dict[str, str] = {}
    for source, target in pairs:
        for manager in (source, target):
            nodes.setdefault(manager, f"m{len(nodes)}")
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"    {node}[{mermaid_label(manager, 60)}]" for manager, node in nodes.items()]
    for (source, target), actions in pairs.items():
        lines.append(f"    {nodes[source]} -->|{_counts(actions)}| {nodes[target]}")
    lines.append("```")
    return "\n".join(lines)


def _counts(actions: list[Action]) -> str:
    """`3 move, 1 delete`: the non-zero counts in the contract's order."""
    counts = Counter(a.action for a in actions)
    return ", ".join(f"{counts[name]} {name}" for name in CHANGES if counts.get(name))


# --- actions ----------------------------------------------------------------------

def _section(pair: Pair, actions: list[Action], level: _Level, opened: bool, located: LocationSites) -> str:
    source, target = pair
    shown = actions if level.actions_per_pair is None else actions[: level.actions_per_pair]
    lines = [
        f"<details{' open' if opened else ''}>",
        f"<summary><b>{html_text(source, 60)} → {html_text(target, 60)}</b>: {_counts(actions)}</summary>",
        "",
    ]
    if shown:
        lines += ["| | action | kind | name | target location | references |", "|:-:|---|---|---|---|--:|"]
        lines += [_action_row(a, level, located.get((source, target, a.id), [])) for a in shown]
        lines.append("")
    if len(shown) < len(actions):
        lines += [f"... and {len(actions) - len(shown)} more (see the JSON plan)", ""]
    lines.append("</details>")
    return "\n".join(lines)


def _action_row(action: Action, level: _Level, location_sites: list[str]) -> str:
    limit = level.cell_chars
    return (f"| `{SYMBOLS[action.action]}` | {action.action} | {action.id.kind.value} | "
            f"{code(action.id.name, limit)} | {code(action.target_location, limit)} | "
            f"{_references(action, level, location_sites)} |")


def _references(action: Action, level: _Level, location_sites: list[str]) -> str:
    """Every reference to the secret the plan knows of: those naming it (which keep
    working) and those naming the location this action deletes (which break; the plan
    carries no others). The count, how many name the location, then each file:line:col
    on its own line, the breaking ones first as they need the reviewer, the first
    `level.sites` of them and how many more."""
    sites = [f"{code(site, level.cell_chars)} by location" for site in location_sites]
    sites += [code(site, level.cell_chars) for site in action.reference_sites]
    listed = "".join(f"<br>{site}" for site in sites[: level.sites])
    more = len(sites) - level.sites
    count = action.references + len(location_sites)
    by_location = f" ({len(location_sites)} by location)" if location_sites else ""
    return f"{count}{by_location}{listed}" + (f"<br>… and {more} more" if more > 0 else "")


# --- references naming a location -----------------------------------------------------

def _location_sites(plan: Plan) -> LocationSites:
    """The file:line:col of each broken reference, by the (source, target, secret) of the
    action that breaks it, in the plan's order."""
    located: dict[tuple[str, str, SecretId], list[str]] = {}
    for b in plan.broken_references:
        located.setdefault((b.source, b.target, b.id), []).append(f"{b.file}:{b.line}:{b.column}")
    return located


def _broken_references(plan: Plan, level: _Level) -> list[str]:
    """The references this plan breaks, with the rewrite `apply --rewrite-references`
    makes; as many rows as errors at this level (all of them when not summarised)."""
    broken = plan.broken_references
    shown = broken if level.errors is None else broken[: level.errors]
    limit = level.cell_chars
    rows = ["| where | secret | now | after `apply --rewrite-references` |", "|---|---|---|---|"]
    for b in shown:
        after = code(b.replacement, limit) if b.replacement else f"cannot be rewritten: {cell(b.reason, limit)}"
        rows.append(f"| {code(f'{b.file}:{b.line}:{b.column}', limit)} | {b.id.kind.value} {code(b.id.name, limit)} "
                    f"| {code(b.text, limit)} | {after} |")
    count = f"{len(broken)} reference{'s' if len(broken) != 1 else ''}"
    blocks = ["### References broken by this plan",
              (f"{count} name{'s' if len(broken) == 1 else ''} the location of a secret this plan moves away: "
               "they stop working when it is applied, unless apply runs with `--rewrite-references`."),
              "\n".join(rows)]
    if len(shown) < len(broken):
        blocks.append(f"... and {len(broken) - len(shown)} more references (see the JSON plan)")
    return blocks


# --- closing ------------------------------------------------------------------------

def _closing(plan: Plan) -> str:
    if not plan.changes and not plan.errors:
        return "**No changes.** Every secret is where the config places it."
    return f"**{summary_line(plan)}**"


def _provenance(plan: Plan) -> str:
    parts = []
    if plan.secretshift_version:
        parts.append(f"secretshift {cell(plan.secretshift_version, 40)}")
    if plan.config_digest:
        parts.append(f"config {cell(plan.config_digest, 80)}")
    return f"<sub>Planned by {' · '.join(parts)}.</sub>"
