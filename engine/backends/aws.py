"""AWS Secrets Manager as a secretshift manager, through boto3.

Layout (DESIGN.md, contract): a text secret NAME is the AWS secret `<prefix>NAME` holding
a SecretString; a file secret NAME is `<prefix>files/NAME` holding a SecretBinary (boto3
base64-encodes it on the wire, bytes round-trip exactly). `location()` is that AWS name.
Listing maps names back: under the prefix, `files/<n>` is file `n`, any other name is
text (`team/db` is the text secret `team/db`, as in Vault's folders), so a text secret
cannot be named `files/...` here. A name that is no secret name (`files/`, `a//b`) is
left out of `list_ids` (`unmapped_names()` lists them, for discovery).

AWS rules that moto does not enforce are checked here, before any request: names of
1-512 characters from `[A-Za-z0-9/_+=.@-]` (prefix included), values of 1-65536 bytes
(UTF-8 bytes for text, so the check is never looser than AWS's), one of SecretString or
SecretBinary. A name ending in `-` plus six characters is allowed: AWS advises against
it only because *partial ARNs* become ambiguous, and secretshift always addresses a
secret by its full name.

Deletes are recoverable: DeleteSecret with a recovery window (`recovery_window_days`,
7-30, default 30); `restore()` undoes one. A secret scheduled for deletion reads as
None and is not listed, `scheduled_for_deletion()` reports it, and writing its name is
refused with instructions (AWS itself refuses to create that name until it is gone).

Every request goes through `_request`, the one place where botocore exceptions become
`engine.errors` types. Messages name the manager and the AWS name, never a value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from engine.backends import metadata as metadata_mod
from engine.backends.base import Backend, checked_url, common_name_problem
from engine.backends.metadata import SecretMetadata
from engine.backends.naming import NameMap
from engine.backends.versions import History, aws_history
from engine.errors import (
    BackendError,
    DecryptError,
    ManagerUnreachable,
    PermissionDenied,
    ReadOnlyManager,
    TransientError,
    UnreadableValue,
    ValueTooLarge,
)
from engine.model import Kind, SecretId, SecretValue, Unavailable

FILES_FOLDER = "files/"
MAX_NAME_LENGTH = 512
MAX_VALUE_BYTES = 65536
PAGE_SIZE = 100  # ListSecrets' maximum
BATCH_SIZE = 20  # BatchGetSecretValue's maximum of ids per call
NAME_CHARS = re.compile(r"[A-Za-z0-9/_+=.@-]")
MANAGED_BY_TAG = "secretshift:managed-by"
KIND_TAG = "secretshift:kind"
CREATED_AT_TAG = "secretshift:created-at"
# Fixed, so tokens are reproducible across versions of secretshift (see _token).
TOKEN_NAMESPACE = uuid.UUID("6f1d3c2e-5b0a-4e8f-9a61-3c7d2b8e4f10")
_DENIED = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
           "ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch"}
_UNSUPPORTED = {"UnknownOperationException", "InvalidAction", "NotImplemented"}
# Answers to a whole BatchGetSecretValue call after which each secret is read on its own.
_BATCH_REFUSALS = (*sorted(_DENIED), *sorted(_UNSUPPORTED), "ResourceNotFoundException",
                   "InvalidRequestException", "InvalidParameterException", "ValidationException")
_TRANSIENT = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
              "InternalServiceError", "InternalFailure", "ServiceUnavailable", "RequestTimeout"}


class ScheduledForDeletion(BackendError):
    """The AWS name is taken by a secret in its recovery window; `deletion_date` if known."""

    def __init__(self, manager: str, message: str, location: str, deletion_date: datetime | None):
        self.deletion_date = deletion_date
        super().__init__(manager, message, location)


@dataclass(frozen=True)
class _Refusal:
    """An AWS error code the caller asked to handle itself (instead of raising)."""

    code: str
    message: str

    @property
    def about_deletion(self) -> bool:
        return self.code == "InvalidRequestException" and "delet" in self.message.lower()


@dataclass(frozen=True)
class _Stored:
    """The AWSCURRENT version of a secret as GetSecretValue returned it (None: no value)."""

    version_id: str | None
    string: str | None = None
    binary: bytes | None = None


_SCHEDULED = object()  # GetSecretValue said the secret is scheduled for deletion
_UNKNOWN = object()


class AwsSecretsManagerBackend(Backend):
    """One AWS account and region (plus a name prefix), reached through one boto3 client.

    The client is thread-safe, so concurrent reads share it; its connection pool is sized
    to `parallelism`. Credentials come from the usual AWS chain (environment, `profile`,
    SSO, instance or task role), never from the config file.
    """

    type_name: ClassVar[str] = "aws_secrets_manager"
    read_batch_size: ClassVar[int] = BATCH_SIZE

    def __init__(self, manager_id: str, *, region: str | None = None, prefix: str = "",
                 endpoint_url: str | None = None, profile: str | None = None,
                 read_only: bool = False, parallelism: int = 8, recovery_window_days: int = 30,
                 max_attempts: int = 8, connect_timeout: float = 5.0, read_timeout: float = 30.0):
        super().__init__(manager_id, read_only, parallelism)
        self.prefix = _checked_prefix(manager_id, prefix or "")
        if not 7 <= int(recovery_window_days) <= 30:
            raise BackendError(manager_id, "recovery_window_days must be between 7 and 30 "
                               f"(AWS's limits), not {recovery_window_days}")
        self.recovery_window_days = int(recovery_window_days)
        config = Config(retries={"mode": "standard", "max_attempts": int(max_attempts)},
                        connect_timeout=connect_timeout, read_timeout=read_timeout,
                        max_pool_connections=max(1, int(parallelism)),
                        user_agent_extra="secretshift")
        self._client_settings = (manager_id, region, profile, endpoint_url, config)
        self._client = _make_client(*self._client_settings)
        self.endpoint = self._client.meta.endpoint_url
        self.region = self._client.meta.region_name
        checked_url(manager_id, "endpoint_url", self.endpoint)
        self._batching = True  # until AWS refuses BatchGetSecretValue (see read_many)
        # Keys the idempotency tokens; see _token for why it is secret and per instance.
        self._token_key = os.urandom(32)

    @classmethod
    def from_settings(cls, manager_id: str, settings: Mapping[str, Any]) -> AwsSecretsManagerBackend:
        """Build from validated settings; missing or null keys take their defaults."""
        known = ("region", "prefix", "endpoint_url", "profile", "read_only", "parallelism",
                 "recovery_window_days", "max_attempts", "connect_timeout", "read_timeout")
        backend = cls(manager_id, **{k: settings[k] for k in known if settings.get(k) is not None})
        backend.names = NameMap.from_settings(settings)
        return backend

    def __repr__(self) -> str:
        return f"AwsSecretsManagerBackend({self.manager_id!r}, region={self.region!r}, prefix={self.prefix!r})"

    # ----------------------------------------------------------------- Backend interface

    def storage_keys(self) -> set[tuple]:
        """The region, endpoint and name prefix (two managers with the same ones share every name)."""
        return {("aws_secrets_manager", self.region, self.endpoint, self.prefix)}

    def location(self, secret: SecretId) -> str:
        """The AWS secret name: `<prefix><name>` or `<prefix>files/<name>`."""
        folder = FILES_FOLDER if secret.kind is Kind.FILE else ""
        return f"{self.prefix}{folder}{self.names.physical(secret)}"

    def list_ids(self) -> list[SecretId]:
        """Every secret under the prefix in secretshift's layout, not scheduled for deletion.

        ListSecrets is eventually consistent: a secret created or deleted in the last few
        minutes may be missing or still listed. `read` is exact.
        """
        ids = {self._secret_id(e["Name"]) for e in self._entries() if not e.get("DeletedDate")}
        return sorted(i for i in ids if i is not None)

    def read(self, secret: SecretId) -> SecretValue | None:
        """The AWSCURRENT value; None when the secret is absent or scheduled for deletion.

        A text secret must be a SecretString (a SecretBinary one is an error naming it);
        a file secret is its SecretBinary, or the UTF-8 bytes of a SecretString written by
        another tool. A secret whose current version has no value is an error.
        """
        stored = self._fetch(secret, "read")
        if stored is None or stored is _SCHEDULED:
            return None
        return self._value(secret, stored)

    def _value(self, secret: SecretId, stored: _Stored) -> SecretValue:
        """The secret's value from its AWSCURRENT version (see `read` for the rules)."""
        where = self.location(secret)
        if stored.string is None and stored.binary is None:
            raise BackendError(self.manager_id, f"{secret} has no value: its AWSCURRENT version "
                               "holds neither SecretString nor SecretBinary", where)
        if secret.kind is Kind.FILE:
            binary = stored.binary if stored.binary is not None else stored.string.encode("utf-8")
            return SecretValue(binary)
        if stored.string is None:
            raise UnreadableValue(self.manager_id, f"{secret} is stored as SecretBinary, but text "
                               "secrets are SecretString; migrate it as a file secret instead", where)
        return SecretValue.from_text(stored.string)

    def write(self, secret: SecretId, value: SecretValue) -> None:
        """CreateSecret (tagged) when the name is free, else PutSecretValue as AWSCURRENT.

        Idempotent: a value equal to the current one adds no version, and a resent
        PutSecretValue carries the same ClientRequestToken (see `_token`). CreateSecret
        gets a fresh token: a deterministic one would make AWS silently ignore a later
        create of an earlier value (A, B, A) instead of answering "exists"; a repeated
        create is caught by that answer and the value comparison instead. A name
        scheduled for deletion is refused with how to restore it (AWS would refuse it too).
        """
        self._refuse_if_read_only(secret, "write")
        where = self.location(secret)
        field = self._value_field(secret, value)
        created = self._request("write", where, "create_secret", handle=("ResourceExistsException",
                                "InvalidRequestException"), Name=where, Tags=self._tags(secret),
                                ClientRequestToken=str(uuid.uuid4()), **field)
        if not isinstance(created, _Refusal):
            return
        if created.about_deletion:
            raise self._scheduled(secret, "write")
        if created.code != "ResourceExistsException":
            raise BackendError(self.manager_id, f"cannot write {secret}: AWS refused the request "
                               f"(InvalidRequestException: {created.message})", where)
        self._put(secret, value, field)

    def delete(self, secret: SecretId) -> None:
        """DeleteSecret with the recovery window: recoverable with `restore` until it ends.

        A missing secret, or one already scheduled for deletion, is left as it is.
        """
        self._refuse_if_read_only(secret, "delete")
        where = self.location(secret)
        reply = self._request("delete", where, "delete_secret",
                              handle=("ResourceNotFoundException", "InvalidRequestException"),
                              SecretId=where, RecoveryWindowInDays=self.recovery_window_days)
        if isinstance(reply, _Refusal) and reply.code != "ResourceNotFoundException" \
                and not reply.about_deletion:
            raise BackendError(self.manager_id, f"cannot delete {secret}: AWS refused the request "
                               f"({reply.code}: {reply.message})", where)

    def restore(self, secret: SecretId) -> bool:
        """Cancel the scheduled deletion of a secret (RestoreSecret); it reads again as before."""
        self._refuse_if_read_only(secret, "restore")
        where = self.location(secret)
        reply = self._request("restore", where, "restore_secret",
                              handle=("ResourceNotFoundException",), SecretId=where)
        if isinstance(reply, _Refusal):
            raise BackendError(self.manager_id, f"cannot restore {secret}: AWS has no secret of "
                               "that name (never created, or its recovery window has ended)", where)
        return True

    def scheduled_for_deletion(self) -> dict[SecretId, datetime]:
        """Secrets of our layout in their recovery window, with the DeletedDate AWS reports.

        The planner uses this to say "the target name is scheduled for deletion" instead
        of treating such a secret as missing (AWS refuses to create the name meanwhile).
        """
        found = {}
        for entry in self._entries(include_planned_deletion=True):
            secret = self._secret_id(entry["Name"])
            if secret is not None and entry.get("DeletedDate"):
                found[secret] = entry["DeletedDate"]
        return dict(sorted(found.items()))

    def list_unavailable(self) -> list[Unavailable]:
        """Secrets of our layout in their recovery window (`pending_deletion`, with the
        DeletedDate AWS reports: when the window ends)."""
        return [Unavailable(secret, "pending_deletion", self.location(secret), _iso(date))
                for secret, date in self.scheduled_for_deletion().items()]

    def read_current(self, secret: SecretId) -> SecretValue | Unavailable | None:
        """`read`, except that a secret pending deletion or without a current value comes
        back as `Unavailable` (AWS answers GetSecretValue for both with an error)."""
        stored = self._fetch(secret, "read")
        if stored is None:
            return None
        where = self.location(secret)
        if stored is _SCHEDULED:
            return Unavailable(secret, "pending_deletion", where, _iso(self._scheduled(secret, "read").deletion_date))
        if stored.string is None and stored.binary is None:
            return Unavailable(secret, "no_value", where)
        return self._value(secret, stored)

    def read_many(self, secrets: Iterable[SecretId]) -> list[tuple[SecretId, SecretValue | Unavailable | None]]:
        """Up to 20 values in one BatchGetSecretValue call.

        A secret the batch reports as an error (absent, pending deletion, no value) is read
        on its own, so it gets the same answer `read_current` gives. When the batch call
        itself is refused (an IAM policy without secretsmanager:BatchGetSecretValue, an
        endpoint that does not know it, or moto's answer to a secret without a value),
        this batch is read secret by secret; a refusal for lack of rights or support also
        stops batching for the rest of the run.
        """
        secrets = list(secrets)
        if len(secrets) < 2 or not self._batching:
            return super().read_many(secrets)
        by_name = {self.location(s): s for s in secrets}
        stored = self._batch(list(by_name))
        if stored is None:
            return super().read_many(secrets)
        found = []
        for name, secret in by_name.items():
            got = stored.get(name)
            if got is None or (got.string is None and got.binary is None):
                found.append((secret, self.readable(secret, self.read_current)))
            else:
                found.append((secret, self.readable(secret, lambda s: self._value(s, got))))
        return found

    def _batch(self, names: list[str]) -> dict[str, _Stored] | None:
        """BatchGetSecretValue of these names: the values it returned, by name (names it
        reported as errors are missing); None when the call itself was refused."""
        found, token = {}, None
        while True:
            params = {"SecretIdList": names, **({"NextToken": token} if token else {})}
            reply = self._request("read", None, "batch_get_secret_value", handle=_BATCH_REFUSALS, **params)
            if isinstance(reply, _Refusal):
                if reply.code in _DENIED or reply.code in _UNSUPPORTED:
                    self._batching = False
                return None
            for item in reply.get("SecretValues") or []:
                found[item.get("Name")] = _Stored(item.get("VersionId"), item.get("SecretString"),
                                                  item.get("SecretBinary"))
            token = reply.get("NextToken")
            if not token:
                return found

    def unmapped_names(self) -> list[str]:
        """AWS names under the prefix that are not secret names (left out of `list_ids`),
        e.g. `files/` or `a//b`; for discovery to report what it skipped."""
        names = {e["Name"] for e in self._entries() if not e.get("DeletedDate")}
        return sorted(n for n in names if self._secret_id(n) is None)

    def read_history(self, secret: SecretId) -> History:
        """The versions before AWSCURRENT, oldest first, each read by VersionId."""
        return aws_history(self, secret)

    def read_metadata(self, secret: SecretId) -> SecretMetadata:
        """Description and user tags (DescribeSecret); the format marker tag if any."""
        where = self.location(secret)
        reply = self._request("describe", where, "describe_secret", handle=("ResourceNotFoundException",),
                              SecretId=where)
        if isinstance(reply, _Refusal):
            return SecretMetadata()
        return metadata_mod.from_aws(reply.get("Description"), reply.get("Tags"))

    def write_metadata(self, secret: SecretId, metadata: SecretMetadata) -> None:
        """Set the Description and add the user tags (and format marker) AWS accepts;
        secretshift's own tags stay."""
        self._refuse_if_read_only(secret, "write the metadata of")
        where = self.location(secret)
        current = self._request("describe", where, "describe_secret", SecretId=where)
        if metadata.description and current.get("Description") != metadata.description:
            self._request("write the description of", where, "update_secret", SecretId=where,
                          Description=metadata.description[:2048])
        have = {t["Key"]: t["Value"] for t in current.get("Tags") or []}
        tags = [t for t in metadata_mod.to_aws_tags(metadata, metadata_mod.AWS_MAX_TAGS - len(have))
                if have.get(t["Key"]) != t["Value"]]
        if tags:
            self._request("tag", where, "tag_resource", SecretId=where, Tags=tags)

    def listed_metadata(self) -> dict[SecretId, SecretMetadata]:
        """Description, tags and markers of every listed secret (from ListSecrets alone)."""
        found = {}
        for entry in self._entries():
            secret = self._secret_id(entry["Name"])
            if secret is not None and not entry.get("DeletedDate"):
                found[secret] = metadata_mod.from_aws(entry.get("Description"), entry.get("Tags"))
        return found

    def check_access(self, writes: Iterable[SecretId], deletes: Iterable[SecretId]) -> None:
        """Preflight: read_only, reachability and credentials, and free target names.

        AWS has no cheap "may I write this" query (IAM simulation needs other rights), so
        this checks what it can without writing: one ListSecrets call proves the endpoint,
        region and credentials work, and each planned write's name must not be scheduled
        for deletion. An IAM policy that forbids CreateSecret, PutSecretValue, TagResource
        (needed to tag on create) or DeleteSecret surfaces at write time as PermissionDenied.
        """
        refused = self._refusals(list(writes), list(deletes))
        if refused:
            raise refused[0][1]

    def access_problems(
        self, writes: Iterable[SecretId], deletes: Iterable[SecretId]
    ) -> list[tuple[SecretId, str]]:
        """Every planned write to a name scheduled for deletion (and read_only/credential
        refusals, which stand for every planned change), as (secret, reason)."""
        writes, deletes = list(writes), list(deletes)
        try:
            return [(secret, error.detail) for secret, error in self._refusals(writes, deletes)]
        except PermissionDenied as error:
            return [((writes + deletes)[0], error.detail)]

    def ping(self) -> None:
        """One ListSecrets call (MaxResults=1): the endpoint answers and accepts the credentials."""
        self._request("check access", None, "list_secrets", MaxResults=1)

    def name_problem(self, secret: SecretId) -> str | None:
        """Common rules, then AWS's alphabet and 512-character limit on the full AWS name."""
        problem = common_name_problem(secret.name) or self.names.round_trip_problem(secret, self.manager_id)
        if problem:
            return problem
        physical = self.names.physical(secret)
        if physical != secret.name and common_name_problem(physical):
            return f"its physical name {physical!r} is not usable: {common_name_problem(physical)}"
        if secret.kind is Kind.TEXT and physical.startswith(FILES_FOLDER):
            return (f"a text secret named {FILES_FOLDER}... would be read back as a file secret here "
                    f"(file secrets are <prefix>{FILES_FOLDER}NAME); give the secret rename: "
                    f"{{{self.manager_id}: NEW-NAME}}")
        bad = next((c for c in physical if not NAME_CHARS.fullmatch(c)), None)
        if bad is not None:
            code = f", U+{ord(bad):04X}" if not bad.isascii() or not bad.isprintable() else ""
            return ("AWS Secrets Manager names allow only ASCII letters, digits and /_+=.@- "
                    f"(found {bad!r}{code}); map it with name_map: {{{_quoted(bad)}: ...}} on the "
                    f"manager (to one of _+=.@- that no name uses, a different one for each character "
                    f"mapped), or give the "
                    f"secret rename: {{{self.manager_id}: NEW-NAME}}")
        full = self.location(secret)
        if len(full) > MAX_NAME_LENGTH:
            return (f"the AWS name would be {len(full)} characters (prefix included), over AWS "
                    f"Secrets Manager's {MAX_NAME_LENGTH}-character limit")
        return None

    def size_problem(self, secret: SecretId, size: int) -> str | None:
        """AWS stores 1 to 65536 bytes (UTF-8 bytes for text); empty values are refused."""
        if size <= 0:
            return "AWS Secrets Manager cannot store an empty value"
        if size > MAX_VALUE_BYTES:
            return f"a {_size(size)} value is over AWS Secrets Manager's 64 KiB limit ({MAX_VALUE_BYTES} bytes)"
        return None

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()

    def after_fork(self, processes: int) -> None:
        """A client of this process's own: botocore's pool holds the parent's connections."""
        super().after_fork(processes)
        self._orphans = self._client  # never used again, never closed here: the parent's
        self._client = _make_client(*self._client_settings)

    # ----------------------------------------------------------------- steps of write

    def _value_field(self, secret: SecretId, value: SecretValue) -> dict[str, Any]:
        """{"SecretString": text} or {"SecretBinary": bytes}, once the AWS rules pass."""
        where = self.location(secret)
        problem = self.name_problem(secret)
        if problem:
            raise BackendError(self.manager_id, f"cannot write {secret}: {problem}", where)
        problem = self.size_problem(secret, len(value))
        if problem:
            error_type = ValueTooLarge if len(value) else BackendError
            raise error_type(self.manager_id, f"cannot write {secret}: {problem}", where)
        if secret.kind is Kind.FILE:
            return {"SecretBinary": value.data}
        try:
            return {"SecretString": value.text()}
        except UnicodeDecodeError:
            raise BackendError(self.manager_id, "a text secret must be UTF-8", where) from None

    def _put(self, secret: SecretId, value: SecretValue, field: dict[str, Any]) -> None:
        """A new AWSCURRENT version of an existing secret, unless it already holds the value."""
        where = self.location(secret)
        stored = self._fetch(secret, "write")
        if stored is _SCHEDULED:
            raise self._scheduled(secret, "write")
        if stored is None:
            raise TransientError(self.manager_id, f"cannot write {secret}: the secret disappeared "
                                 "while it was being written (deleted for good meanwhile); "
                                 "run again", where)
        if (stored.string, stored.binary) == (field.get("SecretString"), field.get("SecretBinary")):
            return
        reply = self._request("write", where, "put_secret_value", handle=("InvalidRequestException",),
                              SecretId=where, ClientRequestToken=self._token(where, stored.version_id, value),
                              **field)
        if isinstance(reply, _Refusal):
            if reply.about_deletion:
                raise self._scheduled(secret, "write")
            raise BackendError(self.manager_id, f"cannot write {secret}: AWS refused the request "
                               f"(InvalidRequestException: {reply.message})", where)

    def _token(self, name: str, current_version: str | None, value: SecretValue) -> str:
        """The PutSecretValue ClientRequestToken (the new VersionId) for `value` over `current_version`.

        Deterministic for this backend, so a retried request is recognised by AWS and adds
        no second version. Keyed with a random per-backend key because VersionIds are
        visible to anyone allowed DescribeSecret: an unkeyed hash of the value would let
        them test guesses of short values. The current version is part of it so that
        writing A, then B, then A again makes a third version (AWS ignores a token it has
        seen, which would leave B current).
        """
        digest = hmac.new(self._token_key, value.data, hashlib.sha256).hexdigest()
        return str(uuid.uuid5(TOKEN_NAMESPACE, f"{name}\n{current_version or '-'}\n{digest}"))

    def _tags(self, secret: SecretId) -> list[dict[str, str]]:
        """Tags on the secrets secretshift creates: who manages it, its kind, when. No values."""
        created = datetime.now(UTC).replace(microsecond=0).isoformat()
        return [{"Key": MANAGED_BY_TAG, "Value": "secretshift"},
                {"Key": KIND_TAG, "Value": secret.kind.value},
                {"Key": CREATED_AT_TAG, "Value": created}]

    def _scheduled(self, secret: SecretId, action: str,
                   date: datetime | None | object = _UNKNOWN) -> ScheduledForDeletion:
        """The error for a name in its recovery window, with its date (asked if not given)."""
        where = self.location(secret)
        if date is _UNKNOWN:
            described = self._request("describe", where, "describe_secret",
                                      handle=("ResourceNotFoundException",), SecretId=where)
            date = None if isinstance(described, _Refusal) else described.get("DeletedDate")
        when = f" (deletion date {date:%Y-%m-%d})" if isinstance(date, datetime) else ""
        return ScheduledForDeletion(
            self.manager_id,
            f"cannot {action} {secret}: the AWS secret {where} is scheduled for deletion{when}; "
            f"restore it with `aws secretsmanager restore-secret --secret-id {where}` (its old "
            "value comes back and secretshift then writes a new version), or wait until AWS "
            "deletes it for good at the end of its recovery window",
            where, date if isinstance(date, datetime) else None)

    # ----------------------------------------------------------------- reading and listing

    def _fetch(self, secret: SecretId, action: str) -> _Stored | object | None:
        """GetSecretValue(AWSCURRENT): _Stored, None when absent, _SCHEDULED when deleted."""
        where = self.location(secret)
        reply = self._request(action, where, "get_secret_value",
                              handle=("ResourceNotFoundException", "InvalidRequestException"),
                              SecretId=where)
        if not isinstance(reply, _Refusal):
            return _Stored(reply.get("VersionId"), reply.get("SecretString"), reply.get("SecretBinary"))
        if reply.about_deletion:
            return _SCHEDULED
        if reply.code == "ResourceNotFoundException":
            # AWS uses this code for "no such secret" and for "no value at AWSCURRENT".
            return _Stored(None) if "secret value" in reply.message.lower() else None
        raise BackendError(self.manager_id, f"cannot {action} {secret}: AWS refused the request "
                           f"({reply.code}: {reply.message})", where)

    def _entries(self, include_planned_deletion: bool = False) -> Iterator[dict]:
        """ListSecrets entries whose name starts with the prefix, every page.

        The `name` filter narrows the listing server-side, but AWS matches it loosely
        (word prefixes), so the prefix is checked again here.
        """
        params: dict[str, Any] = {"PaginationConfig": {"PageSize": PAGE_SIZE}}
        if self.prefix:
            params["Filters"] = [{"Key": "name", "Values": [self.prefix]}]
        if include_planned_deletion:
            params["IncludePlannedDeletion"] = True
        pages = self._client.get_paginator("list_secrets").paginate(**params)
        try:
            for page in pages:
                for entry in page.get("SecretList") or []:
                    if str(entry.get("Name", "")).startswith(self.prefix):
                        yield entry
        except (bce.ClientError, bce.BotoCoreError) as err:
            raise self._translate(err, "list secrets", None) from err

    def _secret_id(self, aws_name: str) -> SecretId | None:
        """The secret an AWS name stands for, or None when it is not in our layout."""
        rest = aws_name[len(self.prefix):]
        kind = Kind.TEXT
        if rest.startswith(FILES_FOLDER):
            kind, rest = Kind.FILE, rest[len(FILES_FOLDER):]
        if common_name_problem(rest):
            return None
        return self.names.identity(kind, rest)

    def _refusals(self, writes: list[SecretId], deletes: list[SecretId]) -> list[tuple[SecretId, BackendError]]:
        """(secret, the error it would meet) for every planned change that would be refused."""
        planned = [(s, "write") for s in writes] + [(s, "delete") for s in deletes]
        if not planned:
            return []
        if self.read_only:
            return [(s, ReadOnlyManager(self.manager_id, f"refusing to {op} {s}: the manager is "
                                        "configured read_only", self.location(s))) for s, op in planned]
        if not writes:
            self.ping()
            return []
        scheduled = self.scheduled_for_deletion()  # also proves endpoint and credentials
        return [(s, self._scheduled(s, "write", scheduled[s])) for s in dict.fromkeys(writes)
                if s in scheduled]

    # ----------------------------------------------------------------- the one request path

    def _request(self, action: str, where: str | None, operation: str, *, handle: tuple[str, ...] = (),
                 **params: Any) -> Any:
        """Call one client operation; codes in `handle` come back as _Refusal, other
        failures as engine errors naming `where`."""
        try:
            return getattr(self._client, operation)(**params)
        except bce.ClientError as err:
            code, message = _error_of(err)
            if code in handle:
                return _Refusal(code, message)
            raise self._translate(err, action, where) from err
        except bce.BotoCoreError as err:
            raise self._translate(err, action, where) from err

    def _translate(self, err: Exception, action: str, where: str | None) -> BackendError:
        error_type, reason = _classify(err, self.endpoint, self.region)
        return error_type(self.manager_id, f"cannot {action}: {reason}", where)


# --------------------------------------------------------------------- helpers


def _classify(err: Exception, endpoint: str, region: str | None) -> tuple[type[BackendError], str]:
    """The engine error type for a botocore failure, and why, in one clause."""
    if isinstance(err, bce.ClientError):
        code, message = _error_of(err)
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        says = f"{code}: {message}" if message else code
        if code in _DENIED:
            return PermissionDenied, f"AWS denied it ({says})"
        if code in _TRANSIENT or status >= 500:
            return TransientError, f"AWS is busy or failing, retry later ({says})"
        if code in ("DecryptionFailure", "EncryptionFailure", "KMSAccessDeniedException"):
            return DecryptError, f"AWS KMS refused to decrypt or encrypt the secret ({says})"
        return BackendError, f"AWS refused the request ({says})"
    if isinstance(err, bce.ParamValidationError):
        # botocore's report can quote parameter values: keep only the parameter names.
        params = sorted(set(re.findall(r"parameter (\w+)", str(err.kwargs.get("report", "")))))
        return BackendError, f"botocore rejected the request parameters ({', '.join(params) or 'unknown'})"
    if isinstance(err, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return BackendError, ("no AWS credentials found: set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the manager's `profile` "
                              "setting, or run where an instance or task role is available")
    if isinstance(err, (bce.TokenRetrievalError, bce.SSOTokenLoadError)):
        return PermissionDenied, "the AWS SSO session has expired; run `aws sso login`"
    if isinstance(err, bce.CredentialRetrievalError):
        return BackendError, f"cannot obtain AWS credentials ({err})"
    if isinstance(err, bce.SSLError):
        return ManagerUnreachable, f"the TLS connection to {endpoint} failed"
    if isinstance(err, bce.ConnectionError):  # endpoint, connect timeout, proxy
        return ManagerUnreachable, f"cannot connect to AWS Secrets Manager at {endpoint} (region {region})"
    if isinstance(err, (bce.ReadTimeoutError, bce.ConnectionClosedError)):
        return TransientError, f"AWS Secrets Manager at {endpoint} did not answer in time"
    return BackendError, f"the request to {endpoint} failed ({type(err).__name__})"


def _error_of(err: bce.ClientError) -> tuple[str, str]:
    error = err.response.get("Error") or {}
    return str(error.get("Code") or "Unknown"), " ".join(str(error.get("Message") or "").split())


def _make_client(manager_id: str, region: str | None, profile: str | None,
                 endpoint_url: str | None, config: Config):
    """A Secrets Manager client from its own boto3 Session (the default one is not
    thread-safe to share), credentials from the standard chain."""
    if endpoint_url:
        checked_url(manager_id, "endpoint_url", endpoint_url)
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client("secretsmanager", endpoint_url=endpoint_url, config=config)
    except bce.ProfileNotFound:
        raise BackendError(manager_id, f"the AWS profile {profile!r} is not in the AWS config "
                           "or credentials file (~/.aws/config, ~/.aws/credentials)") from None
    except bce.NoRegionError:
        raise BackendError(manager_id, "no AWS region: set `region` for this manager, or "
                           "AWS_REGION, or a region in the AWS profile") from None
    except (bce.BotoCoreError, ValueError) as err:
        raise BackendError(manager_id, f"cannot set up the AWS client ({err})") from None


def _checked_prefix(manager_id: str, prefix: str) -> str:
    bad = next((c for c in prefix if not NAME_CHARS.fullmatch(c)), None)
    if bad is not None:
        raise BackendError(manager_id, f"prefix {prefix!r} has the character {bad!r}; AWS "
                           "Secrets Manager names allow only ASCII letters, digits and /_+=.@-")
    if len(prefix) >= MAX_NAME_LENGTH - len(FILES_FOLDER):
        raise BackendError(manager_id, f"prefix is {len(prefix)} characters, leaving no room for "
                           f"names within AWS's {MAX_NAME_LENGTH}-character limit")
    return prefix


def _quoted(char: str) -> str:
    """A character as a double-quoted YAML scalar (escaped when not printable ASCII)."""
    if char.isascii() and char.isprintable() and char not in '"\\':
        return f'"{char}"'
    return f'"\\u{ord(char):04x}"' if ord(char) < 0x10000 else f'"\\U{ord(char):08x}"'


def _iso(date: datetime | None) -> str | None:
    """A date AWS reported, as ISO 8601 in UTC (None stays None)."""
    return date.astimezone(UTC).isoformat() if isinstance(date, datetime) else None


def _size(n: int) -> str:
    kib = f"{n / 1024:.1f}"
    return f"{n}-byte" if kib == "64.0" else f"{kib} KiB"
