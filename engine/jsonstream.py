"""JSON documents written a piece at a time.

`chunks(document, lists)` gives exactly what `json.dumps` gives for `document` in which
each key of `lists` holds that iterable's items as a list, but makes one item's JSON at a
time: a saved plan, a journal's plan record, the state file and the plan digest of
50,000 secrets never exist as one list of dicts or one string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def chunks(document: Mapping[str, Any], lists: Mapping[str, Iterable[Any]], indent: int | None = None,
           sort_keys: bool = False) -> Iterator[str]:
    """`json.dumps(document, indent=indent, sort_keys=sort_keys, ensure_ascii=False)`
    (compact separators without `indent`), with `lists` streamed in place of their keys'
    values. JSON text holds no raw line break, so nested lines are indented by
    inserting spaces after each one."""
    def dump(value: Any, depth: int) -> str:
        if indent is None:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
        text = json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=sort_keys)
        return text.replace("\n", "\n" + " " * (indent * depth))

    if indent is None:
        opening, between, closing, colon = "{", ",", "}", ":"
        first, rest, last = "[", ",", "]"
    else:
        pad = " " * indent
        opening, between, closing, colon = "{\n" + pad, ",\n" + pad, "\n}", ": "
        first, rest, last = "[\n" + pad * 2, ",\n" + pad * 2, "\n" + pad + "]"
    items = sorted(document.items()) if sort_keys else document.items()
    yield opening if document else "{"
    for n, (key, value) in enumerate(items):
        yield (between if n else "") + json.dumps(key, ensure_ascii=False) + colon
        if key not in lists:
            yield dump(value, 1)
            continue
        empty = True
        for item in lists[key]:
            yield (rest if not empty else first) + dump(item, 2)
            empty = False
        yield "[]" if empty else last
    yield closing if document else "}"
