"""Saved plan files: write atomically, read back validated against the plan schema."""

from __future__ import annotations

import contextlib
import json
import os
from functools import cache
from pathlib import Path

from engine.errors import PlanError
from engine.plan import Plan
from engine.render.json import json_chunks
from engine.resources import load_schema
from engine.schema import fast_is_valid


def save_plan(path: Path, plan: Plan) -> None:
    """Write the plan as JSON (atomically: a crash leaves the old file or the new one)."""
    if path.is_dir() or not path.name:
        raise PlanError(f"cannot write the plan to {path}: it is a folder; name a file")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(json_chunks(plan))
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise PlanError(f"cannot write the plan to {path}: {error.strerror}") from None


def load_plan(path: str | os.PathLike) -> Plan:
    """Read a saved plan; a file that is not a valid plan gives one PlanError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"{path} is not a plan file (not UTF-8 text)") from None
    except OSError as error:
        raise PlanError(f"cannot read plan file {path}: {error.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanError(f"{path}:{error.lineno}:{error.colno}: not a valid plan file ({error.msg})") from None
    if not fast_is_valid(_fast_validator(), document):
        import jsonschema  # imported here: only an invalid plan needs it

        problem = jsonschema.exceptions.best_match(_validator().iter_errors(document))
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "top level"
            raise PlanError(f"{path}: not a valid plan file: at {where}: {problem.message}")
    return Plan.from_dict(document)


@cache
def _fast_validator():
    """Checks a plan against the schema in about 1 ms per 2,000 actions (jsonschema takes
    a quarter of a second); when it says invalid, jsonschema words the problem."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(load_schema("plan.schema.json"))


@cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema("plan.schema.json"))
