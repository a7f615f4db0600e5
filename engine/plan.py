"""The plan as plain data: actions, errors, and what the plan was computed from.

A plan holds fingerprints, never values. `to_dict`/`from_dict` are the saved-plan and
`plan --format json` shape described by schemas/plan.schema.json.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from engine.errors import PlanError
from engine.model import Kind, SecretId

FORMAT_VERSION = 1
ACTION_TYPES = ("move", "copy", "update", "delete", "noop")
CHANGES = ("move", "copy", "update", "delete")
ERROR_CODES = (
    "conflict",
    "missing",
    "ambiguous",
    "read_only",
    "too_large",
    "invalid_name",
    "unresolved_reference",
    "policy",
)
DRIFT_CHANGES = ("changed", "deleted", "added")


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan.

    - move: write `source`'s value to `target`, read it back, then delete it from `source`.
    - copy: write and verify; the source keeps its copy.
    - update: `target` holds a different value and the config says overwrite; write,
      verify, and delete the source too when `delete_source` (move mode).
    - delete: `target` already holds the same value; delete the copy in `source`.
    - noop: the secret is where the config places it.

    `target_fingerprint` is what the target held when the plan was made (None: nothing);
    apply compares both fingerprints with what it finds and refuses a stale plan.
    """

    action: str
    id: SecretId
    source: str | None
    target: str
    target_location: str
    source_fingerprint: str | None
    target_fingerprint: str | None = None
    source_location: str | None = None
    delete_source: bool = False
    references: int = 0
    reference_sites: tuple[str, ...] = ()  # "file:line:col" of each reference, in file order
    history: str = "current"  # "all": earlier versions are written before the current value

    @property
    def is_change(self) -> bool:
        """True for every action that writes or deletes something."""
        return self.action in CHANGES

    @property
    def writes_target(self) -> bool:
        """True when the action writes the source's value to the target."""
        return self.action in ("move", "copy", "update")

    @property
    def overwrites(self) -> bool:
        """True when the write replaces a different value the target held (what `update`
        means; a saved plan that calls it anything else is refused)."""
        return self.writes_target and self.target_fingerprint not in (None, self.source_fingerprint)

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON form."""
        return {
            "action": self.action,
            "kind": self.id.kind.value,
            "name": self.id.name,
            "from": self.source,
            "to": self.target,
            "target_location": self.target_location,
            "source_location": self.source_location,
            "source_fingerprint": self.source_fingerprint,
            "target_fingerprint": self.target_fingerprint,
            "delete_source": self.delete_source,
            "references": self.references,
            "reference_sites": list(self.reference_sites),
            **({"history": self.history} if self.history != "current" else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        """Inverse of to_dict (the input was validated against the plan schema)."""
        return cls(
            action=data["action"],
            id=SecretId(Kind(data["kind"]), data["name"]),
            source=data.get("from"),
            target=data["to"],
            target_location=data["target_location"],
            source_fingerprint=data.get("source_fingerprint"),
            target_fingerprint=data.get("target_fingerprint"),
            source_location=data.get("source_location"),
            delete_source=bool(data.get("delete_source", False)),
            references=int(data.get("references", 0)),
            reference_sites=tuple(data.get("reference_sites", ())),
            history=data.get("history", "current"),
        )


@dataclass(frozen=True)
class Problem:
    """A plan error: the plan cannot be applied while it has any."""

    code: str
    id: SecretId | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON form."""
        return {
            "code": self.code,
            "kind": self.id.kind.value if self.id else None,
            "name": self.id.name if self.id else None,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """Inverse of to_dict."""
        sid = SecretId(Kind(data["kind"]), data["name"]) if data.get("name") is not None else None
        return cls(code=data["code"], id=sid, message=data["message"])


@dataclass(frozen=True)
class Drift:
    """A secret changed, deleted or added outside secretshift since the last apply
    (see drift.py). Information for reviewers: it is neither an action nor an error."""

    manager: str
    id: SecretId
    change: str  # one of DRIFT_CHANGES
    location: str

    def to_dict(self) -> dict[str, Any]:
        """The plan JSON form."""
        return {"manager": self.manager, "kind": self.id.kind.value, "name": self.id.name,
                "change": self.change, "location": self.location}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drift:
        """Inverse of to_dict."""
        return cls(data["manager"], SecretId(Kind(data["kind"]), data["name"]), data["change"], data["location"])


@dataclass(frozen=True)
class PlanWarning:
    """Something the plan does not block on but a reviewer should see, such as a
    soft-deleted secret it skips, or a soft-deleted copy a write will cover."""

    code: str
    id: SecretId | None
    manager: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The plan JSON's `warnings` item."""
        return {
            "code": self.code,
            "kind": self.id.kind.value if self.id else None,
            "name": self.id.name if self.id else None,
            "manager": self.manager,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanWarning:
        """Inverse of to_dict."""
        sid = SecretId(Kind(data["kind"]), data["name"]) if data.get("name") is not None else None
        return cls(code=data["code"], id=sid, manager=data.get("manager"), message=data["message"])


@dataclass(frozen=True)
class BrokenReference:
    """A reference naming the location a secret is moved away from (its source copy is
    deleted), so it stops working when the plan is applied.

    `text` is the reference as written at file:line:column; `replacement` is the same
    reference naming the secret's location in `target` (what `apply --rewrite-references`
    writes), or None with `reason` when the target has no syntax for it. Locations only,
    never values.
    """

    file: str
    line: int
    column: int
    text: str
    replacement: str | None
    reason: str | None
    syntax: str
    id: SecretId
    source: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        """The plan JSON form (schemas/plan.schema.json, `broken_references`)."""
        return {"file": self.file, "line": self.line, "column": self.column, "text": self.text,
                "replacement": self.replacement, "reason": self.reason, "syntax": self.syntax,
                "kind": self.id.kind.value, "name": self.id.name, "from": self.source, "to": self.target}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BrokenReference:
        """Inverse of to_dict."""
        return cls(data["file"], int(data["line"]), int(data["column"]), data["text"], data.get("replacement"),
                   data.get("reason"), data["syntax"], SecretId(Kind(data["kind"]), data["name"]),
                   data["from"], data["to"])


@dataclass(frozen=True)
class Plan:
    """Ordered actions and errors, plus what the plan was computed from."""

    actions: tuple[Action, ...]
    errors: tuple[Problem, ...] = ()
    config_digest: str = ""
    fingerprint_key_id: str = ""
    secretshift_version: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    drift: tuple[Drift, ...] = ()
    refresh_only: bool = False  # a drift report (`plan --refresh-only`): no actions were computed
    warnings: tuple[PlanWarning, ...] = ()
    broken_references: tuple[BrokenReference, ...] = ()

    @cached_property  # computed once: callers index it inside loops over the actions
    def changes(self) -> tuple[Action, ...]:
        """The actions that write or delete something."""
        return tuple(a for a in self.actions if a.is_change)

    @property
    def has_changes(self) -> bool:
        """True when applying would change any manager."""
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        """Counts per action type, plus the number of errors."""
        counts = Counter(a.action for a in self.actions)
        result = {name: counts.get(name, 0) for name in ACTION_TYPES}
        result["errors"] = len(self.errors)
        return result

    def to_dict(self, with_actions: bool = True) -> dict[str, Any]:
        """The contract's JSON form (also the saved-plan file). Without `with_actions`,
        "actions" is None in its place (render/json.py streams them one by one)."""
        return {
            "format_version": FORMAT_VERSION,
            "secretshift_version": self.secretshift_version,
            "config_digest": self.config_digest,
            "fingerprint_key_id": self.fingerprint_key_id,
            "actions": [a.to_dict() for a in self.actions] if with_actions else None,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
            "summary": self.summary(),
            "drift": [d.to_dict() for d in self.drift],
            "refresh_only": self.refresh_only,
            "broken_references": [b.to_dict() for b in self.broken_references],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Inverse of to_dict; raises PlanError on a shape it cannot read."""
        if data.get("format_version") != FORMAT_VERSION:
            raise PlanError(
                f"unsupported plan format_version {data.get('format_version')!r} "
                f"(this secretshift reads version {FORMAT_VERSION})"
            )
        return cls(
            actions=tuple(Action.from_dict(a) for a in data["actions"]),
            errors=tuple(Problem.from_dict(e) for e in data["errors"]),
            config_digest=data.get("config_digest", ""),
            fingerprint_key_id=data.get("fingerprint_key_id", ""),
            secretshift_version=data.get("secretshift_version", ""),
            drift=tuple(Drift.from_dict(d) for d in data.get("drift", ())),
            refresh_only=bool(data.get("refresh_only", False)),
            warnings=tuple(PlanWarning.from_dict(w) for w in data.get("warnings", ())),
            broken_references=tuple(BrokenReference.from_dict(b) for b in data.get("broken_references", ())),
        )
