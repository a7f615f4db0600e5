"""The plan as JSON: the contract shape of schemas/plan.schema.json."""

from __future__ import annotations

import json

from engine.plan import Plan


def render_json(plan: Plan, color: bool = False) -> str:
    """Stable, indented JSON (also the saved-plan file format)."""
    return json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"
