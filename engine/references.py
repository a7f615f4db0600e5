"""Find the secret references in a pipeline file, and render the file with their values.

A *reference* is one of the Harness expressions that name a secret:

    ${secrets.getValue("n")}          <+secrets.getValue("n")>   (also "org.n", "account.n")
    ${configFile.getAsString("n")}    <+configFile.getAsString("n")>
    ${configFile.getAsBase64("n")}    <+configFile.getAsBase64("n")>

Pure: no file, environment or clock. `scan` returns every reference in one file's text,
and every call of these functions whose name is only known at run time (`Unresolvable`,
never guessed); `render` replaces the references by their values in one pass. The scanner
reads the raw text of any format (YAML, JSON, shell) and accepts what those formats put
around an expression without changing its meaning:

* whitespace, line breaks and indentation after the opener, around the parentheses and
  the quoted name, and before the closer (YAML folds long strings where spaces were);
* the escaped line break of a YAML double-quoted string (a backslash at the end of the
  line; the next line's indentation is dropped) anywhere inside the expression, even in
  the middle of a word: PyYAML emits one wherever a line gets too long after an escape;
* quotes written as `"`, `'`, `\\"`, `\\\\\\"`... (a JSON string inside a YAML string), and a
  YAML single-quoted string's doubled `''`; the closing quote must be written as the
  opening one was.

Decisions where Harness is not explicit:

* `$${secrets.getValue("n")}` is a reference (at the second `$`): Harness has no `$$`
  escape, and its FirstGen matcher finds `${secrets.getValue(...)}` inside it.
* Comments are scanned like any other text: Harness substitutes expressions in a shell
  script before the shell sees its comments, so a reference in a comment must resolve too.
* A name containing a line break, a backslash escape or a nested expression, a
  concatenation, an unquoted argument, an empty name, an expression that goes on after
  the call (`<+secrets.getValue("n").length()>`) or that is never closed is unresolvable.
* A name that is a secrets-manager location (`hashicorpvault://conn/path#key`,
  `account.awssecretsmanager://...`) reads the manager directly; it is unresolvable
  because it names no secret that secretshift can move.
* A FirstGen name is kept whole (FirstGen has no scopes); a NextGen `account.`/`org.`
  prefix, on any of the three functions, becomes the scope.
* Lines are counted at `\\n`; columns count characters (code points), not bytes.
"""

from __future__ import annotations

import base64
import bisect
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from engine.errors import SecretShiftError
from engine.model import Kind

__all__ = ["Reference", "Unresolvable", "ScanResult", "UnresolvedReference", "scan", "render"]

FUNCTIONS: dict[str, Kind] = {
    "secrets.getValue": Kind.TEXT,
    "configFile.getAsBase64": Kind.FILE,
    "configFile.getAsString": Kind.FILE,
}
# opener -> (syntax, closer)
SYNTAXES: dict[str, tuple[str, str]] = {"${": ("firstgen", "}"), "<+": ("nextgen", ">")}
NEXTGEN_SCOPES = ("account", "org")

# Bounds that keep one scan linear: no look-ahead from one opener goes further than this.
MAX_NAME_LENGTH = 512
MAX_EXPRESSION_LENGTH = 2048
MAX_SHOWN_TEXT = 200

# An opener that may start one of FUNCTIONS (after whitespace or an escaped line break).
_CANDIDATE = re.compile(r"(?:\$\{|<\+)(?=[ \t\r\n\\sc])")
# The common, plain case in one linear regex; anything else takes the careful path.
_PLAIN = re.compile(
    r"(?:\$\{|<\+)[ \t\r\n]*(secrets\.getValue|configFile\.getAs(?:Base64|String))"
    r"[ \t\r\n]*\([ \t\r\n]*(\\*)([\"'])([^\"'\\\r\n]{1,512})\2\3[ \t\r\n]*\)[ \t\r\n]*([}>])"
)
_LOCATION = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_NAME_RUN = {q: re.compile("[^" + q + r"\\\r\n]*") for q in "\"'"}
_WALK_STOP = re.compile(r"[\\\"'(){}<>$]")  # the characters _expression_end acts on
_BREAK = re.compile(r"\\\r?\n[ \t]*")  # YAML double-quoted escaped line break
_SPACES = re.compile(r"(?:[ \t\r\n]|\\\r?\n)*")
_FUNCTION = re.compile(
    "|".join(r"(?:\\\r?\n[ \t]*)?".join(map(re.escape, f)) for f in FUNCTIONS)
    + r"(?!(?:\\\r?\n[ \t]*)?\w)"
)


@dataclass(frozen=True)
class Reference:
    """One expression naming a secret, where it is and what it resolves to.

    `start`/`end` are character offsets of the whole expression in the scanned text, for
    `render`; `line`/`column` (1-based) are those of its first character. `name` has no
    scope prefix; `scope` is account/org/project for NextGen and None for FirstGen.
    """

    file: str
    line: int
    column: int
    syntax: str
    function: str
    name: str
    scope: str | None
    kind: Kind
    start: int
    end: int

    def to_dict(self) -> dict:
        """The contract's JSON shape (the caller adds `resolves`)."""
        keys = ("file", "line", "column", "syntax", "function", "name", "scope")
        return {**{key: getattr(self, key) for key in keys}, "kind": self.kind.value}


@dataclass(frozen=True)
class Unresolvable:
    """An expression calling a secret function whose name is not known before run time.

    `text` is the expression as written (shortened when very long); `reason` says why it
    cannot be resolved, in one sentence.
    """

    file: str
    line: int
    column: int
    text: str
    reason: str

    def to_dict(self) -> dict:
        """The contract's JSON shape."""
        return {key: getattr(self, key) for key in ("file", "line", "column", "text", "reason")}


@dataclass(frozen=True)
class ScanResult:
    """Everything `scan` found in one file, each list in order of position."""

    references: tuple[Reference, ...]
    unresolvable: tuple[Unresolvable, ...]


class UnresolvedReference(SecretShiftError):
    """`render` met a reference whose secret has no value; names where, never a value."""

    def __init__(self, reference: Reference):
        self.reference = r = reference
        super().__init__(f"{r.file}:{r.line}:{r.column}: {r.function} names {r.kind.value} "
                         f"secret {r.name!r}, which no manager holds")


class _Bad(Exception):
    """Internal: the expression at hand is unresolvable; `end` is set when known."""

    def __init__(self, reason: str, end: int | None = None):
        super().__init__(reason)
        self.end = end


def scan(text: str, file: str) -> ScanResult:
    """Find every secret reference and every unresolvable secret expression in `text`.

    `file` is only copied into the results. The scan is linear in the size of the text:
    each expression is read at most `MAX_EXPRESSION_LENGTH` characters ahead.
    """
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    references: list[Reference] = []
    unresolvable: list[Unresolvable] = []
    covered_until = 0
    ends: dict[int, int | None] = {}  # expression ends found while delimiting unresolvables
    for match in _CANDIDATE.finditer(text):
        start = match.start()
        if start < covered_until:
            continue
        try:
            found = _read_plain(text, start) or _read_reference(text, start)
        except _Bad as bad:
            where = _line_column(line_starts, start)
            unresolvable.append(_unresolvable(text, start, file, *where, bad, ends))
            continue
        if found is not None:
            syntax, function, name, scope, covered_until = found
            references.append(Reference(
                file, *_line_column(line_starts, start), syntax, function, name, scope,
                FUNCTIONS[function], start, covered_until,
            ))
    return ScanResult(tuple(references), tuple(unresolvable))


def render(
    text: str,
    references: Sequence[Reference],
    value_of: Callable[[Reference], bytes | None],
) -> bytes:
    """Return `text` as bytes with every reference replaced by its value, in one pass.

    `value_of` gives a secret's raw bytes (None when no manager holds it: raises
    `UnresolvedReference`). getAsBase64 inserts the base64 of those bytes; getValue and
    getAsString insert them as they are. Values are never scanned again, and the text
    between references is kept byte for byte (encoded as UTF-8 with `surrogateescape`, so
    a file decoded that way round-trips even when it is not UTF-8).
    """
    ordered = sorted(references, key=lambda r: r.start)
    pieces: list[bytes] = []
    position = 0
    for ref in ordered:
        _check_span(text, ref, position)
        pieces.append(_encode(text[position:ref.start]))
        pieces.append(_value_bytes(ref, value_of(ref)))
        position = ref.end
    pieces.append(_encode(text[position:]))
    return b"".join(pieces)


# --- reading one expression ---------------------------------------------------------


def _read_plain(text: str, start: int) -> tuple[str, str, str, str | None, int] | None:
    """The fast path of `_read_reference`: a reference written plainly, or None."""
    plain = _PLAIN.match(text, start)
    if plain is None:
        return None
    syntax, closer = SYNTAXES[text[start:start + 2]]
    if plain.group(5) != closer:
        return None
    name, scope = _split_name(plain.group(4), syntax, plain.end())
    return syntax, plain.group(1), name, scope, plain.end()


def _read_reference(text: str, start: int) -> tuple[str, str, str, str | None, int] | None:
    """Read the expression whose opener is at `start`.

    Returns (syntax, function, name, scope, end) for a reference, None when the text is not
    a call of one of our functions at all, and raises `_Bad` when it is one whose name
    cannot be known.
    """
    syntax, closer = SYNTAXES[text[start:start + 2]]
    called = _read_function(text, _skip_space(text, start + 2))
    if called is None:
        return None
    function, position = called
    position = _skip_space(text, position)
    if not text.startswith("(", position):
        return None
    raw_name, position = _read_quoted_name(text, _skip_space(text, position + 1))
    position = _skip_space(text, position)
    if text.startswith("+", position):
        raise _Bad("the name is built at run time by concatenation")
    if not text.startswith(")", position):
        raise _Bad(f"{function} takes one quoted name and nothing else")
    position = _skip_space(text, position + 1)
    if text.startswith(closer, position):
        return (syntax, function, *_split_name(raw_name, syntax, position + 1), position + 1)
    if text.startswith(("}", ">"), position):
        raise _Bad(f"the expression opened with {text[start:start + 2]!r} is closed by "
                   f"{text[position]!r}", position + 1)
    raise _Bad(f"the expression goes on after {function}(...); only a bare "
               f"{function}(\"name\") can be resolved")


def _read_function(text: str, position: int) -> tuple[str, int] | None:
    """Match one of FUNCTIONS at `position`, as a whole word; None when none matches."""
    called = _FUNCTION.match(text, position)
    if called is None:
        return None
    return _BREAK.sub("", called.group()), called.end()


def _read_quoted_name(text: str, position: int) -> tuple[str, int]:
    """Read the quoted argument at `position`; return (raw name, position after it)."""
    opened = _read_quote(text, position, opening=True)
    if opened is None:
        if text.startswith(("<+", "${"), position):
            raise _Bad("the name comes from a nested expression evaluated at run time")
        if text.startswith(")", position):
            raise _Bad("no name is given")
        raise _Bad("the name is not a quoted string (a variable evaluated at run time)")
    quote, position = opened
    run = _NAME_RUN[quote[-1]]
    chars: list[str] = []
    limit = position + MAX_NAME_LENGTH
    while position <= limit:
        plain = run.match(text, position, limit + 1)
        chars.append(plain.group())
        position = _skip_break(text, plain.end())
        if position == plain.end():
            break
    if position >= len(text) or position > limit or text[position] in "\r\n":
        raise _Bad("the quoted name is not closed on its line")
    closed = _read_quote(text, position, opening=False, doubled=quote == "''")
    if closed is None or closed[0] != quote:
        raise _Bad(f"the quoted name is not closed by {quote} as it was opened")
    return "".join(chars), closed[1]


def _read_quote(
    text: str, position: int, opening: bool, doubled: bool = False
) -> tuple[str, int] | None:
    """Read a quote as written (`"`, `'`, `\\"`, `\\\\\\"`...); return it and the end.

    Escaped line breaks may split a run of backslashes (only where a YAML escape pair
    starts). An opening `''` is a YAML single-quoted string's doubled quote unless it is
    the empty name `'')`; a closing one is expected when the opening one was doubled.
    """
    backslashes = 0
    while position < len(text) and text[position] == "\\":
        after = _skip_break(text, position) if backslashes % 2 == 0 else position
        if after == position:
            backslashes += 1
            position += 1
        else:
            position = after
    if position >= len(text) or text[position] not in "\"'":
        return None
    quote = "\\" * backslashes + text[position]
    position += 1
    if quote == "'" and text.startswith("'", position):
        if doubled or (opening and not text.startswith(")", _skip_space(text, position + 1))):
            return "''", position + 1
    return quote, position


def _split_name(raw_name: str, syntax: str, end: int) -> tuple[str, str | None]:
    """Check a quoted name and split off its NextGen scope; raise `_Bad` if unusable."""
    if not raw_name:
        raise _Bad("the name is empty", end)
    if "<+" in raw_name or "${" in raw_name:
        raise _Bad("the name contains a nested expression evaluated at run time", end)
    if _LOCATION.match(raw_name):
        raise _Bad("the name is a location in a secrets manager (scheme://...), read "
                   "directly by the pipeline, not a secret that secretshift can move", end)
    if syntax == "firstgen":
        return raw_name, None
    prefix, dot, rest = raw_name.partition(".")
    if dot and prefix in NEXTGEN_SCOPES:
        if not rest:
            raise _Bad(f"the name is empty after the scope prefix {prefix!r}", end)
        return rest, prefix
    return raw_name, "project"


# --- unresolvable expressions -----------------------------------------------------------


def _unresolvable(
    text: str, start: int, file: str, line: int, column: int, bad: _Bad, ends: dict
) -> Unresolvable:
    """Describe the unresolvable expression at `start`, as far as it can be delimited."""
    reason = str(bad)
    end = bad.end or _expression_end(text, start, ends)
    if end is None:
        closer = SYNTAXES[text[start:start + 2]][1]
        reason = f"unterminated expression: no closing {closer!r} found"
        line_end = text.find("\n", start, start + MAX_SHOWN_TEXT + 1)
        end = min(len(text), start + MAX_SHOWN_TEXT + 1) if line_end == -1 else line_end
    shown = text[start:end].rstrip("\r")
    if len(shown) > MAX_SHOWN_TEXT:
        shown = shown[:MAX_SHOWN_TEXT] + "..."
    return Unresolvable(file, line, column, shown, reason)


def _expression_end(text: str, start: int, ends: dict[int, int | None]) -> int | None:
    """Offset just after the closer matching the opener at `start`, or None if not found.

    Follows parentheses, nested `${...}`/`<+...>` and quoted strings, within
    MAX_EXPRESSION_LENGTH characters. `ends` remembers, per opener offset, the end found
    (or None) for every expression met on the way, so that a run of unterminated openers
    is walked once rather than once per opener.
    """
    if start in ends:
        return ends[start]
    open_ones: list[tuple[str, int | None]] = [(SYNTAXES[text[start:start + 2]][1], start)]
    position = start + 2
    limit = min(len(text), start + MAX_EXPRESSION_LENGTH)
    while True:
        special = _WALK_STOP.search(text, position, limit)
        if special is None:
            break
        position = special.start()
        char = text[position]
        if char == "\\" and text.startswith(("\\", "\"", "'"), position + 1):
            position += 2
        elif char in "\"'":
            line_end = text.find("\n", position + 1, limit)
            close = text.find(char, position + 1, limit if line_end == -1 else line_end)
            position = position + 1 if close == -1 else close + 1  # a lone quote is text
        elif text.startswith(("${", "<+"), position):
            if position in ends:
                if ends[position] is None:
                    break
                position = ends[position]
            else:
                open_ones.append((SYNTAXES[text[position:position + 2]][1], position))
                position += 2
        else:
            if char == "(":
                open_ones.append((")", None))
            elif char == open_ones[-1][0]:
                opened = open_ones.pop()[1]
                if opened is not None:
                    ends[opened] = position + 1
                if not open_ones:
                    return position + 1
            position += 1
    for _, opened in open_ones:
        if opened is not None:
            ends[opened] = None
    return None


# --- low-level text helpers -------------------------------------------------------------


def _skip_break(text: str, position: int) -> int:
    """Skip a YAML escaped line break (backslash, newline, indentation) at `position`."""
    escaped = _BREAK.match(text, position)
    return escaped.end() if escaped else position


def _skip_space(text: str, position: int) -> int:
    """Skip whitespace, line breaks and escaped line breaks."""
    return _SPACES.match(text, position).end()


def _line_column(line_starts: list[int], offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = bisect.bisect_right(line_starts, offset)
    return line, offset - line_starts[line - 1] + 1


# --- rendering helpers ----------------------------------------------------------------


def _check_span(text: str, ref: Reference, position: int) -> None:
    """Refuse references that overlap or were not scanned from this text."""
    opener = "${" if ref.syntax == "firstgen" else "<+"
    if ref.start < position or ref.end > len(text) or not text.startswith(opener, ref.start):
        raise ValueError(f"reference at {ref.file}:{ref.line}:{ref.column} does not match the text")


def _value_bytes(ref: Reference, value: bytes | None) -> bytes:
    """The bytes that replace `ref`, given its secret's raw value."""
    if value is None:
        raise UnresolvedReference(ref)
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value_of must return bytes or None for {ref.name!r}")
    if ref.function == "configFile.getAsBase64":
        return base64.b64encode(value)
    return bytes(value)


def _encode(fragment: str) -> bytes:
    """Text between references, as UTF-8 (surrogateescape keeps undecodable bytes)."""
    return fragment.encode("utf-8", "surrogateescape")
