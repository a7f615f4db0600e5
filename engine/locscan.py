"""Find the references that name WHERE a secret lives, rather than its name.

Pure: no file, environment or clock. Three syntaxes are recognised in any text (YAML,
JSON, shell, Jinja):

* vals (helmfile/vals) Vault references: `ref+vault://PATH[?QUERY][#FRAGMENT]`, where PATH
  is the Vault API path (a KV v2 path has `data/` after the mount, e.g.
  `ref+vault://secret/data/app#/password`), QUERY holds options such as `address=`,
  `namespace=` or `version=`, and FRAGMENT the field (`#/password` or `#password`).
* vals AWS Secrets Manager references: `ref+awssecrets://NAME[?QUERY][#/KEY]` (also the
  older scheme `awssec`); an ARN is kept but names no location secretshift can match.
* Ansible `hashi_vault` lookups: `lookup('hashi_vault', 'secret=PATH:FIELD token=... url=...')`
  (also `community.hashi_vault.hashi_vault`, `community.general.hashi_vault`, and
  `query(...)`/`q(...)`); `secret=` may be left out when the path is the first word, and
  options may also be keyword arguments (`url='https://...'`).

`secretref+` works like `ref+` (vals treats it as a secret). A vals reference ends where
vals ends it (`+` or a line break) or at white space, a quote, a bracket or a brace, as
it would in YAML or JSON. Percent escapes in a path are decoded. A lookup whose term is
not a quoted literal (a variable) is skipped: its location is only known at run time.
Lines are counted at `\\n`; columns count characters, 1-based.
"""

from __future__ import annotations

import bisect
import re
import urllib.parse
from dataclasses import dataclass

__all__ = ["ANSIBLE", "VALS_AWS", "VALS_VAULT", "LocationReference", "scan_locations"]

VALS_VAULT, VALS_AWS, ANSIBLE = "vals-vault", "vals-awssecrets", "ansible-hashi_vault"
MAX_EXPRESSION_LENGTH = 2048

_VALS = re.compile(r"(?<![\w+])((?:secret)?ref)\+(vault|awssecrets|awssec)://([^\s\"'`+<>{}\[\]|\\,;]+)")
_LOOKUP = re.compile(
    r"\b(lookup|query|q)\(\s*(['\"])((?:community\.(?:hashi_vault|general)\.)?hashi_vault)\2\s*,\s*"
)
_PLUGIN_OPTIONS = re.compile(r"([A-Za-z_]\w*)\s*=\s*(['\"])([^'\"\n]*)\2")


@dataclass(frozen=True)
class LocationReference:
    """One reference to a location in a secrets manager, as written in a file.

    `start`/`end` are offsets of `text` in the scanned text; `line`/`column` are those of
    its first character. `path` is the Vault path or AWS name (percent escapes decoded),
    `field` the field or key read inside it (None: the whole secret). For vals,
    `query` keeps the options in their order; for a lookup, `spans` gives where the path,
    and the `url=`/`namespace=` options if written, are inside `text`.
    """

    file: str
    line: int
    column: int
    start: int
    end: int
    text: str
    syntax: str
    path: str
    field: str | None
    prefix: str = "ref"  # vals: "ref" or "secretref"
    scheme: str = ""  # vals: vault, awssecrets or awssec
    query: tuple[tuple[str, str], ...] = ()
    fragment: str | None = None  # vals: as written after '#'
    spans: tuple[tuple[str, int, int], ...] = ()  # lookup: (what, start, end) inside text
    term_end: int = 0  # lookup: where the quoted term string ends inside text

    def option(self, name: str) -> str | None:
        """A vals query option or a lookup option (term word or keyword), if written."""
        for key, value in self.query:
            if key == name:
                return value
        for what, start, end in self.spans:
            if what == name:
                return self.text[start:end]
        return None

    @property
    def where(self) -> str:
        """`file:line:col`."""
        return f"{self.file}:{self.line}:{self.column}"


def scan_locations(text: str, file: str) -> list[LocationReference]:
    """Every location reference in `text`, in order of position."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    found = [_vals(m, file, line_starts) for m in _VALS.finditer(text)]
    for match in _LOOKUP.finditer(text):
        lookup = _lookup(text, match, file, line_starts)
        if lookup is not None:
            found.append(lookup)
    return sorted(found, key=lambda r: r.start)


# --- vals -------------------------------------------------------------------------------

def _vals(match: re.Match, file: str, line_starts: list[int]) -> LocationReference:
    prefix, scheme, rest = match.group(1), match.group(2), match.group(3)
    rest, _, fragment = rest.partition("#")
    raw_path, _, raw_query = rest.partition("?")
    query = tuple((k, v) for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
    field = fragment.lstrip("/") if "#" in match.group(3) else None
    syntax = VALS_VAULT if scheme == "vault" else VALS_AWS
    return LocationReference(
        file, *_line_column(line_starts, match.start()), match.start(), match.end(), match.group(),
        syntax, urllib.parse.unquote(raw_path).strip("/"), field or None, prefix, scheme, query,
        fragment if "#" in match.group(3) else None,
    )


# --- Ansible lookups --------------------------------------------------------------------

def _lookup(text: str, match: re.Match, file: str, line_starts: list[int]) -> LocationReference | None:
    """The lookup call at `match`, or None when its term is not a quoted literal or the
    call is never closed."""
    start, position = match.start(), match.end()
    quote = text[position:position + 1]
    if quote not in ("'", '"'):
        return None
    term_end = text.find(quote, position + 1, position + MAX_EXPRESSION_LENGTH)
    if term_end == -1 or "\n" in text[position:term_end]:
        return None
    end = _closing_paren(text, term_end + 1, start + MAX_EXPRESSION_LENGTH)
    if end is None:
        return None
    call = text[start:end]
    spans = _term_spans(text, position + 1, term_end, start)
    spans += _keyword_spans(call, term_end + 1 - start, {what for what, _, _ in spans})
    secret = next(((s, e) for what, s, e in spans if what == "secret"), None)
    if secret is None:
        return None
    path, colon, field = call[secret[0]:secret[1]].rpartition(":")
    if not colon:
        path, field = field, ""
    spans = [("path", secret[0], secret[0] + len(path))] + [s for s in spans if s[0] != "secret"]
    return LocationReference(
        file, *_line_column(line_starts, start), start, end, call, ANSIBLE, path.strip("/"),
        field or None, spans=tuple(spans), term_end=term_end - start,
    )


def _term_spans(text: str, begin: int, end: int, offset: int) -> list[tuple[str, int, int]]:
    """The `key=value` words of a term string (the first bare word is `secret`), as spans
    relative to `offset`."""
    spans = []
    for index, word in enumerate(re.finditer(r"\S+", text[begin:end])):
        key, equals, value = word.group().partition("=")
        if not equals and index == 0:
            key, value = "secret", word.group()
        if key in ("secret", "url", "namespace") and value:
            value_start = begin + word.end() - len(value)
            spans.append((key, value_start - offset, begin + word.end() - offset))
    return spans


def _keyword_spans(call: str, begin: int, seen: set[str]) -> list[tuple[str, int, int]]:
    """Keyword options with a quoted literal value (`url='https://...'`) after the term."""
    spans = []
    for option in _PLUGIN_OPTIONS.finditer(call, begin):
        key = option.group(1)
        if key in ("secret", "url", "namespace") and key not in seen:
            spans.append((key, option.start(3), option.end(3)))
    return spans


def _closing_paren(text: str, position: int, limit: int) -> int | None:
    """Offset just after the `)` closing the call, skipping quoted strings and nested
    parentheses; None if not found within `limit`."""
    depth = 1
    limit = min(limit, len(text))
    while position < limit:
        char = text[position]
        if char in "'\"":
            close = text.find(char, position + 1, limit)
            if close == -1:
                return None
            position = close
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position + 1
        position += 1
    return None


def _line_column(line_starts: list[int], offset: int) -> tuple[int, int]:
    line = bisect.bisect_right(line_starts, offset)
    return line, offset - line_starts[line - 1] + 1
