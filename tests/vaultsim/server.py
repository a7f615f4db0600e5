"""VaultServer: the public face of the simulator (HTTP listener, setup helpers, faults).

Owns the socket side: a threaded HTTP/1.1 server on 127.0.0.1 with keep-alive, optional
TLS, added latency, injected faults (error answers, or a connection dropped without any
answer, as a crashed proxy or load balancer would) and request counting. Vault semantics
live in core.py.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from .core import MAX_ENTRY_SIZE, Core
from .policy import parse_policy
from .responses import PERMISSION_DENIED, Reply
from .state import make_mount

MAX_REQUEST_SIZE = 32 * 1024 * 1024  # listener max_request_size default
# Bodies an injected fault answers with, as Vault words them for that status.
FAULT_BODIES = {
    400: ["invalid request"],
    403: [PERMISSION_DENIED],
    404: [],
    405: ["unsupported operation"],
    412: ["required index state not present"],
    413: ["error parsing JSON"],
    500: ["internal error"],
    502: ["bad gateway"],
    503: ["Vault is sealed"],
}


DROP = 0  # the status of a fault that closes the connection without answering


@dataclass
class Fault:
    """An injected failure; `count` None = forever. Use `.remove()` to withdraw it.

    `status` DROP (0) closes the TCP connection without writing any answer; with
    `handled` the request reaches Vault first (a write is applied) and only its answer
    is lost, as when a proxy dies on the way back.
    """

    status: int
    path_regex: re.Pattern
    method: str | None
    count: int | None
    after: int
    body: Any
    server: "VaultServer"
    handled: bool = False
    seen: int = 0
    fired: int = 0

    @property
    def drops(self) -> bool:
        """Whether this fault closes the connection instead of answering."""
        return self.status == DROP

    def remove(self) -> None:
        """Withdraw this fault."""
        with self.server._fault_lock:
            if self in self.server._faults:
                self.server._faults.remove(self)

    def take(self, method: str, path: str, listing: bool) -> bool:
        """Whether this request is answered by the fault (caller holds the fault lock)."""
        if self.method and self.method != method and not (self.method == "LIST" and listing):
            return False
        if not self.path_regex.search(path):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        self.fired += 1
        return True

    def reply(self, path: str) -> Reply:
        if self.drops:
            return Reply(DROP, None)
        if self.body is not None:
            return Reply(self.status, self.body)
        if self.status == 429:
            return Reply(429, {"errors": [f'request path "{path}": rate limit quota exceeded']})
        if self.status == 307:
            return Reply(307, None, {"Location": self.server.url + "/v1/" + path})
        return Reply(self.status, {"errors": FAULT_BODIES.get(self.status, ["internal error"])})


class VaultServer:
    """A Vault-API-compatible HTTP server for tests, bound to 127.0.0.1 on a free port.

    `latency` (seconds, settable any time) delays every request; `tls=(certfile, keyfile)`
    serves https; `max_entry_size` mimics raft's per-entry limit on KV writes.
    `request_count` counts every request answered (faults included); `request_log` keeps
    the last 10,000 as (method, path after /v1/, status); `arrivals` the last 10,000 as
    (requests in flight when it arrived, itself included; 429 answers sent before it).
    """

    def __init__(self, root_token: str = "root", latency: float = 0.0,
                 tls: tuple[str, str] | None = None, port: int = 0,
                 max_entry_size: int = MAX_ENTRY_SIZE):
        self.core = Core(root_token, max_entry_size)
        self.root_token = root_token
        self.latency = latency
        self.tls = tls
        self.port = port
        self.max_entry_size = max_entry_size
        self.request_count = 0
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=10000)
        # For each request as it arrives: (requests in flight, itself included; 429 answers so far)
        self.arrivals: deque[tuple[int, int]] = deque(maxlen=10000)
        self.in_flight = self.rate_limited = 0
        self._faults: list[Fault] = []
        self._fault_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> "VaultServer":
        """Bind 127.0.0.1 and serve in a daemon thread."""
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.vault = self
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"vaultsim-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None

    def __enter__(self) -> "VaultServer":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base address, e.g. http://127.0.0.1:PORT (https with tls)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # --- setup helpers -----------------------------------------------------------------
    def enable_kv(self, path: str = "secret", version: int = 2, namespace: str = "") -> None:
        """Mount a KV engine (creating the namespace if needed); replaces a mount at `path`."""
        with self.core.lock:
            ns = self.core.state.namespace(namespace, create=True)
            mount = make_mount(path, "kv", {"version": str(version)})
            ns.mounts[mount.path] = mount

    def set_policy(self, name: str, text: str, namespace: str = "") -> None:
        """Create or replace an ACL policy from HCL text."""
        policy = parse_policy(name.lower(), text)
        with self.core.lock:
            self.core.state.namespace(namespace, create=True).policies[policy.name] = policy

    def create_token(self, policies: list[str] | None = None, namespace: str = "", **extra) -> str:
        """A new token holding `policies` plus `default`; returns its id."""
        with self.core.lock:
            self.core.state.namespace(namespace, create=True)
            return self.core.state.create_token(list(policies or []), namespace, **extra).id

    def create_namespace(self, path: str) -> None:
        """Create a namespace (and its parents)."""
        with self.core.lock:
            self.core.state.namespace(path, create=True)

    def seal(self) -> None:
        """Seal: every endpoint but sys/health, sys/seal-status, sys/unseal answers 503."""
        with self.core.lock:
            self.core.state.sealed = True

    def unseal(self) -> None:
        """Unseal (state is kept across seal/unseal)."""
        with self.core.lock:
            self.core.state.sealed = False

    @property
    def sealed(self) -> bool:
        """Whether the server is sealed."""
        return self.core.state.sealed

    # --- faults and counters -----------------------------------------------------------
    def add_fault(self, status: int | None = None, path_regex: str = ".*", method: str | None = None,
                  count: int | None = 1, after: int = 0, body: Any = None, *,
                  drop: bool = False, handled: bool = False) -> Fault:
        """Answer the next `count` matching requests (after skipping `after`) with `status`.

        `path_regex` is searched in the decoded path after /v1/ (namespace header not
        included); `method` matches the HTTP verb ("LIST" also matches GET ?list=true).
        `drop=True` (or `status=0`) closes the connection without any answer instead;
        `handled=True` lets Vault carry the request out before the answer is lost.
        """
        if drop:
            status = DROP
        if status is None:
            raise ValueError("add_fault needs a status, or drop=True")
        if handled and status != DROP:
            raise ValueError("handled=True only applies to a dropped connection")
        fault = Fault(status, re.compile(path_regex), method.upper() if method else None,
                      count, after, body, self, handled)
        with self._fault_lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Withdraw every injected fault."""
        with self._fault_lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        """Zero `request_count` and empty `request_log`."""
        with self._fault_lock:
            self.request_count = 0
            self.request_log.clear()
            self.arrivals.clear()
            self.rate_limited = 0

    def _fault_for(self, method: str, path: str, query: str) -> Fault | None:
        listing = method == "LIST" or bool(re.search(r"(^|&)list=(1|t|true|True|TRUE)($|&)", query))
        with self._fault_lock:
            self.request_count += 1
            for fault in self._faults:
                if fault.take(method, path, listing):
                    return fault
        return None

    # --- one request ---------------------------------------------------------------------
    def serve(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Latency, faults, then the core; the HTTP handler calls this. A reply with
        status DROP tells the handler to close the connection without answering."""
        with self._fault_lock:
            self.in_flight += 1
            self.arrivals.append((self.in_flight, self.rate_limited))
        try:
            reply = self._serve(method, raw_path, headers, body)
        finally:
            with self._fault_lock:
                self.in_flight -= 1
        return reply

    def _serve(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.latency:
            time.sleep(self.latency)
        path, _, query = raw_path.partition("?")
        logical = unquote(path)[4:] if path.startswith("/v1/") else unquote(path)
        fault = self._fault_for(method, logical, query)
        if fault is None or fault.handled:
            reply = self.core.handle(method, raw_path, headers, body)
        if fault is not None:
            reply = fault.reply(logical)
        if reply.status == 429:
            with self._fault_lock:
                self.rate_limited += 1
        self.request_log.append((method, logical, reply.status))
        return reply



class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    vault: VaultServer

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        """Cut keep-alive connections so pooled clients see the server gone after stop()."""
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per response (flushed by handle_one_request) and no Nagle delay:
    # split header/body segments would otherwise stall keep-alive clients ~40 ms each.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "vaultsim"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_SIZE:
            self.close_connection = True
            self._send(Reply(413, {"errors": ["error parsing JSON"]}))
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = self.server.vault.serve(self.command, self.path, headers, body)
        except Exception as exc:  # a simulator bug must still answer like Vault would
            reply = Reply(500, {"errors": [f"1 error occurred:\n\t* internal error: {exc!r}\n\n"]})
        if reply.status == DROP:  # close without a byte of answer: the client sees EOF
            self.close_connection = True
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        # Go's json.Encoder ends every body with a newline; keep Content-Length identical.
        payload = b"" if reply.body is None else json.dumps(reply.body).encode() + b"\n"
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
