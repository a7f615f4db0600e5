"""The request pipeline of the simulated Vault, independent of sockets.

Owns the order Vault applies its checks in: path hygiene, operation from the method,
sealed, body parsing, namespace resolution, token, ACL (create vs update from the
handler's existence check), then the handler. server.py feeds it decoded HTTP requests.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import parse_qsl, unquote

from . import sysapi
from .responses import (
    Reply,
    Request,
    errors,
    invalid_token,
    no_handler,
    permission_denied,
    unsupported_operation,
)
from .state import State, Token, normalize_namespace

METHOD_OPERATIONS = {"GET": "read", "LIST": "list", "POST": "update", "PUT": "update",
                     "DELETE": "delete", "PATCH": "patch", "HEAD": "read"}
SEAL_EXEMPT = {"sys/health", "sys/seal-status", "sys/unseal"}
UI_MOUNTS = "sys/internal/ui/mounts"
MERGE_PATCH = "application/merge-patch+json"
MAX_ENTRY_SIZE = 1024 * 1024  # raft max_entry_size default
TRUE_WORDS = {"1", "t", "T", "TRUE", "true", "True"}
FALSE_WORDS = {"0", "f", "F", "FALSE", "false", "False"}


class Core:
    """State + one lock + the pipeline; `handle` is safe to call from many threads."""

    def __init__(self, root_token: str, max_entry_size: int = MAX_ENTRY_SIZE):
        self.state = State(root_token)
        self.lock = threading.RLock()
        self.max_entry_size = max_entry_size

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one HTTP request (headers with lower-case names)."""
        path_part, _, query_part = raw_path.partition("?")
        path = unquote(path_part)
        if any(not ch.isprintable() for ch in path):
            return Reply(400, None)
        cleaned = _clean(path)
        if cleaned != path:
            location = cleaned + ("?" + query_part if query_part else "")
            return Reply(301, None, {"Location": location})
        if not path.startswith("/v1/"):
            return errors(404)
        query = dict(parse_qsl(query_part, keep_blank_values=True))
        path = path[len("/v1/"):]
        operation = METHOD_OPERATIONS.get(method)
        if operation is None or (method == "HEAD" and path != "sys/health"):
            return unsupported_operation()
        if method == "GET" and "list" in query:
            if query["list"] not in TRUE_WORDS | FALSE_WORDS:
                return errors(400, f"error parsing list parameter: invalid syntax {query['list']!r}")
            operation = "list" if query["list"] in TRUE_WORDS else operation
        if operation == "list" and not path.endswith("/"):
            path += "/"
        with self.lock:
            if self.state.sealed and path.rstrip("/") not in SEAL_EXEMPT:
                return errors(503, "Vault is sealed")
        content_type = headers.get("content-type", "")
        data = _parse_body(body, content_type)
        if data is None:
            return errors(400, "error parsing JSON")
        if method in ("GET", "DELETE", "LIST", "HEAD"):
            data = {**query, **data}
        if operation == "patch" and content_type.split(";")[0].strip() != MERGE_PATCH:
            return errors(415, f"PATCH requires Content-Type of {MERGE_PATCH}, provided {content_type}")
        full = normalize_namespace(headers.get("x-vault-namespace")) + path
        with self.lock:
            ns, rel = self.state.resolve(full)
            req = Request(method, operation, rel, data, query, _token(headers), ns.path,
                          content_type, len(body))
            return self._dispatch(req)

    def _dispatch(self, req: Request) -> Reply:
        if req.path.rstrip("/") in SEAL_EXEMPT or req.path.startswith(UI_MOUNTS):
            return sysapi.handle(self, req, None)
        if not req.token:
            return errors(403, "permission denied")
        token = self.state.tokens.get(req.token)
        if token is None:
            return invalid_token()
        if not req.namespace.startswith(token.namespace):
            return permission_denied()
        ns = self.state.namespaces[req.namespace]
        found = ns.find_mount(req.path)
        mount, rest = found if found else (None, "")
        engine = mount.engine if mount else None
        if req.operation == "update" and engine is not None and engine.exists(rest) is False:
            req.operation = "create"
        if not self.allowed(token, req.namespace, req.path, req.operation):
            return permission_denied()
        if req.path.startswith(("sys/", "auth/token/")) or req.path in ("sys", "auth/token"):
            return sysapi.handle(self, req, token)
        if engine is None:
            return no_handler(req.path) if mount is None else unsupported_operation()
        if req.operation in ("create", "update", "patch") and req.size > self.max_entry_size:
            return self._too_large(req.size)
        return engine.handle(req, rest)

    def _too_large(self, size: int) -> Reply:
        # Raft refuses a storage entry over max_entry_size and the write fails as an
        # internal error. The entry is about the size of the JSON written, so the body size
        # stands in for it. Wording follows raft's ErrValueTooLarge; the multierror wrapping
        # is our assumption (api-facts.md does not quote the body).
        return errors(500, "1 error occurred:\n\t* failed to persist data: put failed due to value "
                      f"being too large; got {size} bytes, max: {self.max_entry_size} bytes\n\n")

    def allowed(self, token: Token, namespace: str, path: str, operation: str) -> bool:
        """Whether `token` may do `operation` on `path` of `namespace` (caller holds the lock)."""
        acl = self.state.acl_for(token)
        return acl.allows(acl_path(token, namespace, path), operation)


def acl_path(token: Token, namespace: str, path: str) -> str:
    """The path as the token's policies see it: relative to the token's namespace."""
    return namespace[len(token.namespace):] + path


def _token(headers: dict[str, str]) -> str:
    token = headers.get("x-vault-token", "")
    auth = headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token


def _parse_body(body: bytes, content_type: str) -> dict | None:
    if not body.strip():
        return {}
    if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _clean(path: str) -> str:
    """Go's path.Clean as ServeMux applies it (keeps a trailing slash)."""
    if "//" not in path and "/./" not in path and "/../" not in path and not path.endswith(("/.", "/..")):
        return path
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    cleaned = "/" + "/".join(out)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned
