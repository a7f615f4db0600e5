"""Which secret a location reference names, and the same reference for a new location.

Pure: no I/O. A `Place` describes, per manager, what a reference can name there: the
manager's own `location()` of each secret, and for Vault the API path (`data/` after
the mount on KV v2), address, namespace and KV version; for AWS the region. A
reference names a secret when its path is that secret's location in a manager of the
reference's type (and of its address/region, when the reference says). When several
managers fit, the ones that hold the secret decide.

`broken_references` lists, for the actions of a plan that delete a source copy (move,
delete, update in move mode), every reference naming that copy's location, with its
replacement at the target, or why there is none. Copies leave references working.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.locscan import ANSIBLE, VALS_AWS, VALS_VAULT, LocationReference
from engine.model import Kind, SecretId
from engine.plan import Action, BrokenReference

_PATH_SAFE = "/-_.~:@=!*()$&,;"  # kept as written in a vals path; the rest is percent-encoded


@dataclass(frozen=True)
class Place:
    """What a location reference can name in one manager (see the module docstring)."""

    manager: str
    type: str  # the manager type: vault, aws_secrets_manager, builtin...
    location: Callable[[SecretId], str]
    api_path: Callable[[SecretId], str] | None = None  # vault: the path as the API takes it
    kv_version: int | None = None
    address: str | None = None
    namespace: str = ""
    region: str | None = None
    file_encoding: str = "base64"


def names(ref: LocationReference, place: Place) -> SecretId | None:
    """The secret whose location in `place` the reference names, or None."""
    if ref.syntax in (VALS_VAULT, ANSIBLE) and place.type == "vault" and _same_vault(ref, place):
        candidates = _candidates(ref.path)
    elif (ref.syntax == VALS_AWS and place.type == "aws_secrets_manager"
          and ref.option("region") in (None, place.region)):
        candidates = _candidates(ref.path)
    else:
        return None
    return next((s for s in candidates if s.name and ref.path in _paths(place, s)), None)


def _paths(place: Place, secret: SecretId) -> set[str]:
    """How a reference may write the secret's location: the logical one and, for Vault,
    the API path (with `data/` on KV v2)."""
    return {place.location(secret), place.api_path(secret) if place.api_path else place.location(secret)}


def resolve(ref: LocationReference, places: Sequence[Place],
            holders: Callable[[SecretId], Iterable[str]]) -> list[tuple[str, SecretId]]:
    """The (manager, secret) pairs the reference may name: every place it fits, narrowed
    to the managers holding the secret when that leaves any. More than one: ambiguous."""
    fits = [(p.manager, s) for p in places if (s := names(ref, p)) is not None]
    held = [(m, s) for m, s in fits if m in set(holders(s))]
    return held or fits


def replacement(ref: LocationReference, secret: SecretId, source: Place,
                target: Place) -> tuple[str | None, str | None]:
    """(the reference rewritten to name `secret` in `target`, None) or (None, why not)."""
    if target.type not in ("vault", "aws_secrets_manager"):
        return None, f"manager {target.manager!r} ({target.type}) has no location a reference can name"
    if secret.kind is Kind.FILE and (source.type != target.type or source.file_encoding != target.file_encoding):
        return None, ("a file secret is stored differently there (Vault keeps files base64-encoded, "
                      "AWS as binary), so the reference would read other bytes")
    if ref.syntax == ANSIBLE:
        if target.type != "vault":
            return None, "a hashi_vault lookup reads only Vault; use another lookup for AWS Secrets Manager"
        if ref.option("namespace") is not None and not target.namespace:
            return None, f"the lookup names namespace {ref.option('namespace')!r}; manager {target.manager!r} has none"
        return _lookup_text(ref, secret, source, target), None
    if target.type == "vault":
        if source.type != "vault" and ref.field is not None:
            return None, (f"the reference reads key {ref.field!r} inside the secret's JSON; Vault keeps the "
                          "whole text under the field 'value'")
        return _vals_vault(ref, secret, source, target), None
    if source.type != "aws_secrets_manager" and ref.field != "value":
        return None, (f"the reference reads {'field ' + repr(ref.field) if ref.field else 'every field'} of the "
                      "Vault secret; AWS Secrets Manager holds the text itself")
    return _vals_aws(ref, secret, source, target), None


def broken_references(actions: Iterable[Action], refs: Iterable[LocationReference], places: Mapping[str, Place],
                      holders: Callable[[SecretId], Iterable[str]]) -> tuple[BrokenReference, ...]:
    """Every reference naming a location that an action of the plan deletes, ordered by
    file, line and column."""
    deleting = {(a.source, a.id): a for a in actions if a.source and (a.delete_source or a.action == "delete")}
    broken = []
    for ref in refs:
        named = resolve(ref, list(places.values()), holders)
        hits = [deleting[n] for n in named if n in deleting]
        if not hits:
            continue
        action = hits[0]
        if len(named) > 1:
            managers = " and ".join(sorted(m for m, _ in named))
            text, reason = None, f"it may name the location in {managers}; add the address to tell them apart"
        else:
            text, reason = replacement(ref, action.id, places[action.source], places[action.target])
        broken.append(BrokenReference(ref.file, ref.line, ref.column, ref.text, text, reason, ref.syntax,
                                      action.id, action.source, action.target))
    return tuple(sorted(broken, key=lambda b: (b.file, b.line, b.column)))


# --- matching ---------------------------------------------------------------------------

def _candidates(path: str) -> list[SecretId]:
    """The secrets a location path may name: each ending of it (names may hold '/'),
    shortest first, as text and as file; `names` keeps the one whose location it is."""
    segments = path.split("/")
    endings = ("/".join(segments[i:]) for i in range(len(segments) - 1, -1, -1))
    return [SecretId(kind, name) for name in endings for kind in (Kind.TEXT, Kind.FILE)]


def _same_vault(ref: LocationReference, place: Place) -> bool:
    address = ref.option("address") or ref.option("url")
    if address and _normal_address(address) != _normal_address(place.address or ""):
        return False
    namespace = ref.option("namespace")
    return namespace is None or namespace.strip("/") == place.namespace


def _normal_address(address: str) -> str:
    parts = urllib.parse.urlsplit(address.strip().rstrip("/"))
    host = (parts.hostname or "").lower()
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


def _same_option(option: str, written: str, value: str) -> bool:
    if option == "url":
        return _normal_address(written) == _normal_address(value)
    return written.strip("/") == value.strip("/")


# --- writing references -------------------------------------------------------------------

def _vault_path(ref: LocationReference, secret: SecretId, source: Place, target: Place) -> str:
    """The target path in the style of the reference: with `data/` on KV v2, unless the
    reference named a KV v2 secret by its logical path (as newer vals accepts)."""
    logical_style = source.type == "vault" and source.kv_version == 2 and ref.path == source.location(secret)
    if target.kv_version == 2 and not (logical_style and ref.syntax != ANSIBLE):
        return target.api_path(secret)
    return target.location(secret)


def _vals_vault(ref: LocationReference, secret: SecretId, source: Place, target: Place) -> str:
    options = [(k, v) for k, v in ref.query if k not in ("version", "host", "proto")] if source.type == "vault" else []
    options = _set_option(options, "address", target.address,
                          ref.option("address") is not None or source.address != target.address)
    options = _set_option(options, "namespace", target.namespace or None,
                          ref.option("namespace") is not None or source.namespace != target.namespace)
    fragment = ref.fragment if source.type == "vault" and ref.fragment is not None else "/value"
    return _vals_text(ref.prefix, "vault", _vault_path(ref, secret, source, target), options, fragment)


def _vals_aws(ref: LocationReference, secret: SecretId, source: Place, target: Place) -> str:
    same = source.type == "aws_secrets_manager"
    options = [(k, v) for k, v in ref.query if k not in ("version_id", "version_stage")] if same else []
    options = _set_option(options, "region", target.region,
                          ref.option("region") is not None or source.region != target.region)
    scheme = ref.scheme if same else "awssecrets"
    return _vals_text(ref.prefix, scheme, target.location(secret), options, ref.fragment if same else None)


def _vals_text(prefix: str, scheme: str, path: str, options: list[tuple[str, str]], fragment: str | None) -> str:
    text = f"{prefix}+{scheme}://{urllib.parse.quote(path, safe=_PATH_SAFE)}"
    if options:
        text += "?" + "&".join(f"{k}={urllib.parse.quote(v, safe='/:@')}" for k, v in options)
    return text + (f"#{fragment}" if fragment is not None else "")


def _set_option(options: list[tuple[str, str]], key: str, value: str | None, wanted: bool) -> list[tuple[str, str]]:
    """`options` with `key` set to `value` (in place, or appended) when wanted; removed
    when the new value is None."""
    if not wanted:
        return options
    if value is None:
        return [(k, v) for k, v in options if k != key]
    if any(k == key for k, _ in options):
        return [(k, value if k == key else v) for k, v in options]
    return [*options, (key, value)]


def _lookup_text(ref: LocationReference, secret: SecretId, source: Place, target: Place) -> str:
    """The lookup call with the path (and the url/namespace, if the target needs other
    ones) rewritten; options not written yet are added to the term string."""
    edits = [(start, end, _vault_path(ref, secret, source, target)) for what, start, end in ref.spans if what == "path"]
    additions = []
    for option, value, current in (("url", target.address, source.address),
                                   ("namespace", target.namespace, source.namespace)):
        span = next(((s, e) for what, s, e in ref.spans if what == option), None)
        if span is not None:
            if value and not _same_option(option, ref.text[span[0]:span[1]], value):
                edits.append((*span, value))
        elif value and value != current:
            additions.append(f" {option}={value}")
    text = ref.text
    if additions:
        edits.append((ref.term_end, ref.term_end, "".join(additions)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def places_of(backends: Mapping[str, object]) -> dict[str, Place]:
    """The Place of each manager, from its backend's own settings and `location()`.
    Reads attributes only; a Vault backend's mount layout is detected on first use (the
    refresh before planning has done that)."""
    places = {}
    for manager, backend in backends.items():
        kind = backend.type_name
        if kind == "vault":
            layout = backend.layout()
            places[manager] = Place(manager, kind, backend.location, layout.data_path, layout.version,
                                    backend.address, backend.namespace, file_encoding=backend.file_encoding)
        elif kind == "aws_secrets_manager":
            places[manager] = Place(manager, kind, backend.location, region=backend.region)
        else:
            places[manager] = Place(manager, kind, backend.location)
    return places
