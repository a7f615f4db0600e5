"""The plan as Markdown, for a pull-request comment."""

from __future__ import annotations

from engine.plan import Plan
from engine.render.text import SYMBOLS, summary_line


def _cell(text: object) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: Plan, color: bool = False) -> str:
    """Summary table, errors first, then the changes table."""
    s = plan.summary()
    lines = [
        "### secretshift plan",
        "",
        "| move | copy | update | delete | no change | errors |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s['move']} | {s['copy']} | {s['update']} | {s['delete']} | {s['noop']} | {s['errors']} |",
        "",
    ]
    if plan.errors:
        lines += ["#### :x: Errors: this plan cannot be applied", ""]
        lines += [f"- **{e.code}**: {_cell(e.message)}" for e in plan.errors]
        lines.append("")
    if plan.changes:
        lines += [
            "#### Changes",
            "",
            "| | action | kind | name | from | to | target location | references |",
            "|---|---|---|---|---|---|---|---:|",
        ]
        lines += [
            f"| `{SYMBOLS[a.action]}` | {a.action} | {a.id.kind.value} | `{_cell(a.id.name)}` | "
            f"{_cell(a.source)} | {_cell(a.target)} | `{_cell(a.target_location)}` | {a.references} |"
            for a in plan.changes
        ]
        lines.append("")
    lines.append(f"**{summary_line(plan)}**" if plan.changes or plan.errors else "**No changes.**")
    return "\n".join(lines) + "\n"
