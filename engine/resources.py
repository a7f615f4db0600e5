"""Files shipped with secretshift (the JSON Schemas), found installed or in a checkout."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def load_schema(name: str) -> dict:
    """A JSON Schema from the `schemas/` folder (packaged as engine.schemas)."""
    try:
        text = resources.files("engine.schemas").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        text = (Path(__file__).resolve().parent.parent / "schemas" / name).read_text(encoding="utf-8")
    return json.loads(text)
