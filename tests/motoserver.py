"""moto's AWS server for the tests, bound to 127.0.0.1 on a free port.

`MotoServer().start()` runs moto's ThreadedMotoServer in this process, on loopback only
(moto's own default is 0.0.0.0, which would expose it to the network), and gives the
endpoint and dummy credentials a boto3 client needs. boto3 talks to it over real HTTP,
unmodified; no `mock_aws` patching is involved.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # what moto reports for any credentials
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class MotoServer:
    """One moto server on 127.0.0.1; `url` is its endpoint once started."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        """Start serving; werkzeug's per-request log lines are silenced."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        assert host == "127.0.0.1", host
        self.url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every resource moto holds (all services, all regions)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            json.load(reply)

    def client(self, service: str = "secretsmanager"):
        """A plain boto3 client for `service` on this server (for tests that look behind
        the backend)."""
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def stop(self) -> None:
        """Shut the server down."""
        self._server.stop()
