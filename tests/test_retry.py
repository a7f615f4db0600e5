"""Transient Vault failures are retried with backoff; permanent ones fail at once."""

import pytest

from engine.backends.retry import RetryPolicy, with_retries
from engine.backends.vault import VaultBackend
from engine.errors import PermissionDenied, TransientError
from engine.model import Kind, SecretId, SecretValue

from conftest import fresh_mount

DB = SecretId(Kind.TEXT, "db")


@pytest.fixture
def backend(vault):
    mount = fresh_mount(vault, 2)
    made = VaultBackend.from_settings("corp_vault", {
        "address": vault.url, "token": SecretValue.from_text(vault.root_token),
        "secret_engine": mount, "base_path": "harness", "retries": 4})
    made.retry = RetryPolicy(attempts=5, base_delay=0.001, max_delay=0.01)  # keep the test fast
    yield made
    vault.clear_faults()
    made.close()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_answers_are_retried_until_vault_recovers(vault, backend, status):
    vault.add_fault(status=status, path_regex="harness/SECRET_TEXT/db", count=3)
    backend.write(DB, SecretValue(b"pw"))
    assert backend.read(DB) == SecretValue(b"pw")


def test_a_sealed_vault_that_stays_sealed_fails_after_the_bounded_attempts(vault, backend):
    vault.add_fault(status=429, path_regex="harness/SECRET_TEXT/db", count=None)
    with pytest.raises(TransientError, match="gave up after 5 attempts"):
        backend.write(DB, SecretValue(b"pw"))


def test_permission_denied_is_not_retried(vault, backend):
    backend.layout()  # the mount's version is looked up once, before the counted request
    vault.add_fault(status=403, path_regex="harness/SECRET_TEXT/db", count=1)
    before = vault.request_count
    with pytest.raises(PermissionDenied):
        backend.write(DB, SecretValue(b"pw"))
    assert vault.request_count - before == 1


def test_backoff_doubles_up_to_the_cap_and_is_jittered():
    policy = RetryPolicy(attempts=6, base_delay=0.25, max_delay=1.0)
    assert [policy.delay(n, rng=lambda: 1.0) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert policy.delay(3, rng=lambda: 0.5) == 0.5


def test_with_retries_reports_each_pause_and_returns_the_result():
    answers = iter([TransientError("m", "busy"), TransientError("m", "busy"), "ok"])

    def request():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    pauses = []
    assert with_retries(request, RetryPolicy(attempts=3), sleep=pauses.append) == "ok"
    assert len(pauses) == 2
