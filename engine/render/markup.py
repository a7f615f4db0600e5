"""Making user data (secret names, locations, manager ids, messages) safe to embed in
Markdown, HTML blocks and Mermaid labels of a pull-request comment.

Secret names and locations come from managers and saved plan files: they may hold `|`,
backticks, `<script>`, newlines or control characters. Every function here returns text
that renders as exactly the characters given (control characters shown as escapes such
as `\\n`) and cannot end a table cell, a code block or an HTML element, nor inject HTML.
Pure functions; this module formats, it decides nothing.
"""

from __future__ import annotations

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
# ASCII punctuation with an inline meaning in GitHub Markdown (emphasis, code, links,
# strike-through, table cells, math); a backslash makes each one literal.
_MARKDOWN_PUNCTUATION = frozenset("\\`*_[]~|$")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters a Mermaid label keeps as they are; every other one becomes an entity code.
_MERMAID_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./,")


def visible(text: object, limit: int | None = None) -> str:
    """`text` on one line: newlines, tabs and other control or line-separator characters
    spelled as escapes (`\\n`, `\\x07`, `\\u2028`); cut to `limit` characters with `…`."""
    result = []
    for ch in "" if text is None else str(text):
        if ch in _NAMED_CONTROLS:
            result.append(_NAMED_CONTROLS[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            result.append(f"\\x{ord(ch):02x}")
        elif ch in "\u2028\u2029":
            result.append(f"\\u{ord(ch):04x}")
        else:
            result.append(ch)
    line = "".join(result)
    if limit is not None and len(line) > limit:
        return line[: max(limit - 1, 0)] + "…"
    return line


def html_text(text: object, limit: int | None = None) -> str:
    """User data for an HTML block (such as a `<summary>` line), where Markdown is not
    parsed: entity-escaped, on one line."""
    return "".join(_ENTITIES.get(ch, ch) for ch in visible(text, limit))


def cell(text: object, limit: int | None = None) -> str:
    """User data for inline Markdown, typically one table cell: HTML characters as
    entities, Markdown punctuation (including `|`) backslash-escaped, on one line."""
    out = []
    for ch in visible(text, limit):
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in _MARKDOWN_PUNCTUATION:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def code(text: object, limit: int | None = None) -> str:
    """User data shown monospaced in a table cell. `<code>` rather than a backtick span,
    because escapes do not work inside backticks; GitHub does not turn `@name` or
    `#123` inside code into mentions or links."""
    return f"<code>{cell(text, limit)}</code>"


def mermaid_label(text: object, limit: int | None = None) -> str:
    """A quoted Mermaid label: every character outside a small safe set becomes a
    `#NNN;` entity code, so no quote, bracket, backtick or `<` reaches the parser."""
    body = "".join(ch if ch in _MERMAID_SAFE else f"#{ord(ch)};" for ch in visible(text, limit))
    return f'"{body}"'
