"""Metadata that travels with a secret: its description, its user tags, and its format.

Each manager keeps these in its own shape (README, "Metadata and history"):

- AWS Secrets Manager: `Description`, and `Tags` (user tags; `aws:` and `secretshift:`
  keys are not user tags). A JSON SecretString that came from a whole multi-key Vault
  secret carries the tags `secretshift:value-format = vault-json-object` and
  `secretshift:vault-path = <its path under base_path>`.
- Vault KV v2: the secret's `custom_metadata`: the key `description`, the key
  `secretshift:value-format`, and every other key as a user tag. KV v1 has no metadata.
- builtin: none (description and tags are dropped).

What one side cannot hold is dropped, never truncated: AWS tag values allow only letters,
digits, spaces and `_.:/=+-@` (up to 256 characters), Vault custom_metadata values up to
512 bytes, keys up to 128 characters. Metadata never holds a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FORMAT_KEY = "secretshift:value-format"
VAULT_PATH_KEY = "secretshift:vault-path"
HISTORY_KEY = "secretshift:history"
DESCRIPTION_KEY = "description"
RESERVED_PREFIXES = ("secretshift:", "aws:")
AWS_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]*")
AWS_MAX_TAGS = 50
VAULT_MAX_KEYS = 64


@dataclass(frozen=True)
class SecretMetadata:
    """What travels besides the value. `format` is secretshift's own marker of how the
    value is shaped (e.g. "vault-json-object"), None for a plain value."""

    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    format: str | None = None
    vault_path: str | None = None  # with format vault-json-object: the Vault path it came from
    history: str | None = None  # how earlier versions were carried (history: all), e.g. "2 earlier versions..."

    def __bool__(self) -> bool:
        return bool(self.description or self.tags or self.format or self.history)


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags without secretshift's and AWS's own keys."""
    return {k: v for k, v in tags.items() if not k.startswith(RESERVED_PREFIXES)}


def from_custom_metadata(custom: dict | None) -> SecretMetadata:
    """A Vault KV v2 secret's custom_metadata as SecretMetadata."""
    custom = dict(custom or {})
    description = custom.pop(DESCRIPTION_KEY, None) or None
    return SecretMetadata(description, user_tags(custom), custom.get(FORMAT_KEY))


def to_custom_metadata(metadata: SecretMetadata) -> dict[str, str]:
    """custom_metadata keys for Vault KV v2 (what does not fit is dropped)."""
    custom = {k: v for k, v in metadata.tags.items() if _fits_vault(k, v)}
    if metadata.description and _fits_vault(DESCRIPTION_KEY, metadata.description):
        custom[DESCRIPTION_KEY] = metadata.description
    if metadata.format:
        custom[FORMAT_KEY] = metadata.format
    if metadata.history:
        custom[HISTORY_KEY] = metadata.history
    return dict(sorted(custom.items())[:VAULT_MAX_KEYS])


def from_aws(description: str | None, tags: list[dict] | None) -> SecretMetadata:
    """DescribeSecret's Description and Tags as SecretMetadata."""
    pairs = {t.get("Key", ""): t.get("Value", "") for t in tags or []}
    return SecretMetadata(description or None, user_tags(pairs), pairs.get(FORMAT_KEY), pairs.get(VAULT_PATH_KEY))


def to_aws_tags(metadata: SecretMetadata, room: int) -> list[dict[str, str]]:
    """User tags (and the format marker) AWS accepts, at most `room` of them."""
    tags = {k: v for k, v in metadata.tags.items() if _fits_aws(k, v)}
    if metadata.format:
        tags[FORMAT_KEY] = metadata.format
    if metadata.vault_path and len(metadata.vault_path) <= 256 and AWS_TAG_VALUE.fullmatch(metadata.vault_path):
        tags[VAULT_PATH_KEY] = metadata.vault_path
    if metadata.history:
        tags[HISTORY_KEY] = metadata.history[:256]
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())][:max(0, room)]


def _fits_vault(key: str, value: str) -> bool:
    return 0 < len(key) <= 128 and len(value.encode("utf-8")) <= 512


def _fits_aws(key: str, value: str) -> bool:
    return (0 < len(key) <= 128 and len(value) <= 256 and AWS_TAG_VALUE.fullmatch(key) is not None
            and AWS_TAG_VALUE.fullmatch(value) is not None and not key.startswith(RESERVED_PREFIXES))
