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

_VISIBLE = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_VISIBLE.update({ord(ch): escape for ch, escape in _NAMED_CONTROLS.items()})
_VISIBLE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_HTML = str.maketrans(_ENTITIES)
_CELL = str.maketrans({**{ch: "\\" + ch for ch in _MARKDOWN_PUNCTUATION}, **_ENTITIES})


def visible(text: object, limit: int | None = None) -> str:
    """`text` on one line: newlines, tabs and other control or line-separator characters
    spelled as escapes (`\\n`, `\\x07`, `\\u2028`); cut to `limit` characters with `…`."""
    line = ("" if text is None else str(text)).translate(_VISIBLE)
    if limit is not None and len(line) > limit:
        return line[: max(limit - 1, 0)] + "…"
    return line


def html_text(text: object, limit: int | None = None) -> str:
    """User data for an HTML block (such as a `<summary>` line), where Markdown is not
    parsed: entity-escaped, on one line."""
    return visible(text, limit).translate(_HTML)


def cell(text: object, limit: int | None = None) -> str:
    """User data for inline Markdown, typically one table cell: HTML characters as
    entities, Markdown punctuation (including `|`) backslash-escaped, on one line."""
    return visible(text, limit).translate(_CELL)


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
