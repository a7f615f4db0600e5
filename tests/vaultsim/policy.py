"""ACL policies: a parser for the HCL subset Vault policies use, and path matching.

Owns policy text -> rules, and rules + path -> capabilities with Vault's priority order
(exact path first; otherwise the highest-priority `*`/`+` pattern). Knows nothing of tokens
or namespaces; the caller passes the namespace-relative path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe")
# Legacy `policy = "..."` shorthand, as Vault expands it.
LEGACY = {
    "deny": {"deny"},
    "read": {"read", "list"},
    "write": {"create", "read", "update", "delete", "list"},
    "sudo": {"create", "read", "update", "delete", "list", "sudo"},
}

DEFAULT_POLICY = """
# Allow tokens to look up their own properties
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "sys/internal/ui/resultant-acl" { capabilities = ["read"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"""


class PolicyError(ValueError):
    """Policy text that cannot be parsed; the message is what Vault would say after 'failed to parse policy: '."""


@dataclass(frozen=True)
class Policy:
    """A named policy: its raw text and {path pattern: capabilities}."""

    name: str
    text: str
    rules: dict[str, frozenset[str]]


_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/          # blanks and comments
    |(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<num>-?\d+(?:\.\d+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_\-.]*)
    |(?P<punct>[{}\[\]=,:])""",
    re.S | re.X,
)


def _tokens(text: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise PolicyError(f"illegal char at position {pos}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "str":
            out.append(("str", json.loads(m.group(kind))))
        elif kind == "num":
            out.append(("num", float(m.group(kind))))
        elif kind in ("ident", "punct"):
            out.append((kind, m.group(kind)))
    return out


class _Parser:
    """Recursive descent over HCL: `key = value`, `key "label" { ... }`, lists, objects."""

    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, object] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, object]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise PolicyError(f"expected {value or 'a token'}, got {tok[1] if tok else 'end of input'}")
        self.i += 1
        return tok

    def body(self, closing: str | None) -> list[tuple[str, list, object]]:
        """Items until `closing` (or end): (key, labels, value)."""
        items = []
        while (tok := self.peek()) is not None and tok[1] != closing:
            kind, key = self.take()
            if kind not in ("ident", "str"):
                raise PolicyError(f"unexpected {key!r}")
            labels = []
            while (nxt := self.peek()) is not None and nxt[0] == "str":
                labels.append(self.take()[1])
            if self.peek() and self.peek()[1] in ("=", ":"):
                self.take()
                items.append((key, labels, self.value()))
            else:
                self.take("{")
                items.append((key, labels, self.body("}")))
                self.take("}")
            if self.peek() and self.peek()[1] == ",":
                self.take()
        return items

    def value(self) -> object:
        kind, val = self.take()
        if val == "[":
            out = []
            while self.peek() and self.peek()[1] != "]":
                out.append(self.value())
                if self.peek() and self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return out
        if val == "{":
            items = self.body("}")
            self.take("}")
            return items
        if kind == "ident" and val in ("true", "false"):
            return val == "true"
        return val


def parse_policy(name: str, text: str) -> Policy:
    """Parse HCL (or JSON) policy text into a Policy; raises PolicyError."""
    blocks = _json_blocks(text) if text.lstrip().startswith("{") else _hcl_blocks(text)
    rules: dict[str, set[str]] = {}
    for pattern, attrs in blocks:
        caps: set[str] = set()
        for cap in attrs.get("capabilities", []) or []:
            if cap not in CAPABILITIES:
                raise PolicyError(f'path "{pattern}": invalid capability "{cap}"')
            caps.add(cap)
        if "policy" in attrs:
            if attrs["policy"] not in LEGACY:
                raise PolicyError(f'path "{pattern}": invalid policy "{attrs["policy"]}"')
            caps |= LEGACY[attrs["policy"]]
        rules.setdefault(pattern.lstrip("/"), set()).update(caps)
    return Policy(name, text, {p: frozenset(c) for p, c in rules.items()})


def _hcl_blocks(text: str) -> list[tuple[str, dict]]:
    blocks = []
    for key, labels, value in _Parser(text).body(None):
        if key != "path":
            continue
        if len(labels) != 1 or not isinstance(value, list):
            raise PolicyError("path blocks need exactly one quoted path")
        blocks.append((labels[0], {k: v for k, _, v in value}))
    return blocks


def _json_blocks(text: str) -> list[tuple[str, dict]]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    paths = doc.get("path", {})
    return [(p, attrs) for p, attrs in paths.items()] if isinstance(paths, dict) else []


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> tuple[re.Pattern | None, tuple]:
    """(regex or None for an exact path, priority key among non-exact patterns)."""
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    if "+" not in body.split("/") and not glob:
        return None, ()
    parts = ["[^/]+" if seg == "+" else re.escape(seg) for seg in body.split("/")]
    regex = re.compile("/".join(parts) + (".*" if glob else ""), re.S)
    first = min((i for i, ch in enumerate(pattern) if ch in "+*"), default=len(pattern))
    # Vault's order: later first wildcard, no trailing *, fewer +, longer, lexically larger.
    priority = (first, not glob, -body.split("/").count("+"), len(pattern), pattern)
    return regex, priority


class ACL:
    """The merged rules of a token's policies; answers capability questions for paths."""

    def __init__(self, policies: list[Policy]):
        self.root = any(p.name == "root" for p in policies)
        merged: dict[str, set[str]] = {}
        for policy in policies:
            for pattern, caps in policy.rules.items():
                merged.setdefault(pattern, set()).update(caps)
        self.exact = {p: c for p, c in merged.items() if _compile(p)[0] is None}
        self.wild = [(p, c) for p, c in merged.items() if _compile(p)[0] is not None]

    def capabilities(self, path: str, listing: bool = False) -> set[str]:
        """Capabilities on `path` ({"deny"} when nothing matches); root -> {"root"}."""
        if self.root:
            return {"root"}
        if path in self.exact:
            return self._effective(self.exact[path])
        if listing and path.rstrip("/") in self.exact:
            return self._effective(self.exact[path.rstrip("/")])
        best = None
        for pattern, caps in self.wild:
            regex, priority = _compile(pattern)
            if regex.fullmatch(path) and (best is None or priority > best[0]):
                best = (priority, caps)
        return self._effective(best[1]) if best else {"deny"}

    @staticmethod
    def _effective(caps: set[str]) -> set[str]:
        return {"deny"} if "deny" in caps or not caps else set(caps)

    def allows(self, path: str, operation: str) -> bool:
        """Whether `operation` (create/read/update/patch/delete/list) is allowed on `path`."""
        caps = self.capabilities(path, listing=operation == "list")
        return "root" in caps or operation in caps

    def touches(self, prefix: str) -> bool:
        """Whether any rule grants something on `prefix` or below (sys/internal/ui/mounts)."""
        if self.root:
            return True
        for pattern, caps in list(self.exact.items()) + self.wild:
            if "deny" in caps or not caps:
                continue
            stem = re.split(r"[+*]", pattern, maxsplit=1)[0]
            if stem.startswith(prefix) or prefix.startswith(stem) and pattern != stem:
                return True
        return False
