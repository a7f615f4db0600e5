"""Small value types shared by every layer: secret ids, values and inventory entries.

Nothing here performs I/O. `SecretValue` is the only type that ever holds a secret's
bytes, and it never shows them in `repr`/`str`, so a value that ends up in a log line,
an exception or a debugger by accident still does not leak.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(str, enum.Enum):
    """The two kinds of secret: `text` (a UTF-8 string) and `file` (any bytes)."""

    TEXT = "text"
    FILE = "file"

    # Enum's own __hash__ is a Python function; as a str, hash the value (consistent with
    # `==`, which compares the value). Secret ids are hashed in every lookup of a run.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True, slots=True)
class SecretId:
    """What identifies a secret everywhere: its kind and its name."""

    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} secret {self.name!r}"


class SecretValue:
    """The bytes of one secret. Text secrets hold their UTF-8 encoding.

    Its repr is masked on purpose; call `.data` (bytes) or `.text()` explicitly.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("SecretValue holds bytes")
        self._data = bytes(data)

    @classmethod
    def from_text(cls, text: str) -> SecretValue:
        """Wrap a text secret (stored as its UTF-8 bytes)."""
        return cls(text.encode("utf-8"))

    @property
    def data(self) -> bytes:
        """The raw bytes."""
        return self._data

    def text(self) -> str:
        """The value as text; raises UnicodeDecodeError for bytes that are not UTF-8."""
        return self._data.decode("utf-8")

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._data == self._data

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        return f"SecretValue(<{len(self._data)} bytes, masked>)"

    __str__ = __repr__

    def __reduce__(self):  # pickling would write the value somewhere unplanned
        raise TypeError("SecretValue cannot be pickled")


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    """What a manager holds for one secret, without its value.

    `fingerprint` is a keyed HMAC of the value (see crypto.Fingerprinter); `location` is
    the manager's logical address of it (a Vault path, a database row, an AWS name).
    """

    id: SecretId
    fingerprint: str
    size: int
    location: str
    metadata: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Unavailable:
    """A secret a manager still keeps but cannot give a current value for, and why.

    `state` is `deleted` (KV v2: latest version soft-deleted), `destroyed` (KV v2: latest
    version destroyed), `pending_deletion` (AWS: in its recovery window), `no_value`
    (AWS: the AWSCURRENT version holds neither SecretString nor SecretBinary) or
    `unreadable` (held in a shape that is not one value; `detail` says which). `when` is
    the date the manager reports for that state, ISO 8601, when known (KV v2: deletion
    time; AWS: the DeletedDate, when the recovery window ends). No value, no fingerprint.
    """

    id: SecretId
    state: str
    location: str
    when: str | None = None
    version: int | None = None
    detail: str | None = None
