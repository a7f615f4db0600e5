"""What only the AWS Secrets Manager backend does: its exact layout, AWS's own rules
(which moto does not enforce), recovery-window deletes, idempotent writes and error
translation. Everything runs through unmodified boto3 against moto's server on
127.0.0.1; a raw boto3 client looks behind the backend to check what AWS really holds."""

from __future__ import annotations

import itertools
import socket
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import botocore.exceptions as bce
import pytest

from engine.backends import backend_class
from engine.backends.aws import AwsSecretsManagerBackend, ScheduledForDeletion, _classify
from engine.errors import (
    BackendError,
    ManagerUnreachable,
    PermissionDenied,
    ReadOnlyManager,
    TransientError,
    ValueTooLarge,
)
from engine.model import Kind, SecretId, SecretValue
from motoserver import REGION

ALL_BYTES = bytes(range(256))
CANARY = "CANARY-5d1e-aws-value-must-not-leak"
DB_PASSWORD = SecretId(Kind.TEXT, "db_password")
KEYSTORE = SecretId(Kind.FILE, "keystore.p12")
_prefixes = itertools.count(1)


@pytest.fixture
def make(moto_server):
    """`make(**settings)`: a backend on moto with a fresh prefix unless one is given."""
    made = []

    def build(**settings) -> AwsSecretsManagerBackend:
        settings = {"endpoint_url": moto_server.url, "region": REGION,
                    "prefix": f"aws-{next(_prefixes):04d}/", **settings}
        backend = AwsSecretsManagerBackend.from_settings("aws", settings)
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.close()


@pytest.fixture
def aws(make) -> AwsSecretsManagerBackend:
    return make()


@pytest.fixture
def raw(moto_server):
    """A plain boto3 client on the same server, to look behind the backend."""
    client = moto_server.client()
    yield client
    client.close()


def versions(raw, name: str) -> dict[str, list[str]]:
    return {v["VersionId"]: v.get("VersionStages", []) for v in
            raw.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]}


def names_under(raw, prefix: str) -> list[str]:
    pages = raw.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True)
    return sorted(e["Name"] for page in pages for e in page["SecretList"] if e["Name"].startswith(prefix))


# --------------------------------------------------------------------- layout


def test_registry_builds_the_backend_from_settings(moto_server):
    """`aws_secrets_manager` in the config means this class; missing keys take defaults."""
    cls = backend_class("aws_secrets_manager")
    backend = cls.from_settings("aws", {"endpoint_url": moto_server.url, "region": REGION})
    assert cls is AwsSecretsManagerBackend
    assert (backend.prefix, backend.read_only, backend.recovery_window_days) == ("", False, 30)
    backend.close()


def test_text_is_a_secret_string_and_a_file_a_secret_binary_at_the_contract_names(aws, raw):
    """Text NAME -> `<prefix>NAME` (SecretString), file NAME -> `<prefix>files/NAME` (SecretBinary)."""
    aws.write(DB_PASSWORD, SecretValue.from_text("s3cr3t"))
    aws.write(KEYSTORE, SecretValue(b"\x00PK\x03\x04"))
    text_name, file_name = aws.prefix + "db_password", aws.prefix + "files/keystore.p12"
    assert (aws.location(DB_PASSWORD), aws.location(KEYSTORE)) == (text_name, file_name)
    assert names_under(raw, aws.prefix) == sorted([text_name, file_name])

    text = raw.get_secret_value(SecretId=text_name)
    assert text["SecretString"] == "s3cr3t" and "SecretBinary" not in text
    binary = raw.get_secret_value(SecretId=file_name)
    assert binary["SecretBinary"] == b"\x00PK\x03\x04" and "SecretString" not in binary


def test_created_secrets_are_tagged_without_values(aws, raw):
    """Tags say secretshift manages it, its kind and when; no tag holds the value."""
    aws.write(DB_PASSWORD, SecretValue.from_text(CANARY))
    aws.write(KEYSTORE, SecretValue(CANARY.encode()))
    for secret in (DB_PASSWORD, KEYSTORE):
        tags = {t["Key"]: t["Value"] for t in raw.describe_secret(SecretId=aws.location(secret))["Tags"]}
        assert tags["secretshift:managed-by"] == "secretshift"
        assert tags["secretshift:kind"] == secret.kind.value
        assert datetime.fromisoformat(tags["secretshift:created-at"]).tzinfo is not None
        assert not any(CANARY in key or CANARY in value for key, value in tags.items())


@pytest.mark.parametrize("value", [
    b"\x00\x00PK\x00" + ALL_BYTES + b"\x00",
    ALL_BYTES * 4,
    b"\x00",
], ids=["NUL and every byte", "1 KiB of every byte", "one NUL"])
def test_binary_files_round_trip_exactly(aws, raw, value):
    """Any bytes, NUL included, come back byte for byte, and AWS holds exactly those bytes."""
    aws.write(KEYSTORE, SecretValue(value))
    assert aws.read(KEYSTORE).data == value
    assert raw.get_secret_value(SecretId=aws.location(KEYSTORE))["SecretBinary"] == value


def test_unicode_text_round_trips_as_the_same_string(aws, raw):
    """Unicode text is stored as that string (not bytes, not escaped) and reads back equal."""
    text = "héllo wörld ✓ 日本語 🔑\nline two\ttab \"quoted\" {json: 1}"
    aws.write(DB_PASSWORD, SecretValue.from_text(text))
    assert aws.read(DB_PASSWORD) == SecretValue.from_text(text)
    assert raw.get_secret_value(SecretId=aws.location(DB_PASSWORD))["SecretString"] == text


def test_names_map_back_only_within_the_layout(aws, raw, make):
    """Under the prefix `files/x` is file x and anything else text (`team/db` included);
    names that are no secret names, and other prefixes, are left out."""
    aws.write(SecretId(Kind.TEXT, "files"), SecretValue.from_text("a text secret named files"))
    aws.write(SecretId(Kind.FILE, "files"), SecretValue(b"a file named files"))
    for name in ("team/db", "files/a/b", "files/", "a//b", "x/../y"):
        raw.create_secret(Name=aws.prefix + name, SecretString="foreign")
    raw.create_secret(Name=aws.prefix.rstrip("/") + "-sibling", SecretString="other prefix")
    make().write(DB_PASSWORD, SecretValue.from_text("another prefix's secret"))

    assert aws.list_ids() == [SecretId(Kind.FILE, "a/b"), SecretId(Kind.FILE, "files"),
                              SecretId(Kind.TEXT, "files"), SecretId(Kind.TEXT, "team/db")]
    assert aws.unmapped_names() == sorted(aws.prefix + n for n in ("files/", "a//b", "x/../y"))


def test_empty_prefix_uses_bare_names(moto_server, make, raw):
    """With no prefix, names are the secretshift names themselves (server reset first)."""
    moto_server.reset()
    bare = make(prefix="")
    bare.write(DB_PASSWORD, SecretValue.from_text("v"))
    bare.write(KEYSTORE, SecretValue(b"k"))
    raw.create_secret(Name="prod/app/db", SecretString="foreign")
    assert names_under(raw, "") == ["db_password", "files/keystore.p12", "prod/app/db"]
    assert bare.list_ids() == [KEYSTORE, DB_PASSWORD, SecretId(Kind.TEXT, "prod/app/db")]
    assert bare.unmapped_names() == []


def test_listing_pages_through_hundreds_of_secrets(aws, raw):
    """250 secrets (moto pages at 100) are all listed once, mapped to their kinds."""
    items = {SecretId(Kind.FILE if i % 5 == 0 else Kind.TEXT, f"bulk-{i:03d}"): SecretValue.from_text(f"v{i}")
             for i in range(250)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: aws.write(*item), items.items()))
    first_page = raw.list_secrets(Filters=[{"Key": "name", "Values": [aws.prefix]}])
    assert "NextToken" in first_page  # the listing really spans several pages
    listed = aws.list_ids()
    assert len(listed) == 250 and set(listed) == set(items)


def test_a_file_stored_as_a_string_by_another_tool_reads_as_its_utf8_bytes(aws, raw):
    """Foreign SecretString under files/ is read as its UTF-8 bytes."""
    raw.create_secret(Name=aws.location(KEYSTORE), SecretString="pem ✓")
    assert aws.read(KEYSTORE).data == "pem ✓".encode()


def test_a_text_secret_stored_as_binary_is_an_error_naming_it(aws, raw):
    """A SecretBinary where text is expected is refused, not guessed at."""
    raw.create_secret(Name=aws.location(DB_PASSWORD), SecretBinary=b"\xff\xfe")
    with pytest.raises(BackendError, match="stored as SecretBinary") as caught:
        aws.read(DB_PASSWORD)
    assert aws.location(DB_PASSWORD) in str(caught.value)


def test_a_secret_without_a_current_value_is_an_error_until_written(aws, raw):
    """A secret created with no value is listed, reads as 'has no value', and takes a write."""
    raw.create_secret(Name=aws.location(DB_PASSWORD))
    assert aws.list_ids() == [DB_PASSWORD]
    with pytest.raises(BackendError, match="has no value"):
        aws.read(DB_PASSWORD)
    aws.write(DB_PASSWORD, SecretValue.from_text("now set"))
    assert aws.read(DB_PASSWORD) == SecretValue.from_text("now set")


# --------------------------------------------------------------------- AWS's rules, checked here


def test_64_kib_is_the_largest_value(aws, raw):
    """65536 bytes fit (text and file); 65537 is a size problem and is never sent."""
    big_text, big_file = SecretValue.from_text("x" * 65536), SecretValue(ALL_BYTES * 256)
    assert aws.size_problem(DB_PASSWORD, 65536) is None
    aws.write(DB_PASSWORD, big_text)
    aws.write(KEYSTORE, big_file)
    assert (aws.read(DB_PASSWORD), aws.read(KEYSTORE)) == (big_text, big_file)

    too_big = SecretId(Kind.FILE, "too-big")
    assert aws.size_problem(too_big, 65537) == (
        "a 65537-byte value is over AWS Secrets Manager's 64 KiB limit (65536 bytes)")
    assert aws.size_problem(too_big, 70 * 1024) == (
        "a 70.0 KiB value is over AWS Secrets Manager's 64 KiB limit (65536 bytes)")
    with pytest.raises(ValueTooLarge, match="64 KiB"):
        aws.write(too_big, SecretValue(b"\x00" * 65537))
    assert aws.location(too_big) not in names_under(raw, aws.prefix)


def test_multibyte_text_is_measured_in_utf8_bytes(aws):
    """40,000 three-byte characters are 120,000 bytes: too large, however few characters."""
    value = SecretValue.from_text("日" * 40000)
    assert "64 KiB" in aws.size_problem(DB_PASSWORD, len(value))
    with pytest.raises(ValueTooLarge):
        aws.write(DB_PASSWORD, value)


@pytest.mark.parametrize("secret", [SecretId(Kind.TEXT, "empty"), SecretId(Kind.FILE, "empty")])
def test_an_empty_value_is_a_size_problem_and_never_sent(aws, raw, secret):
    """AWS stores no empty value, text or file: a clear reason, and nothing is created."""
    assert aws.size_problem(secret, 0) == "AWS Secrets Manager cannot store an empty value"
    with pytest.raises(BackendError, match="cannot store an empty value"):
        aws.write(secret, SecretValue(b""))
    assert names_under(raw, aws.prefix) == []


@pytest.mark.parametrize("name, found", [
    ("my api token", "(found ' ')"),
    ("db#password", "(found '#')"),
    ("pässword", "(found 'ä', U+00E4)"),
    ("日本", "(found '日', U+65E5)"),
    ("a,b", "(found ',')"),
])
def test_names_outside_aws_alphabet_say_which_character(aws, raw, name, found):
    """The first character AWS does not allow is named; the write is refused before sending."""
    secret = SecretId(Kind.TEXT, name)
    problem = aws.name_problem(secret)
    assert problem.startswith(f"AWS Secrets Manager names allow only ASCII letters, digits and /_+=.@- {found}; ")
    assert "name_map: {" in problem and "rename: {aws: NEW-NAME}" in problem  # how to fix it
    with pytest.raises(BackendError, match="names allow only"):
        aws.write(secret, SecretValue.from_text("v"))
    assert names_under(raw, aws.prefix) == []


@pytest.mark.parametrize("name", ["db.prod_pw+=@-x", "api-secret", "A1", "x" * 256])
def test_names_aws_accepts_have_no_problem(aws, name):
    """Every allowed character passes, and so does `-` + 6 characters (full names only)."""
    assert aws.name_problem(SecretId(Kind.TEXT, name)) is None
    assert aws.name_problem(SecretId(Kind.FILE, name)) is None


def test_name_length_counts_prefix_and_files_folder(make):
    """512 characters is AWS's limit for the whole name: prefix + files/ + name."""
    long = make(prefix="p" * 300 + "/")
    name = "n" * (512 - 301)  # a text name fits exactly; the same file name is 6 over
    assert long.name_problem(SecretId(Kind.TEXT, name)) is None
    assert long.name_problem(SecretId(Kind.FILE, name)) == (
        "the AWS name would be 518 characters (prefix included), "
        "over AWS Secrets Manager's 512-character limit")


def test_common_name_rules_still_apply(aws):
    """A '/' separates folders as in AWS's own names; an empty folder is refused like
    everywhere else, and a text secret cannot sit where file secrets are."""
    assert aws.name_problem(SecretId(Kind.TEXT, "team/db")) is None
    assert "'/'" in aws.name_problem(SecretId(Kind.TEXT, "team//db"))
    assert "would be read back as a file secret" in aws.name_problem(SecretId(Kind.TEXT, "files/x"))
    assert aws.name_problem(SecretId(Kind.FILE, "files/x")) is None


@pytest.mark.parametrize("settings, message", [
    ({"prefix": "my prefix/"}, "has the character ' '"),
    ({"recovery_window_days": 5}, "between 7 and 30"),
    ({"endpoint_url": "http://secrets.example.com"}, "refusing plain http endpoint"),
    ({"endpoint_url": "ftp://127.0.0.1"}, "must be an https:// URL"),
])
def test_bad_settings_are_refused_when_building(make, settings, message):
    with pytest.raises(BackendError, match=message):
        make(**settings)


def test_http_endpoint_from_the_environment_is_refused_too(make, monkeypatch):
    """AWS_ENDPOINT_URL is honoured by boto3, so it gets the same TLS rule as endpoint_url."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://secrets.example.com")
    with pytest.raises(BackendError, match="refusing plain http endpoint_url http://secrets.example.com"):
        make(endpoint_url=None)


def test_https_and_loopback_endpoints_are_accepted(make):
    assert make(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com").endpoint.startswith("https://")
    assert make(endpoint_url="http://localhost:4566").endpoint == "http://localhost:4566"


# --------------------------------------------------------------------- writes


def test_writing_the_same_value_twice_makes_one_version(aws, raw):
    """A repeated write is a no-op: still one version, still AWSCURRENT."""
    aws.write(DB_PASSWORD, SecretValue.from_text("same"))
    aws.write(DB_PASSWORD, SecretValue.from_text("same"))
    assert list(versions(raw, aws.location(DB_PASSWORD)).values()) == [["AWSCURRENT"]]


def test_a_retried_request_carries_the_same_token_and_adds_no_version(aws, raw):
    """The ClientRequestToken is deterministic, so AWS recognises a resent PutSecretValue."""
    name = aws.location(DB_PASSWORD)
    aws.write(DB_PASSWORD, SecretValue.from_text("v1"))
    (first,) = versions(raw, name)
    aws.write(DB_PASSWORD, SecretValue.from_text("v2"))
    token = aws._token(name, first, SecretValue.from_text("v2"))
    assert token == aws._token(name, first, SecretValue.from_text("v2"))
    assert versions(raw, name)[token] == ["AWSCURRENT"]

    raw.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=token)  # the "retry"
    assert versions(raw, name) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}


def test_tokens_reveal_nothing_guessable_about_the_value(make):
    """Two backends derive different tokens for the same write: keyed, not a bare hash."""
    value = SecretValue.from_text("1234")
    one, two = make(), make()
    assert one._token("n", None, value) != two._token("n", None, value)


def test_writing_an_earlier_value_again_makes_it_current(aws, raw):
    """A, then B, then A: A is current again (a reused token would have left B current)."""
    for text in ("A", "B", "A"):
        aws.write(DB_PASSWORD, SecretValue.from_text(text))
    assert aws.read(DB_PASSWORD) == SecretValue.from_text("A")
    assert len(versions(raw, aws.location(DB_PASSWORD))) == 3


def test_overwriting_a_foreign_secret_keeps_its_tags_and_adds_a_version(aws, raw):
    raw.create_secret(Name=aws.location(DB_PASSWORD), SecretString="old",
                      Tags=[{"Key": "team", "Value": "payments"}])
    aws.write(DB_PASSWORD, SecretValue.from_text("new"))
    assert raw.get_secret_value(SecretId=aws.location(DB_PASSWORD))["SecretString"] == "new"
    tags = raw.describe_secret(SecretId=aws.location(DB_PASSWORD))["Tags"]
    assert {"Key": "team", "Value": "payments"} in tags
    assert len(versions(raw, aws.location(DB_PASSWORD))) == 2


# --------------------------------------------------------------------- deletes


def test_delete_schedules_deletion_and_restore_undoes_it(aws, raw):
    """Deleted: reads None, not listed, reported as scheduled; restore brings it back intact."""
    aws.write(DB_PASSWORD, SecretValue.from_text("keep me"))
    aws.write(KEYSTORE, SecretValue(b"other"))
    aws.delete(DB_PASSWORD)

    assert raw.describe_secret(SecretId=aws.location(DB_PASSWORD)).get("DeletedDate")
    assert aws.read(DB_PASSWORD) is None
    assert aws.list_ids() == [KEYSTORE]
    scheduled = aws.scheduled_for_deletion()
    assert list(scheduled) == [DB_PASSWORD] and isinstance(scheduled[DB_PASSWORD], datetime)
    aws.delete(DB_PASSWORD)  # deleting again changes nothing

    aws.restore(DB_PASSWORD)
    assert aws.read(DB_PASSWORD) == SecretValue.from_text("keep me")
    assert aws.list_ids() == [KEYSTORE, DB_PASSWORD]
    assert aws.scheduled_for_deletion() == {}


def test_writing_a_name_scheduled_for_deletion_says_how_to_restore(aws, raw):
    """Write and preflight refuse it with the restore command; nothing changes on AWS."""
    name = aws.location(DB_PASSWORD)
    aws.write(DB_PASSWORD, SecretValue.from_text("old"))
    aws.delete(DB_PASSWORD)
    before = versions(raw, name)

    with pytest.raises(ScheduledForDeletion) as caught:
        aws.write(DB_PASSWORD, SecretValue.from_text(CANARY))
    message = str(caught.value)
    assert f"aws secretsmanager restore-secret --secret-id {name}" in message
    assert "scheduled for deletion" in message and "wait" in message
    assert CANARY not in message
    assert versions(raw, name) == before

    with pytest.raises(ScheduledForDeletion, match="restore-secret"):
        aws.check_access([KEYSTORE, DB_PASSWORD], [])
    problems = aws.access_problems([KEYSTORE, DB_PASSWORD], [])
    assert [secret for secret, _ in problems] == [DB_PASSWORD]
    aws.check_access([KEYSTORE], [DB_PASSWORD])  # deleting it again is fine

    aws.restore(DB_PASSWORD)
    aws.write(DB_PASSWORD, SecretValue.from_text("new"))
    assert aws.read(DB_PASSWORD) == SecretValue.from_text("new")


def test_restoring_what_does_not_exist_is_an_error(aws):
    with pytest.raises(BackendError, match="no secret of that name"):
        aws.restore(DB_PASSWORD)


def test_read_only_refuses_write_delete_restore_and_preflight(aws, make, raw):
    aws.write(DB_PASSWORD, SecretValue.from_text("v"))
    read_only = make(prefix=aws.prefix, read_only=True)
    for attempt in (lambda: read_only.write(DB_PASSWORD, SecretValue.from_text("w")),
                    lambda: read_only.delete(DB_PASSWORD), lambda: read_only.restore(DB_PASSWORD),
                    lambda: read_only.check_access([KEYSTORE], [DB_PASSWORD])):
        with pytest.raises(ReadOnlyManager):
            attempt()
    assert [s for s, _ in read_only.access_problems([KEYSTORE], [DB_PASSWORD])] == [KEYSTORE, DB_PASSWORD]
    assert names_under(raw, aws.prefix) == [aws.location(DB_PASSWORD)]
    assert read_only.read(DB_PASSWORD) == SecretValue.from_text("v")


# --------------------------------------------------------------------- errors


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_is_manager_unreachable_naming_it(make):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    backend = make(endpoint_url=endpoint, max_attempts=1)
    for attempt in (lambda: backend.read(DB_PASSWORD), backend.ping, backend.list_ids,
                    lambda: backend.check_access([DB_PASSWORD], [])):
        with pytest.raises(ManagerUnreachable) as caught:
            attempt()
        assert endpoint in str(caught.value) and "'aws'" in str(caught.value)


def test_missing_credentials_say_how_to_provide_them(make, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never reach 169.254.169.254
    backend = make()
    with pytest.raises(BackendError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"):
        backend.read(DB_PASSWORD)


def test_unknown_profile_is_named(make):
    with pytest.raises(BackendError, match="the AWS profile 'nope' is not in"):
        make(profile="nope")


def _client_error(code: str, status: int = 400) -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": f"{code} happened"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetSecretValue")


@pytest.mark.parametrize("error, expected", [
    (_client_error("AccessDeniedException"), PermissionDenied),
    (_client_error("UnrecognizedClientException"), PermissionDenied),
    (_client_error("ThrottlingException"), TransientError),
    (_client_error("InternalServiceError", 500), TransientError),
    (_client_error("SomethingNew", 503), TransientError),
    (_client_error("LimitExceededException"), BackendError),
    (bce.EndpointConnectionError(endpoint_url="https://x"), ManagerUnreachable),
    (bce.ConnectTimeoutError(endpoint_url="https://x"), ManagerUnreachable),
    (bce.ReadTimeoutError(endpoint_url="https://x"), TransientError),
    (bce.NoCredentialsError(), BackendError),
])
def test_sdk_errors_become_engine_errors(error, expected):
    error_type, reason = _classify(error, "https://secretsmanager.us-east-1.amazonaws.com", "us-east-1")
    assert error_type is expected and reason


def test_parameter_errors_name_parameters_never_values():
    """botocore quotes parameter values in its report; only the names are kept."""
    error = bce.ParamValidationError(report=f"Invalid type for parameter SecretString, value: {CANARY!r}")
    error_type, reason = _classify(error, "https://x", "us-east-1")
    assert error_type is BackendError and "SecretString" in reason and CANARY not in reason


def test_refusals_never_show_the_value(aws):
    """Size and name refusals name the secret, never its value."""
    attempts = [(SecretId(Kind.TEXT, "too big"), SecretValue.from_text(CANARY * 3000)),
                (SecretId(Kind.TEXT, "big"), SecretValue.from_text(CANARY * 3000))]
    for secret, value in attempts:
        with pytest.raises(BackendError) as caught:
            aws.write(secret, value)
        rendered = [str(caught.value), repr(caught.value), "".join(traceback.format_exception(caught.value))]
        assert secret.name in str(caught.value)
        assert all(CANARY not in text for text in rendered)
    assert CANARY not in repr(aws)


def test_after_a_fork_the_backend_has_a_client_of_its_own_and_leaves_the_parents_open(make):
    """A worker process (workers.py) must not share botocore's connection pool with the
    process it was forked from, nor close it."""
    aws = make(parallelism=10)
    secret = SecretId(Kind.TEXT, "forked")
    aws.write(secret, SecretValue.from_text("v"))
    inherited = aws._client
    aws.after_fork(4)
    assert aws.parallelism == 3
    assert aws._client is not inherited
    assert aws.read(secret) == SecretValue.from_text("v")
    assert inherited.list_secrets()["SecretList"] is not None  # the parent's client still works
