"""A `requests.Session` whose requests to one server go over kept-alive `http.client`
connections, skipping requests' and urllib3's per-call machinery.

hvac sends every call through `session.request`. Through requests and urllib3 a call
merges session and call settings, prepares the request, looks up the pool, checks the
connection, builds urllib3 and requests response objects and copies header maps three
times: measured on a Vault read, about 210 us of CPU against 105 us for the same
exchange over `http.client` (the standard library's HTTP/1.1 client, which requests
itself runs on). On a 2-core machine that CPU, not the network, bounds how many requests
a migration sends per second. So the common case, a request to this session's server,
goes straight to an idle connection of our own small pool:

- same request as requests would send: method, percent-encoded path and query, the
  session's and the call's headers, the JSON body, `Content-Length`;
- the same TLS rules: `verify` True uses requests' CA bundle, a path is a CA file or
  folder (ca_cert), False does not verify; `cert` is a client certificate; host names
  are checked;
- the same timeouts (one number, or connect and read);
- the same answers: a `requests.Response` with status, headers, body and encoding;
- the same failures: requests' exception types (`ConnectionError`, `ConnectTimeout`,
  `ReadTimeout`, `SSLError`), so hvac and callers see no difference; `ConnectFailed`
  (a `ConnectionError`) when no connection could be opened at all;
- an idle connection the server has closed is noticed before reuse (as urllib3 does),
  and cookies a server sets (a sticky load balancer) are kept.

Anything unusual takes requests' ordinary path instead: another host, a proxy for this
server, a per-call `verify`/`cert`/`proxies` that differs from the session's, form
data, files, auth, per-call hooks, streaming, cookies, and redirects to follow.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import select
import socket
import ssl
import threading
from urllib.parse import urlencode, urlsplit

import requests
from requests.cookies import extract_cookies_to_jar
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_encoding_from_headers,
    requote_uri,
    select_proxy,
)

# Sent on every direct request unless the call sets them. No compression is asked for:
# requests would ask for gzip, but Vault answers JSON uncompressed either way.
_DIRECT_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity", "Connection": "keep-alive"}
_DROPPED = (http.client.HTTPException, ConnectionError, BrokenPipeError, EOFError)
# How a request sent on a connection the server has just closed fails (RemoteDisconnected
# is a ConnectionResetError).
_CLOSED_WHILE_IDLE = (ConnectionResetError, BrokenPipeError)


class ConnectFailed(requests.exceptions.ConnectionError):
    """No connection to the server could be opened (refused, unknown host, unreachable)."""


class PooledSession(requests.Session):
    """One server's session: `request` calls to `origin` go over its own connections.

    Settings (`verify`, `cert`, `proxies`, `headers`) are fixed when the first request
    is sent; build it, set them, then use it. `trust_env` is off: the environment is
    read once by whoever builds the session (see vault.py).
    """

    def __init__(self, origin: str, pool_maxsize: int):
        super().__init__()
        self.origin = origin.rstrip("/")
        self.trust_env = False
        parts = urlsplit(self.origin)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._maxsize = max(1, int(pool_maxsize))
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._headers: dict[str, str] | None = None
        self._proxied: bool | None = None

    def request(self, method, url, params=None, data=None, headers=None, cookies=None, files=None,
                auth=None, timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None,
                verify=None, cert=None, json=None):
        """As `requests.Session.request`; the common case is sent directly (see the module)."""
        full = requote_uri(url + ("&" if "?" in url else "?") + urlencode(list(params.items()), doseq=True)
                           if params else url)
        if (data is not None or cookies or files or auth or hooks or stream or self.cookies
                or not full.startswith(self.origin + "/") or self._through_proxy()
                or (verify is not None and verify != self.verify)
                or (cert is not None and cert != self.cert)
                or (proxies and proxies != self.proxies)):
            return self._ordinary(method, url, params=params, data=data, headers=headers, cookies=cookies,
                                  files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                                  proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert, json=json)
        response = self._send(method.upper(), full, headers, json, timeout)
        if allow_redirects and response.is_redirect:  # a standby Vault pointing at the active node
            return self._ordinary(method, url, params=params, headers=headers, timeout=timeout, proxies=proxies,
                                  verify=verify, cert=cert, json=json)
        return response

    def _ordinary(self, method, url, **kwargs) -> requests.Response:
        return super().request(method, url, **kwargs)

    def _send(self, method: str, url: str, headers, json, timeout) -> requests.Response:
        sent = {**self._session_headers(), **(headers or {})}
        body = None
        if json is not None:
            body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
            sent["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            sent["Content-Length"] = "0"
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        reuse = True
        while True:
            connection, reused = self._checkout(connect, reuse)
            raw = None
            try:
                connection.set_read_timeout(read)
                connection.request(method, url[len(self.origin):], body=body, headers=sent)
                raw = connection.getresponse()
                content = raw.read()
                break
            except BaseException as error:
                connection.close()
                if reused and raw is None and isinstance(error, _CLOSED_WHILE_IDLE):
                    # The server closed this kept-alive connection after the idle check and
                    # before it read the request: no answer came, so it did not act on it.
                    # Sent once more on a new connection, as other HTTP clients do.
                    reuse = False
                    continue
                translated = _as_requests_error(error, url, connecting=False) if isinstance(error, Exception) else error
                if translated is error:
                    raise
                raise translated from error
        self._checkin(connection, raw)
        if raw.msg.get("Set-Cookie"):
            extract_cookies_to_jar(self.cookies, requests.Request(method, url, headers=sent).prepare(),
                                   _CookieSource(raw))
        response = _response(raw, content, url)
        if self.hooks.get("response"):
            response = dispatch_hook("response", self.hooks, response)
        return response

    # ----------------------------------------------------------------- the pool

    def _checkout(self, connect_timeout, reuse: bool) -> tuple[_Connection, bool]:
        """An idle connection the server has not closed (when `reuse`), or a new one; and
        whether it was reused. The check for a closed connection is a system call: it is
        made outside the lock."""
        while reuse:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            if not _closed_by_peer(connection.sock):
                return connection, True
            connection.close()
        connection = _connection(self._host, self._port, connect_timeout, self._tls_context() if self._tls else None)
        try:
            connection.connect()
        except Exception as error:
            connection.close()
            translated = _as_requests_error(error, self.origin, connecting=True)
            if translated is error:
                raise
            raise translated from error
        return connection, False

    def _checkin(self, connection: _Connection, raw: http.client.HTTPResponse) -> None:
        if raw.will_close:
            connection.close()
            return
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS settings requests would apply for `verify` and `cert` (built once)."""
        if self._context is None:
            verify = self.verify
            if verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(verify, str) and os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH)
            if self.cert:
                context.load_cert_chain(*((self.cert,) if isinstance(self.cert, str) else self.cert))
            self._context = context
        return self._context

    def _session_headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {**dict(self.headers), **_DIRECT_HEADERS}
        return self._headers

    def _through_proxy(self) -> bool:
        if self._proxied is None:
            self._proxied = bool(self.proxies and select_proxy(self.origin + "/", self.proxies))
        return self._proxied

    def after_fork(self) -> None:
        """In a forked child: the pooled connections are the parent's (a TLS connection
        used by two processes is garbled); forget them, unclosed, and open new ones.
        requests' own pools (the ordinary path) are replaced for the same reason."""
        self._lock = threading.Lock()
        self._idle = []
        for prefix in list(self.adapters):
            self.mount(prefix, requests.adapters.HTTPAdapter())

    def close(self) -> None:
        """Close every connection."""
        super().close()
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _ReadTimeout:
    """A connection that connects within the connect timeout, then waits for answers
    within the read timeout (set only when it changes: each change is a system call)."""

    _read_timeout: object = None

    def set_read_timeout(self, timeout) -> None:
        if timeout != self._read_timeout:
            self.sock.settimeout(_seconds(timeout))
            self._read_timeout = timeout


class _PlainConnection(_ReadTimeout, http.client.HTTPConnection):
    pass


class _TlsConnection(_ReadTimeout, http.client.HTTPSConnection):
    pass


_Connection = _PlainConnection | _TlsConnection


def _connection(host: str, port: int, connect_timeout, context: ssl.SSLContext | None) -> _Connection:
    if context is None:
        return _PlainConnection(host, port, timeout=_seconds(connect_timeout))
    return _TlsConnection(host, port, timeout=_seconds(connect_timeout), context=context)


class _CookieSource:
    """What requests' cookie extraction reads of a response: the http.client one."""

    def __init__(self, raw: http.client.HTTPResponse):
        self._original_response = raw


def _seconds(timeout) -> float | None:
    return None if timeout is None else float(timeout)


def _closed_by_peer(sock: socket.socket | None) -> bool:
    """True when an idle connection's socket is readable: the server closed it (or sent
    something unasked), so it must not carry the next request."""
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _response(raw: http.client.HTTPResponse, content: bytes, url: str) -> requests.Response:
    headers: dict[str, str] = {}
    for name, value in raw.msg.items():  # repeated headers joined, as urllib3 does
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = raw.reason
    response.url = url
    response._content = content
    return response


def _as_requests_error(error: Exception, url: str, *, connecting: bool) -> Exception:
    """The exception requests raises for the same failure (others are raised unchanged)."""
    if isinstance(error, ssl.SSLError):
        return requests.exceptions.SSLError(f"{url}: {error}")
    if isinstance(error, (TimeoutError, socket.timeout)):
        if connecting:
            return requests.exceptions.ConnectTimeout(f"{url}: connection timed out")
        return requests.exceptions.ReadTimeout(f"{url}: read timed out")
    if connecting and isinstance(error, OSError):
        return ConnectFailed(f"{url}: cannot connect ({error})")
    if isinstance(error, (*_DROPPED, OSError)):
        return requests.exceptions.ConnectionError(f"{url}: the connection was dropped ({type(error).__name__})")
    return error
