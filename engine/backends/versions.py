"""Earlier versions of a secret, for `history: all` migrations (read side).

`vault_history` and `aws_history` return every readable version before the current one,
oldest first, plus a short note for each version left out (deleted, destroyed, pending,
not in the layout). Values are held as SecretValue only; notes never hold one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import BackendError
from engine.model import Kind, SecretId, SecretValue


@dataclass(frozen=True)
class History:
    """Earlier values, oldest first (the current one is not included), and what was skipped."""

    values: list[tuple[str, SecretValue]] = field(default_factory=list)  # (label such as "v2", value)
    skipped: list[str] = field(default_factory=list)


def vault_history(backend, secret: SecretId) -> History:
    """Every KV v2 version before the current one that still reads (deleted and
    destroyed versions are skipped with a note); KV v1 keeps no versions."""
    layout = backend.layout()
    if layout.version != 2:
        return History([], ["KV v1 keeps no earlier versions"])
    mapped = backend.paths._mapped.get(secret)
    inner = backend.paths._inner(mapped.path) if mapped is not None else layout.inner(secret)
    where, kv = backend.location(secret), backend._client.secrets.kv.v2
    metadata = backend._call("read the metadata of", where, kv.read_secret_metadata, path=inner,
                             mount_point=layout.mount)
    if not isinstance(metadata, dict):
        return History()
    current = int(metadata["data"].get("current_version") or 0)
    versions = metadata["data"].get("versions") or {}
    result = History()
    for number in sorted(int(v) for v in versions if int(v) < current):
        info = versions[str(number)] or {}
        if info.get("destroyed") or info.get("deletion_time"):
            result.skipped.append(f"v{number} {'destroyed' if info.get('destroyed') else 'deleted'}")
            continue
        reply = backend._call("read", where, kv.read_secret_version, path=inner, version=number,
                              mount_point=layout.mount, raise_on_deleted_version=True)
        data = ((reply.get("data") or {}).get("data")) if isinstance(reply, dict) else None
        try:
            value = backend.paths.value_from(secret, data) if mapped is not None else backend._decode(secret, data)
        except BackendError:
            value = None
        if value is None:
            result.skipped.append(f"v{number} unreadable")
        else:
            result.values.append((f"v{number}", value))
    return result


def aws_history(backend, secret: SecretId) -> History:
    """Every version before AWSCURRENT (ListSecretVersionIds, oldest first by CreatedDate),
    read by VersionId; AWSPENDING and versions without a value are skipped with a note."""
    where = backend.location(secret)
    entries, token = [], None
    while True:
        params = {"SecretId": where, "IncludeDeprecated": True, "MaxResults": 100}
        if token:
            params["NextToken"] = token
        page = backend._request("list the versions of", where, "list_secret_version_ids", **params)
        entries += page.get("Versions") or []
        token = page.get("NextToken")
        if not token:
            break
    entries.sort(key=lambda e: (e.get("CreatedDate") is None, e.get("CreatedDate")))
    result = History()
    for number, entry in enumerate(entries, start=1):
        stages = entry.get("VersionStages") or []
        if "AWSCURRENT" in stages:
            break  # later versions were never current: nothing after it is history
        if "AWSPENDING" in stages:
            result.skipped.append(f"version {number} pending")
            continue
        reply = backend._request("read", where, "get_secret_value", handle=("ResourceNotFoundException",),
                                 SecretId=where, VersionId=entry["VersionId"])
        value = _aws_value(secret, reply if isinstance(reply, dict) else {})
        if value is None:
            result.skipped.append(f"version {number} unreadable")
        else:
            result.values.append((f"version {number}", value))
    return result


def _aws_value(secret: SecretId, reply: dict) -> SecretValue | None:
    string, binary = reply.get("SecretString"), reply.get("SecretBinary")
    if secret.kind is Kind.FILE:
        if binary is not None:
            return SecretValue(binary)
        return SecretValue(string.encode("utf-8")) if string is not None else None
    return SecretValue.from_text(string) if string is not None else None
