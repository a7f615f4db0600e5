"""A Vault that answers 429 gets fewer requests at once, and the apply still completes.

Measured with the simulator's own counters (how many requests were in flight when each
one arrived, and how many 429 answers had been sent by then), not with timing.
"""

from __future__ import annotations

import base64
import os
import statistics
from pathlib import Path

import hvac
import pytest
from vaultsim import VaultServer

from engine.applier import apply_plan
from engine.backends import retry
from engine.backends.retry import AdaptiveLimit
from engine.journal import Journal, journal_key
from engine.model import Kind, SecretId, SecretValue
from engine.planning import compute_plan
from engine.workspace import Workspace

COUNT, PARALLELISM, STORM = 120, 16, 30


@pytest.fixture
def server():
    with VaultServer(root_token="root") as srv:
        srv.enable_kv("dst", version=2)
        yield srv


@pytest.fixture
def quick_backoff(monkeypatch):
    """The real retry logic and jitter, pauses scaled down 10-fold (timing is test_retry's)."""
    real = retry.RetryPolicy.delay
    monkeypatch.setattr(retry.RetryPolicy, "delay", lambda self, n, rng=None: real(self, n) / 10)


def project(tmp_path: Path, server: VaultServer) -> Path:
    for name, data in (("token", b"root"), ("master.key", base64.b64encode(os.urandom(32))),
                       ("fp.key", base64.b64encode(os.urandom(32)))):
        (tmp_path / name).write_bytes(data)
    config = tmp_path / "secretshift.yaml"
    config.write_text(f"""version: 1
managers:
  old: {{type: builtin, path: old.db, key: {{file: master.key}}}}
  new: {{type: vault, address: "{server.url}", token: {{file: token}}, secret_engine: dst,
        base_path: app, kv_version: 2, parallelism: {PARALLELISM}, retries: 10}}
fingerprint_key: {{file: fp.key}}
migrations:
  - {{from: old, to: new, mode: copy}}
""")
    with Workspace(config) as ws:
        for i in range(COUNT):
            ws.backend("old").write(SecretId(Kind.TEXT, f"s{i:03d}"), SecretValue(f"v{i}".encode()))
    return config


def test_429_answers_lower_the_concurrency_and_everything_completes(tmp_path, server, quick_backoff):
    config = project(tmp_path, server)
    server.latency = 0.02  # so that requests overlap
    server.add_fault(429, r"^dst/data/app/SECRET_TEXT/", "POST", count=STORM, after=20)
    with Workspace(config) as ws:
        plan = compute_plan(ws)
        server.reset_counts()
        apply_plan(plan, ws.backends(), ws.fingerprint,
                   lambda: Journal.create(ws.journal_dir, "t", journal_key(ws.fingerprint_key), plan, {}))
        limit = ws.backend("new").limit

    assert server.rate_limited == STORM
    arrivals = list(server.arrivals)
    before = [flight for flight, limited in arrivals if limited == 0][-30:]
    during = [flight for flight, limited in arrivals if 0 < limited < STORM]
    assert max(before) >= PARALLELISM - 1  # the pool was full before the 429s
    assert statistics.median(during) <= PARALLELISM // 2  # and at most half as busy while they came
    assert limit.lowest < PARALLELISM // 2
    client = hvac.Client(url=server.url, token="root")
    for i in range(COUNT):
        assert client.secrets.kv.v2.read_secret_version(
            f"app/SECRET_TEXT/s{i:03d}", mount_point="dst", raise_on_deleted_version=True,
        )["data"]["data"]["value"] == f"v{i}"


def test_the_limit_halves_once_per_burst_grows_back_slowly_and_stays_in_bounds():
    limit = AdaptiveLimit(8)
    taken = [limit.acquire() for _ in range(8)]
    for slot in taken:  # a burst: all eight in flight are rate-limited
        limit.release(slot, rate_limited=True)
    assert limit.limit == 4  # once, not eight times
    for _ in range(3):
        limit.release(limit.acquire(), rate_limited=True)
    assert limit.limit == limit.lowest == 1  # never below 1
    for _ in range(1 + 2 + 3):  # one more after as many successes as the limit
        limit.release(limit.acquire(), rate_limited=False)
    assert limit.limit == 4
    for _ in range(1000):
        limit.release(limit.acquire(), rate_limited=False)
    assert limit.limit == 8  # never above the maximum
