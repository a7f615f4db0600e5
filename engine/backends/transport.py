"""A `requests.Session` whose requests to one server skip requests' per-call machinery.

hvac sends every call through `session.request`. In requests that call merges session
and call settings, prepares the request, looks up the connection pool, checks the CA
bundle on disk and builds cookie jars: profiled on 2,000-secret applies, about 40% of
the client's CPU, more than the HTTP exchange itself. Here the connection pool for the
server is looked up once (through requests' own HTTPAdapter, so TLS verification,
ca_cert, client certificates and proxies are set up exactly as requests would) and each
request goes to it directly: same headers, same body encoding, same timeouts, same
connection retries, and the same exceptions (urllib3's are translated as requests does),
so hvac and the callers see no difference.

Anything unusual (another host, a per-call `verify`/`cert`/`proxies` that differs from
the session's, files, streaming, redirects) takes requests' ordinary path instead.
"""

from __future__ import annotations

import json as jsonlib
import threading
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import (
    ConnectTimeout,
    InvalidHeader,
    ProxyError,
    ReadTimeout,
    RetryError,
    SSLError,
)
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, requote_uri
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import (
    InvalidHeader as _InvalidHeader,
)
from urllib3.exceptions import (
    ProxyError as _ProxyError,
)
from urllib3.exceptions import (
    SSLError as _SSLError,
)
from urllib3.util import Timeout


class PooledSession(requests.Session):
    """One server's session: `request` calls to `origin` go straight to its pool.

    Settings (`verify`, `cert`, `proxies`, `headers`) are fixed when the first request
    is sent; build it, set them, then use it. `trust_env` is off: the environment is
    read once by whoever builds the session (see vault.py).
    """

    def __init__(self, origin: str, pool_maxsize: int):
        super().__init__()
        self.origin = origin.rstrip("/")
        self.trust_env = False
        self.adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, int(pool_maxsize)))
        self.mount("https://", self.adapter)
        self.mount("http://", self.adapter)
        self._pool: Any = None
        self._absolute = False
        self._pool_lock = threading.Lock()
        self._timeouts: dict[Any, Timeout] = {}

    def request(self, method, url, params=None, data=None, headers=None, cookies=None, files=None,
                auth=None, timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None,
                verify=None, cert=None, json=None):
        """As `requests.Session.request`; the common case is sent directly (see the module)."""
        full = requote_uri(url + ("&" if "?" in url else "?") + urlencode(list(params.items()), doseq=True)
                           if params else url)
        if (data is not None or cookies or files or auth or hooks or stream or self.cookies
                or not full.startswith(self.origin + "/")
                or (verify is not None and verify != self.verify)
                or (cert is not None and cert != self.cert)
                or (proxies and proxies != self.proxies)):
            return super().request(method, url, params=params, data=data, headers=headers, cookies=cookies,
                                   files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                                   proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert,
                                   json=json)
        return self._send(method.upper(), full, headers, json, timeout)

    def _send(self, method: str, url: str, headers, json, timeout) -> requests.Response:
        sent = CaseInsensitiveDict(self.headers)
        if headers:
            sent.update(headers)
        body = None
        if json is not None:
            body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
            sent["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            sent["Content-Length"] = "0"
        pool = self._pool if self._pool is not None else self._connect(url)
        try:
            raw = pool.urlopen(method=method, url=url if self._absolute else url[len(self.origin):],
                               body=body, headers=sent, redirect=False, assert_same_host=False,
                               preload_content=True, decode_content=True, retries=self.adapter.max_retries,
                               timeout=self._timeout(timeout))
        except Exception as error:  # noqa: BLE001 - translated exactly as requests does, or re-raised
            _reraise(error)
        if "set-cookie" in raw.headers:  # kept as requests would (a sticky load balancer)
            extract_cookies_to_jar(self.cookies, requests.Request(method, url, headers=sent).prepare(), raw)
        response = _response(raw, url)
        if self.hooks.get("response"):
            response = dispatch_hook("response", self.hooks, response)
        return response

    def _connect(self, url: str):
        """The connection pool for the origin, set up by requests' adapter (TLS, proxy)."""
        with self._pool_lock:
            if self._pool is None:
                probe = requests.Request("GET", url).prepare()
                try:
                    pool = self.adapter.get_connection_with_tls_context(probe, self.verify, self.proxies, self.cert)
                    self.adapter.cert_verify(pool, probe.url, self.verify, self.cert)
                    absolute = self.adapter.request_url(probe, self.proxies) != probe.path_url
                except Exception as error:  # noqa: BLE001 - translated exactly as requests does
                    _reraise(error)
                self._absolute = absolute  # plain http through a proxy names the full URL
                self._pool = pool
            return self._pool

    def _timeout(self, timeout) -> Timeout:
        if isinstance(timeout, Timeout):
            return timeout
        made = self._timeouts.get(timeout)
        if made is None:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
            made = self._timeouts[timeout] = Timeout(connect=connect, read=read)
        return made

    def close(self) -> None:
        """Close the connection pool."""
        super().close()
        self._pool = None


def _response(raw, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = raw.reason
    response.url = url
    response.raw = raw
    response._content = raw.data  # already read, so the connection is back in the pool
    return response


def _reraise(error: Exception):
    translated = _as_requests_error(error)
    if translated is error:
        raise error
    raise translated from error


def _as_requests_error(error: Exception) -> Exception:
    """The exception requests' HTTPAdapter.send raises for a urllib3 failure."""
    if isinstance(error, MaxRetryError):
        reason = error.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return ConnectTimeout(error)
        if isinstance(reason, ResponseError):
            return RetryError(error)
        if isinstance(reason, _ProxyError):
            return ProxyError(error)
        if isinstance(reason, _SSLError):
            return SSLError(error)
        return RequestsConnectionError(error)
    if isinstance(error, (ProtocolError, OSError, ClosedPoolError)):
        return RequestsConnectionError(error)
    if isinstance(error, _ProxyError):
        return ProxyError(error)
    if isinstance(error, _SSLError):
        return SSLError(error)
    if isinstance(error, ReadTimeoutError):
        return ReadTimeout(error)
    if isinstance(error, _InvalidHeader):
        return InvalidHeader(error)
    return error
