"""The sys/ and auth/token/ endpoints of the simulated Vault.

Owns mounts management, policies, capabilities, token create/lookup, health, seal and
namespaces. Called by the core with the lock held, after the ACL check (or without a
token for the unauthenticated paths, which do their own checks).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Callable

from .kv import KVv1, list_children
from .kv2 import KVv2
from .policy import PolicyError, parse_policy
from .responses import (
    Reply,
    Request,
    bad_request,
    envelope,
    errors,
    no_content,
    parse_duration,
    not_found,
    permission_denied,
    rfc3339,
    unsupported_operation,
)
from .state import Token, make_mount, normalize_namespace

if TYPE_CHECKING:
    from .core import Core

VERSION = "1.17.0"
Handler = Callable[["Core", Request, "Token | None", re.Match], Reply]
ROUTES: list[tuple[re.Pattern, Handler]] = []


def route(pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((re.compile(pattern, re.S), fn))
        return fn
    return register


def handle(core: Core, req: Request, token: Token | None) -> Reply:
    """Dispatch a sys/ or auth/token/ request to its handler."""
    for pattern, fn in ROUTES:
        m = pattern.fullmatch(req.path)
        if m:
            return fn(core, req, token, m)
    return errors(404, "1 error occurred:\n\t* unsupported path\n\n")


def sys_envelope(data, **kw) -> Reply:
    return envelope(data, mount_type="system", **kw)


# --- health and seal -----------------------------------------------------------------
@route(r"sys/health")
def health(core, req, token, m):
    sealed = core.state.sealed
    status = int(req.data.get("sealedcode", 503)) if sealed else int(req.data.get("activecode", 200))
    body = {
        "initialized": True, "sealed": sealed, "standby": False, "performance_standby": False,
        "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()), "version": VERSION, "enterprise": False,
        "cluster_name": "vaultsim", "cluster_id": "00000000-0000-0000-0000-000000000000",
        "echo_duration_ms": 0, "clock_skew_ms": 0,
    }
    return Reply(status, None if req.method == "HEAD" else body)


def _seal_status(core) -> dict:
    return {
        "type": "shamir", "initialized": True, "sealed": core.state.sealed, "t": 1, "n": 1,
        "progress": 0, "nonce": "", "version": VERSION, "build_date": "2024-01-01T00:00:00Z",
        "migration": False, "recovery_seal": False, "storage_type": "inmem",
        **({} if core.state.sealed else {"cluster_name": "vaultsim", "cluster_id": "00000000-0000-0000-0000-000000000000"}),
    }


@route(r"sys/seal-status")
def seal_status(core, req, token, m):
    return Reply(200, _seal_status(core))


@route(r"sys/unseal")
def unseal(core, req, token, m):
    if req.operation != "update":
        return unsupported_operation()
    core.state.sealed = False
    return Reply(200, _seal_status(core))


@route(r"sys/seal")
def seal(core, req, token, m):
    if req.operation != "update":
        return unsupported_operation()
    if "sudo" not in core.state.acl_for(token).capabilities("sys/seal") and not token.is_root:
        return permission_denied()
    core.state.sealed = True
    return no_content()


# --- mounts ---------------------------------------------------------------------------
@route(r"sys/mounts/?")
def mounts(core, req, token, m):
    if req.operation != "read":
        return unsupported_operation()
    ns = core.state.namespaces[req.namespace]
    return sys_envelope({p: mt.info() for p, mt in sorted(ns.mounts.items())}, top_level=True)


@route(r"sys/mounts/(?P<path>.+?)/tune")
def mount_tune(core, req, token, m):
    ns = core.state.namespaces[req.namespace]
    mount = ns.mounts.get(m["path"].strip("/") + "/")
    if mount is None:
        return bad_request(f"cannot fetch sysview for path \"{m['path'].strip('/')}/\"")
    if req.operation == "read":
        info = {"default_lease_ttl": 2764800, "max_lease_ttl": 2764800, "force_no_cache": False,
                "description": mount.description, "options": mount.options}
        return sys_envelope(info, top_level=True)
    options = req.data.get("options") or {}
    if str(options.get("version", "")) == "2" and isinstance(mount.engine, KVv1):
        mount.engine = upgrade_to_v2(mount.engine)
        mount.options = {**(mount.options or {}), "version": "2"}
    return no_content()


def upgrade_to_v2(old: KVv1) -> KVv2:
    """KV v1 -> v2 upgrade: every key becomes version 1 of a versioned key."""
    new = KVv2()
    for key, data in sorted(old.keys.items()):
        new._new_version(key, data)
    return new


@route(r"sys/mounts/(?P<path>.+)")
def mount_one(core, req, token, m):
    ns = core.state.namespaces[req.namespace]
    path = m["path"].strip("/") + "/"
    if req.operation == "read":
        mount = ns.mounts.get(path)
        return sys_envelope(mount.info(), top_level=True) if mount else not_found()
    if req.operation == "delete":
        if path in ("sys/", "cubbyhole/", "identity/"):
            return bad_request(f"cannot unmount \"{path}\"")
        ns.mounts.pop(path, None)
        return no_content()
    if req.operation not in ("create", "update"):
        return unsupported_operation()
    kind = str(req.data.get("type") or "")
    if kind not in ("kv", "kv-v2", "generic"):
        return bad_request(f"plugin not found in the catalog: {kind}")
    options = dict(req.data.get("options") or {})
    if kind == "kv-v2":
        kind, options["version"] = "kv", "2"
    for existing in ns.mounts:
        if path.startswith(existing) or existing.startswith(path):
            return bad_request(f"path is already in use at {existing}")
    ns.mounts[path] = make_mount(path, kind, options, str(req.data.get("description") or ""))
    return no_content()


@route(r"sys/internal/ui/mounts/?")
def ui_mounts_all(core, req, token, m):
    token = core.state.tokens.get(req.token)
    ns = core.state.namespaces[req.namespace]
    visible = {}
    for path, mount in sorted(ns.mounts.items()):
        if token and _touches(core, token, req.namespace, path):
            visible[path] = mount.info()
    return sys_envelope({"auth": {}, "secret": visible})


@route(r"sys/internal/ui/mounts/(?P<path>.+)")
def ui_mounts(core, req, token, m):
    path = m["path"]
    denied = errors(403, "preflight capability check returned 403, please ensure client's "
                    f"policies grant access to path \"{path.rstrip('/')}/\"")
    token = core.state.tokens.get(req.token)
    if token is None or not req.namespace.startswith(token.namespace):
        return denied
    found = core.state.namespaces[req.namespace].find_mount(path)
    if found is None or not _touches(core, token, req.namespace, found[0].path):
        return denied
    info = found[0].info()
    info["path"] = found[0].path
    return sys_envelope(info)


def _touches(core, token: Token, namespace: str, mount_path: str) -> bool:
    acl = core.state.acl_for(token)
    return acl.touches(namespace[len(token.namespace):] + mount_path)


# --- capabilities ---------------------------------------------------------------------
def _capabilities(core, req: Request, token: Token) -> Reply:
    paths = req.data.get("paths", req.data.get("path"))
    if isinstance(paths, str):
        paths = [p for p in paths.split(",") if p]
    if not paths:
        return bad_request("paths must be supplied")
    acl = core.state.acl_for(token)
    prefix = req.namespace[len(token.namespace):]
    data = {p: sorted(acl.capabilities(prefix + p.lstrip("/"))) for p in paths}
    if len(paths) == 1:
        data["capabilities"] = data[paths[0]]
    return sys_envelope(data, top_level=True)


@route(r"sys/capabilities-self")
def capabilities_self(core, req, token, m):
    return _capabilities(core, req, token)


@route(r"sys/capabilities")
def capabilities(core, req, token, m):
    other = core.state.tokens.get(str(req.data.get("token", "")))
    if other is None:
        return bad_request("invalid token")
    return _capabilities(core, req, other)


# --- policies -------------------------------------------------------------------------
@route(r"sys/(?P<kind>policy|policies/acl)/?")
def policy_list(core, req, token, m):
    ns = core.state.namespaces[req.namespace]
    names = sorted(set(ns.policies) | {"root"})
    if req.operation == "list":
        return sys_envelope({"keys": names})
    if req.operation == "read" and m["kind"] == "policy":
        return sys_envelope({"keys": names, "policies": names}, top_level=True)
    return unsupported_operation()


@route(r"sys/(?P<kind>policy|policies/acl)/(?P<name>[^/]+)")
def policy_one(core, req, token, m):
    ns = core.state.namespaces[req.namespace]
    name = m["name"].lower()
    field = "rules" if m["kind"] == "policy" else "policy"
    if req.operation == "read":
        if name == "root":
            return sys_envelope({"name": "root", field: ""}, top_level=m["kind"] == "policy")
        policy = ns.policies.get(name)
        if policy is None:
            return not_found()
        return sys_envelope({"name": name, field: policy.text}, top_level=m["kind"] == "policy")
    if req.operation == "delete":
        if name in ("root", "default"):
            return bad_request(f"cannot delete \"{name}\" policy")
        ns.policies.pop(name, None)
        return no_content()
    if req.operation not in ("create", "update"):
        return unsupported_operation()
    if name == "root":
        return bad_request('cannot update "root" policy')
    text = req.data.get("policy", req.data.get("rules"))
    if not isinstance(text, str) or not text.strip():
        return bad_request("'policy' parameter not supplied or empty")
    try:
        ns.policies[name] = parse_policy(name, text)
    except PolicyError as exc:
        return bad_request(f"failed to parse policy: {exc}")
    return no_content()


# --- namespaces -----------------------------------------------------------------------
@route(r"sys/namespaces/?")
def namespace_list(core, req, token, m):
    if req.operation != "list":
        return unsupported_operation()
    children = [p[len(req.namespace):] for p in core.state.namespaces
                if p.startswith(req.namespace) and p != req.namespace]
    reply = list_children(children, "")
    if reply.status == 200:
        reply.body["data"]["key_info"] = {
            k: _ns_info(core, req.namespace + k) for k in reply.body["data"]["keys"]}
        reply.body["mount_type"] = "ns_system"
    return reply


def _ns_info(core, path: str) -> dict:
    ns = core.state.namespaces[path]
    return {"id": ns.id, "path": ns.path, "custom_metadata": ns.custom_metadata}


@route(r"sys/namespaces/(?P<name>.+)")
def namespace_one(core, req, token, m):
    path = normalize_namespace(req.namespace + m["name"])
    exists = path in core.state.namespaces
    if req.operation == "read":
        return sys_envelope(_ns_info(core, path)) if exists else not_found()
    if req.operation == "delete":
        for sub in [p for p in core.state.namespaces if p.startswith(path)]:
            del core.state.namespaces[sub]
        return no_content()
    if req.operation not in ("create", "update"):
        return unsupported_operation()
    ns = core.state.namespace(path, create=True)
    if isinstance(req.data.get("custom_metadata"), dict):
        ns.custom_metadata = dict(req.data["custom_metadata"])
    return sys_envelope(_ns_info(core, path))


# --- tokens ---------------------------------------------------------------------------
def _lookup_data(token: Token) -> dict:
    return {
        "accessor": token.accessor, "creation_time": token.created, "creation_ttl": token.ttl,
        "display_name": token.display_name, "entity_id": "",
        "expire_time": None if token.ttl == 0 else rfc3339((token.created + token.ttl) * 10**9),
        "explicit_max_ttl": 0, "id": token.id, "identity_policies": None,
        "issue_time": rfc3339(token.created * 10**9), "meta": token.meta, "num_uses": 0,
        "orphan": token.is_root, "path": "auth/token/root" if token.is_root else "auth/token/create",
        "policies": list(token.policies), "renewable": token.ttl > 0,
        "ttl": token.ttl, "type": "service",
    }


@route(r"auth/token/lookup-self")
def lookup_self(core, req, token, m):
    if req.operation not in ("read", "update"):
        return unsupported_operation()
    return envelope(_lookup_data(token), mount_type="token")


@route(r"auth/token/lookup")
def lookup(core, req, token, m):
    other = core.state.tokens.get(str(req.data.get("token", "")))
    if other is None:
        return bad_request("bad token")
    return envelope(_lookup_data(other), mount_type="token")


@route(r"auth/token/(?P<kind>create|create-orphan)")
def token_create(core, req, token, m):
    if req.operation not in ("create", "update"):
        return unsupported_operation()
    policies = req.data.get("policies") or []
    if isinstance(policies, str):
        policies = [p.strip() for p in policies.split(",") if p.strip()]
    if not policies:
        policies = [p for p in token.policies if p != "root"] or (["root"] if token.is_root else [])
    if not token.is_root and not set(p.lower() for p in policies) <= set(token.policies) | {"default"}:
        return bad_request("child policies must be subset of parent")
    ttl = 0 if "root" in policies else (3600 * 768)
    if req.data.get("ttl"):
        ttl = parse_duration(req.data["ttl"]) or ttl
    new = core.state.create_token(
        policies, req.namespace, no_default_policy=bool(req.data.get("no_default_policy")) or "root" in policies,
        display_name="token" + (f"-{req.data['display_name']}" if req.data.get("display_name") else ""),
        meta=req.data.get("meta"), ttl=ttl)
    auth = {
        "client_token": new.id, "accessor": new.accessor, "policies": new.policies,
        "token_policies": new.policies, "metadata": new.meta, "lease_duration": new.ttl,
        "renewable": new.ttl > 0, "entity_id": "", "token_type": "service",
        "orphan": m["kind"] == "create-orphan", "mfa_requirement": None, "num_uses": 0,
    }
    return envelope(None, auth=auth, mount_type="token")


@route(r"auth/token/revoke-self")
def revoke_self(core, req, token, m):
    if token.id != core.state.root_token:
        core.state.tokens.pop(token.id, None)
    return no_content()


@route(r"auth/token/revoke")
def revoke(core, req, token, m):
    victim = str(req.data.get("token", ""))
    if victim and victim != core.state.root_token:
        core.state.tokens.pop(victim, None)
    return no_content()
