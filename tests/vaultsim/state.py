"""In-memory state of the simulated Vault: namespaces, mounts, policies and tokens.

Owns the data and its lookups (longest namespace prefix, longest mount prefix). It holds
no lock itself: the core serialises every request's state access with one lock.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field

from .kv import KVv1
from .kv2 import KVv2
from .policy import ACL, DEFAULT_POLICY, Policy, parse_policy

SYSTEM_MOUNTS = {
    "sys/": ("system", "system endpoints used for control, policy and debugging"),
    "cubbyhole/": ("cubbyhole", "per-token private secret storage"),
    "identity/": ("identity", "identity store"),
}


@dataclass
class Mount:
    """A secrets engine enabled at `path` (with trailing slash)."""

    path: str
    type: str
    engine: KVv1 | KVv2 | None
    options: dict | None
    description: str = ""
    accessor: str = ""
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def info(self) -> dict:
        """The entry shown by sys/mounts and sys/internal/ui/mounts."""
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": 0,
                "force_no_cache": False,
                "max_lease_ttl": 0,
            },
            "description": self.description,
            "external_entropy_access": False,
            "local": self.type == "cubbyhole",
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": "v0.0.0+builtin" if self.engine else "v0.0.0+builtin.vault",
            "running_sha256": "",
            "seal_wrap": self.type == "cubbyhole",
            "type": self.type,
            "uuid": self.uuid,
        }


def make_mount(path: str, engine_type: str, options: dict | None, description: str = "") -> Mount:
    """A mount of `engine_type` ("kv", "generic", or a system type) at `path`."""
    path = path.strip("/") + "/"
    engine: KVv1 | KVv2 | None = None
    if engine_type in ("kv", "generic"):
        version = str((options or {}).get("version") or "1")
        engine = KVv2() if version == "2" else KVv1()
        if engine_type == "kv":
            options = {**(options or {}), "version": version}
    accessor = f"{engine_type}_{secrets.token_hex(4)}"
    return Mount(path, engine_type, engine, options, description, accessor)


@dataclass
class Namespace:
    """A namespace: its path ("" for root, else "a/b/"), mounts and policies."""

    path: str
    id: str = field(default_factory=lambda: secrets.token_urlsafe(4)[:5])
    mounts: dict[str, Mount] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    custom_metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path, (kind, description) in SYSTEM_MOUNTS.items():
            self.mounts[path] = make_mount(path, kind, None, description)
        self.policies["default"] = parse_policy("default", DEFAULT_POLICY)

    def find_mount(self, path: str) -> tuple[Mount, str] | None:
        """The mount with the longest prefix of `path`, and the rest of the path."""
        probe = path if path.endswith("/") else path + "/"
        best = None
        for mount_path, mount in self.mounts.items():
            if probe.startswith(mount_path) and (best is None or len(mount_path) > len(best.path)):
                best = mount
        if best is None:
            return None
        return best, path[len(best.path):]


@dataclass
class Token:
    """A token: its id, policies and the namespace it was created in."""

    id: str
    policies: list[str]
    namespace: str
    display_name: str = "token"
    meta: dict | None = None
    ttl: int = 0
    accessor: str = field(default_factory=lambda: secrets.token_urlsafe(18)[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def is_root(self) -> bool:
        return "root" in self.policies


class State:
    """Everything the server remembers; callers hold the core lock while using it."""

    def __init__(self, root_token: str):
        self.namespaces: dict[str, Namespace] = {"": Namespace("")}
        self.tokens: dict[str, Token] = {}
        self.root_token = root_token
        self.tokens[root_token] = Token(root_token, ["root"], "", display_name="root")
        self.sealed = False

    def namespace(self, path: str, create: bool = False) -> Namespace | None:
        """The namespace at `path` ("a/b" or "a/b/"); creates it and its parents if asked."""
        path = normalize_namespace(path)
        if path not in self.namespaces and create:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i]) + "/"
                self.namespaces.setdefault(sub, Namespace(sub))
        return self.namespaces.get(path)

    def resolve(self, full_path: str) -> tuple[Namespace, str]:
        """Split a namespace-prefixed path into (longest existing namespace, rest)."""
        best = self.namespaces[""]
        for ns_path, ns in self.namespaces.items():
            if ns_path and full_path.startswith(ns_path) and len(ns_path) > len(best.path):
                best = ns
        return best, full_path[len(best.path):]

    def create_token(self, policies: list[str], namespace: str, **extra) -> Token:
        """A new service token (policies sorted, `default` added unless given no_default)."""
        no_default = extra.pop("no_default_policy", False)
        names = sorted({p.lower() for p in policies} | (set() if no_default else {"default"}))
        token = Token("hvs." + secrets.token_urlsafe(18), names, normalize_namespace(namespace), **extra)
        self.tokens[token.id] = token
        return token

    def acl_for(self, token: Token) -> ACL:
        """The ACL of a token from its namespace's policies (unknown names are ignored)."""
        if token.is_root:
            return ACL([Policy("root", "", {})])
        ns = self.namespaces.get(token.namespace)
        policies = [ns.policies[n] for n in token.policies if ns and n in ns.policies]
        return ACL(policies)


def normalize_namespace(path: str | None) -> str:
    """"a/b" -> "a/b/", "" or "/" or None -> "" (root)."""
    path = (path or "").strip().strip("/")
    return path + "/" if path else ""
