"""Refresh reads AWS values with BatchGetSecretValue (20 per call) and falls back to one
GetSecretValue per secret where the batch cannot answer. Requests are counted with a
botocore event hook on the backend's own client (the client itself is not replaced),
against moto's server on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from motoserver import REGION

from engine import crypto
from engine.backends.aws import AwsSecretsManagerBackend
from engine.backends.base import Backend
from engine.inventory import read_states
from engine.model import Kind, SecretId, SecretValue, Unavailable

_prefixes = itertools.count(1)


@pytest.fixture
def aws(moto_server):
    backend = AwsSecretsManagerBackend.from_settings(
        "aws", {"endpoint_url": moto_server.url, "region": REGION, "prefix": f"batch-{next(_prefixes):04d}/"})
    yield backend
    backend.close()


def count_requests(backend: AwsSecretsManagerBackend) -> Counter:
    """Operation name -> requests sent, from botocore's before-call event of this client."""
    seen = Counter()
    backend._client.meta.events.register("before-call.secrets-manager",
                                         lambda model, **_: seen.update([model.name]))
    return seen


def seed(aws, n: int) -> list[SecretId]:
    ids = []
    for i in range(n):
        secret = SecretId(Kind.FILE if i % 3 == 0 else Kind.TEXT, f"s{i:03d}")
        aws.write(secret, SecretValue(bytes([i % 256]) * (i + 1)) if secret.kind is Kind.FILE
                  else SecretValue.from_text(f"value {i} ✓"))
        ids.append(secret)
    return ids


def per_secret(aws, secrets, fingerprint):
    """The same refresh through the base class's one-read-per-secret path."""
    entries = {}
    for secret in secrets:
        for _, value in Backend.read_many(aws, [secret]):
            entries[secret] = (fingerprint(value.data), len(value))
    return entries


def test_batched_reads_give_the_same_values_and_fingerprints_in_fewer_requests(aws):
    ids = seed(aws, 45)
    fingerprint = crypto.Fingerprinter(crypto.new_key())
    seen = count_requests(aws)
    entries, unavailable = read_states(aws, ids, fingerprint, workers=4)
    assert seen == Counter({"BatchGetSecretValue": 3})  # 20 + 20 + 5, no GetSecretValue
    assert unavailable == {}
    assert {s: (e.fingerprint, e.size) for s, e in entries.items()} == per_secret(aws, ids, fingerprint)
    assert all(e.location == aws.location(e.id) for e in entries.values())
    assert dict(Backend.read_many(aws, ids[:3])) == dict(aws.read_many(ids[:3]))  # the values themselves


def test_a_batch_the_service_cannot_answer_is_read_secret_by_secret(aws, moto_server):
    """moto fails the whole batch for a secret without a value; those 20 are read one by one."""
    ids = seed(aws, 25)
    empty = SecretId(Kind.TEXT, "s000-empty")
    moto_server.client().create_secret(Name=aws.location(empty))
    gone = SecretId(Kind.TEXT, "s023")  # sorts into the second batch
    aws.delete(gone)
    fingerprint = crypto.Fingerprinter(crypto.new_key())
    seen = count_requests(aws)
    entries, unavailable = read_states(aws, [*ids, empty], fingerprint, workers=1)
    requests = dict(seen)
    assert sorted(unavailable) == sorted([empty, gone])
    assert unavailable[empty].state == "no_value" and unavailable[gone].state == "pending_deletion"
    assert isinstance(unavailable[gone], Unavailable) and unavailable[gone].when
    live = [s for s in ids if s != gone]
    assert {s: (e.fingerprint, e.size) for s, e in entries.items()} == per_secret(aws, live, fingerprint)
    # 20 + 6 ids: the batch holding `empty` fails and its 20 are read one by one; the
    # other one reports `gone` as an error, which is then read on its own
    assert empty in sorted([*ids, empty])[:20] and gone not in sorted([*ids, empty])[:20]
    assert requests == {"BatchGetSecretValue": 2, "GetSecretValue": 20 + 1,
                        "DescribeSecret": 1}  # the deletion date of `gone`
