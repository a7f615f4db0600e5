"""The drift section of a plan (changes made outside secretshift since the last apply),
for the text and Markdown renderers, and the `plan --refresh-only` report. Formats only."""

from __future__ import annotations

from collections import Counter

from engine.plan import DRIFT_CHANGES, Drift, Plan
from engine.render.markup import cell, code, html_text

DRIFT_SYMBOLS = {"changed": "~", "deleted": "-", "added": "+"}
DRIFT_COLORS = {"changed": "33", "deleted": "31", "added": "32"}
TITLE = "Drift since the last apply"
OPEN_UP_TO = 10  # longer drift tables are collapsed
_REPORT_CAPS = (None, 500, 100, 20)  # rows listed by a refresh-only Markdown report, tried in order


def counts(drift: tuple[Drift, ...]) -> str:
    """`1 changed, 2 deleted`: the non-zero counts, in a fixed order."""
    found = Counter(d.change for d in drift)
    return ", ".join(f"{found[c]} {c}" for c in DRIFT_CHANGES if found[c])


def _noun(number: int) -> str:
    return f"{number} secret{'s' if number != 1 else ''}"


# --- text ---------------------------------------------------------------------------

def text_lines(plan: Plan, color: bool = False) -> list[str]:
    """The drift section for a terminal (empty when there is no drift)."""
    if not plan.drift:
        return []
    width = max(len(d.id.name) for d in plan.drift)
    lines = [f"{TITLE} (made outside secretshift; not part of this plan):", ""]
    for d in plan.drift:
        head = f"{DRIFT_SYMBOLS[d.change]} {d.change:<7}"
        if color:
            head = f"\x1b[{DRIFT_COLORS[d.change]}m{head}\x1b[0m"
        lines.append(f"  {head} {d.id.kind.value:<4} {d.id.name.ljust(width)}  in {d.manager}  {d.location}")
    return lines + [""]


def render_text_report(plan: Plan, color: bool = False) -> str:
    """`plan --refresh-only` for a terminal: the drift alone."""
    if not plan.drift:
        return ("No drift: every secret secretshift placed holds what it wrote, and no secret "
                "was added or deleted outside secretshift since the last apply.\n")
    return "\n".join(text_lines(plan, color) + [f"Drift: {counts(plan.drift)}."]) + "\n"


# --- Markdown -----------------------------------------------------------------------

def markdown_blocks(drift: tuple[Drift, ...], limit: int | None = None,
                    cell_chars: int | None = None) -> list[str]:
    """The drift section of a pull-request comment: a warning, then a table in the
    plan's order, collapsed when long; `limit` caps the rows listed."""
    if not drift:
        return []
    shown = drift if limit is None else drift[:limit]
    rows = ["| | change | manager | kind | name | location |", "|:-:|---|---|---|---|---|"]
    rows += [f"| `{DRIFT_SYMBOLS[d.change]}` | {d.change} | {code(d.manager, cell_chars)} | {d.id.kind.value} | "
             f"{code(d.id.name, cell_chars)} | {code(d.location, cell_chars)} |" for d in shown]
    table = "\n".join(rows)
    if len(shown) < len(drift):
        table += f"\n\n... and {len(drift) - len(shown)} more (see the JSON plan)"
    if len(drift) > OPEN_UP_TO:
        table = (f"<details>\n<summary>{html_text(_noun(len(drift)))}: {html_text(counts(drift))}</summary>\n\n"
                 f"{table}\n\n</details>")
    warning = ("> [!WARNING]\n"
               f"> **{_noun(len(drift))} changed outside secretshift since the last apply** "
               f"({counts(drift)}). Not part of this plan: check them before approving it.")
    return [warning, f"### {TITLE}", table]


def render_markdown_report(plan: Plan, max_chars: int) -> str:
    """`plan --refresh-only` as a pull-request comment: the drift alone, its rows cut
    (and saying so) when the whole list would not fit in `max_chars`."""
    text = ""
    for cap in _REPORT_CAPS:
        blocks = ["## secretshift drift report"]
        if plan.drift:
            blocks += markdown_blocks(plan.drift, cap, None if cap is None else 80)
            blocks.append(f"**Drift: {cell(counts(plan.drift))}.**")
        else:
            blocks.append("**No drift.** Every secret secretshift placed holds what it wrote, and no secret "
                          "was added or deleted outside secretshift since the last apply.")
        text = "\n\n".join(blocks) + "\n"
        if len(text) <= max_chars:
            break
    return text
