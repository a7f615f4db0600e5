"""The plan for a terminal, one line per action, like Terraform's plan output."""

from __future__ import annotations

from engine.plan import Action, Plan
from engine.render import drift
from engine.render.markup import visible

SYMBOLS = {"move": ">", "copy": "+", "update": "~", "delete": "-", "noop": "="}
TEXT_SITES = 3  # reference sites shown per action on a terminal line
COLORS = {"move": "36", "copy": "32", "update": "33", "delete": "31", "noop": "2", "error": "31;1"}


def _paint(text: str, action: str, color: bool) -> str:
    return f"\x1b[{COLORS[action]}m{text}\x1b[0m" if color else text


def action_line(action: Action, color: bool = False, name_width: int = 0) -> str:
    """One line: symbol, action, kind, name, managers, target location, references."""
    head = _paint(f"{SYMBOLS[action.action]} {action.action:<6}", action.action, color)
    if action.action == "delete":
        route = f"{action.source} (copy verified in {action.target})"
    else:
        route = f"{action.source} -> {action.target}" if action.source else f"in {action.target}"
    refs = f"  ({action.references} reference{'s' if action.references != 1 else ''}{_sites(action)})" if action.references else ""
    name = action.id.name.ljust(name_width)
    return f"  {head} {action.id.kind.value:<4} {name}  {route}  {action.target_location}{refs}"


def _sites(action: Action) -> str:
    """`: a.yaml:3:9, b.yaml:1:1 and 2 more`: the first TEXT_SITES reference sites."""
    if not action.reference_sites:
        return ""
    shown = ", ".join(action.reference_sites[:TEXT_SITES])
    more = len(action.reference_sites) - TEXT_SITES
    return f": {shown}" + (f" and {more} more" if more > 0 else "")


def _broken_reference_lines(plan: Plan) -> list[str]:
    """The references naming a location this plan deletes: where, what, and the
    rewrite `apply --rewrite-references` would make (or why it cannot)."""
    lines = [("References naming a location this plan deletes (they stop working; "
              "`apply --rewrite-references` rewrites them):"), ""]
    for b in plan.broken_references:
        lines.append(f"  {b.file}:{b.line}:{b.column}  {b.id.kind.value} {b.id.name}  {b.source} -> {b.target}")
        lines.append(f"      {visible(b.text)}")
        lines.append(f"    > {visible(b.replacement)}" if b.replacement else f"    cannot be rewritten: {b.reason}")
    return [*lines, ""]


def summary_line(plan: Plan) -> str:
    """`Plan: N to move, N to copy, N to update, N to delete.`"""
    s = plan.summary()
    return f"Plan: {s['move']} to move, {s['copy']} to copy, {s['update']} to update, {s['delete']} to delete."


def render_text(plan: Plan, color: bool = False) -> str:
    """The whole plan: drift since the last apply, changes, errors, warnings, then the
    summary line (a `--refresh-only` plan: the drift alone)."""
    if plan.refresh_only:
        return drift.render_text_report(plan, color)
    lines: list[str] = drift.text_lines(plan, color)
    if plan.changes:
        lines += ["secretshift will perform these actions:", ""]
        width = max(len(a.id.name) for a in plan.changes)
        lines += [action_line(a, color, width) for a in plan.changes]
        lines.append("")
    if plan.broken_references:
        lines += _broken_reference_lines(plan)
    if plan.errors:
        lines += [_paint("Errors (this plan cannot be applied):", "error", color), ""]
        lines += [f"  {_paint('!', 'error', color)} {e.code}: {e.message}" for e in plan.errors]
        lines.append("")
    if plan.warnings:
        lines += [_paint("Warnings:", "update", color), ""]
        lines += [f"  {_paint('?', 'update', color)} {w.code}: {w.message}" for w in plan.warnings]
        lines.append("")
    if not plan.changes and not plan.errors:
        lines.append("No changes. Every secret is where the config places it.")
    else:
        lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"
