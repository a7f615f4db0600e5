"""The Vault backend's session sends its requests straight to one kept-alive pool, and
behaves as a requests.Session would: headers, timeouts, cookies, errors."""

import http.server
import json
import threading
import time

import pytest
import requests
from vaultsim import VaultServer

from engine.backends.transport import ConnectFailed, PooledSession
from engine.backends.vault import VaultBackend
from engine.errors import TransientError
from engine.model import Kind, SecretId, SecretValue


@pytest.fixture
def server():
    with VaultServer(root_token="root") as srv:
        srv.enable_kv("secret", version=2)
        yield srv


def backend(srv, **settings) -> VaultBackend:
    return VaultBackend.from_settings("corp_vault", {
        "address": srv.url, "token": SecretValue.from_text("root"), "secret_engine": "secret",
        "kv_version": 2, "retries": 0, **settings})


def test_many_requests_share_one_kept_alive_connection(server):
    vault = backend(server)
    secret = SecretId(Kind.TEXT, "db")
    vault.write(secret, SecretValue.from_text("pw"))
    for _ in range(50):
        assert vault.read(secret) == SecretValue.from_text("pw")
    assert len(server._httpd.connections) == 1


def test_a_server_slower_than_the_timeout_is_a_transient_error(server):
    vault = backend(server, timeout=0.2)
    server.latency = 0.5
    with pytest.raises(TransientError, match="did not answer in time"):
        vault.read(SecretId(Kind.TEXT, "db"))


def test_the_direct_path_sends_what_requests_would(server):
    """Same method, path, query, headers and JSON body as requests' own path (but for
    Accept-Encoding: the direct path asks for no compression, as it decodes none)."""
    seen = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.command, self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{httpd.server_address[1]}"
        call = {"url": origin + "/v1/a b/c", "params": {"list": "true"}, "json": {"value": "é"},
                "headers": {"X-Vault-Token": "t", "X-Vault-Namespace": "team"}, "timeout": 5}
        direct = PooledSession(origin, pool_maxsize=2)
        assert direct.request("post", **call).json() == {}
        with requests.Session() as plain:
            plain.trust_env = False
            assert plain.request("post", **call).json() == {}
    finally:
        httpd.shutdown()
    (m1, p1, h1, b1), (m2, p2, h2, b2) = seen
    assert (m1, p1, b1) == (m2, p2, b2) == ("POST", "/v1/a%20b/c?list=true", json.dumps({"value": "é"}).encode())
    direct_headers = {k.lower(): v for k, v in h1.items()}
    assert direct_headers.pop("accept-encoding") == "identity"
    assert direct_headers == {k.lower(): v for k, v in h2.items() if k.lower() != "accept-encoding"}


def test_cookies_a_server_sets_are_sent_back_as_requests_would():
    """A load balancer's sticky-session cookie: kept and sent with the next requests."""
    cookies = []

    class Sticky(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            cookies.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "lb=node-2; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sticky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{httpd.server_address[1]}"
        session = PooledSession(origin, pool_maxsize=1)
        for _ in range(3):
            session.request("GET", origin + "/v1/sys/health", timeout=5)
    finally:
        httpd.shutdown()
    assert cookies == [None, "lb=node-2", "lb=node-2"]


def _serve(handler) -> tuple[http.server.ThreadingHTTPServer, str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status: int, body: bytes = b"{}", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


def test_an_idle_connection_the_server_closed_is_replaced_not_failed():
    """The server closes every connection after one answer, without saying so: each next
    request notices before sending and opens a new connection."""
    peers = []

    class OneShot(_Quiet):
        def do_GET(self):
            peers.append(self.client_address[1])
            self.answer(200, b'{"n": 1}')
            self.close_connection = True

    httpd, origin = _serve(OneShot)
    try:
        session = PooledSession(origin, pool_maxsize=2)
        for _ in range(3):
            assert session.request("GET", origin + "/v1/x", timeout=5).json() == {"n": 1}
    finally:
        httpd.shutdown()
    assert len(set(peers)) == 3


def test_a_connection_the_server_closes_after_the_idle_check_is_sent_again_once():
    """The race the idle check cannot see: the server answers, then closes the connection
    only after the client has sent its next request on it. That request never reached the
    server's handler, so it goes once more on a new connection instead of failing."""
    handled = []

    class ClosesLate(_Quiet):
        def do_PUT(self):
            handled.append(self.client_address[1])
            self.rfile.read(int(self.headers["Content-Length"]))
            self.answer(200, b'{"ok": true}')
            time.sleep(0.3)  # the client's next request arrives meanwhile, unread
            self.close_connection = True

    httpd, origin = _serve(ClosesLate)
    try:
        session = PooledSession(origin, pool_maxsize=1)
        for n in range(3):
            response = session.request("PUT", origin + "/v1/x", json={"n": n}, timeout=5)
            assert response.json() == {"ok": True}
    finally:
        httpd.shutdown()
    assert len(handled) == 3  # each request handled exactly once
    assert len(set(handled)) == 3


def test_a_new_connection_dropped_without_an_answer_is_an_error_not_a_loop():
    connections = []

    class Hangs(_Quiet):
        def do_GET(self):
            connections.append(self.client_address[1])
            self.close_connection = True  # no answer at all

    httpd, origin = _serve(Hangs)
    try:
        session = PooledSession(origin, pool_maxsize=1)
        with pytest.raises(requests.exceptions.ConnectionError, match="dropped"):
            session.request("GET", origin + "/v1/x", timeout=5)
    finally:
        httpd.shutdown()
    assert len(connections) == 1


def test_repeated_headers_are_joined_and_errors_come_back_as_responses():
    class Twice(_Quiet):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Seen", "a")
            self.send_header("X-Seen", "b")
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b'{"errors":[]}')

    httpd, origin = _serve(Twice)
    try:
        response = PooledSession(origin, pool_maxsize=1).request("GET", origin + "/v1/x", timeout=5)
    finally:
        httpd.shutdown()
    assert (response.status_code, response.ok, response.json()) == (404, False, {"errors": []})
    assert response.headers["x-seen"] == "a, b"
    assert response.encoding == "utf-8"


def test_a_redirect_is_followed_as_requests_would():
    """A standby Vault answers 307 with the active node's address; the call ends there."""
    class Standby(_Quiet):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            if self.path.startswith("/v1/standby"):
                self.answer(307, b"", Location="/v1/active" + self.path[len("/v1/standby"):])
            else:
                self.answer(200, json.dumps({"path": self.path, "body": body.decode()}).encode())

    httpd, origin = _serve(Standby)
    try:
        response = PooledSession(origin, pool_maxsize=1).request(
            "POST", origin + "/v1/standby/secret/data/x", json={"data": {"value": "v"}}, timeout=5)
    finally:
        httpd.shutdown()
    assert response.json() == {"path": "/v1/active/secret/data/x", "body": '{"data": {"value": "v"}}'}


def test_a_port_nobody_listens_on_cannot_be_connected_to():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    session = PooledSession(f"http://127.0.0.1:{port}", pool_maxsize=1)
    with pytest.raises(ConnectFailed):
        session.request("GET", f"http://127.0.0.1:{port}/v1/sys/health", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):  # what requests callers catch
        session.request("GET", f"http://127.0.0.1:{port}/v1/sys/health", timeout=5)


def test_after_a_fork_the_backend_opens_connections_of_its_own_and_leaves_the_parents_alone(server):
    """A worker process (workers.py) must not talk over, nor close, the connections it
    inherited: the parent's process owns them."""
    vault = backend(server, parallelism=8)
    secret = SecretId(Kind.TEXT, "db")
    vault.write(secret, SecretValue.from_text("pw"))
    inherited = list(vault._client.session._idle)
    assert len(inherited) == 1 and len(server._httpd.connections) == 1
    vault.after_fork(3)
    assert vault.parallelism == 3  # its share of 8, rounded up
    assert vault.read(secret) == SecretValue.from_text("pw")
    assert len(server._httpd.connections) == 2
    assert inherited[0].sock is not None  # not closed: the parent may still be using it
