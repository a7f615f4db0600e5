"""The plan as JSON: the contract shape of schemas/plan.schema.json."""

from __future__ import annotations

from collections.abc import Iterator

from engine.jsonstream import chunks
from engine.plan import Plan


def render_json(plan: Plan, color: bool = False) -> str:
    """Stable, indented JSON (also the saved-plan file format)."""
    return "".join(json_chunks(plan))


def json_chunks(plan: Plan, compact: bool = False, sort_keys: bool = False) -> Iterator[str]:
    """The plan's JSON as `json.dumps(plan.to_dict(), indent=2)` writes it (or compact, on
    one line; `sort_keys` as json's), the actions made one at a time (see jsonstream)."""
    actions = (action.to_dict() for action in plan.actions)
    yield from chunks(plan.to_dict(with_actions=False), {"actions": actions}, None if compact else 2, sort_keys)
    if not compact:
        yield "\n"
