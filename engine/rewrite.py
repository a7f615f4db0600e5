"""`apply --rewrite-references`: rewrite the references a plan breaks, as part of it.

A plan lists the references naming a location it deletes (`Plan.broken_references`,
computed by locrefs.py). Apply with `--rewrite-references` carries out exactly those
rewrites, in three steps around the secret actions:

1. `prepare`, before the first secret write: every listed file must be one of the
   config's `references.paths` and still hold, at each listed line and column, the
   expected text (or, after an interrupted run, already the replacement: then that file
   counts as done). Each reference is scanned again and its replacement recomputed from
   the config; a plan file whose rewrites this config could not have produced is refused.
   Anything else refuses the apply as stale, with nothing written anywhere.
2. `diff`: the unified diff of every pending file (only the changed lines, no context,
   so no other line of a pipeline is printed), shown before apply asks.
3. `write`, only after every secret action succeeded and was verified: each file is
   replaced atomically (a temporary file beside it, same mode, fsynced, renamed), after
   checking it did not change since step 1.

A listed path may be a symbolic link: the file it points to is the one checked and
rewritten, so the link stays a link, and a file reached by several listed paths (a link
and the file itself) is rewritten once.

`finish_last` does the same for the last apply's plan when nothing is left to move (that
apply ran without the flag, or stopped between its last secret and the files).
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PlanError, SecretShiftError, StalePlan
from engine.journal import JournalState, fsync_folder
from engine.locrefs import names, places_of, replacement
from engine.locscan import scan_locations
from engine.plan import BrokenReference, Plan
from engine.planning import display_path, read_text, reference_files
from engine.workspace import Workspace


@dataclass(frozen=True)
class FileRewrite:
    """One file's rewrite: its content before and after."""

    path: Path  # the real file, links resolved: the one written
    shown: str  # the path as plans show it
    before: str
    after: str
    listed: tuple[Path, ...]  # the listed paths that reach it: each must still lead there when writing


def prepare(ws: Workspace, plan: Plan) -> list[FileRewrite]:
    """Check the plan's rewrites against the files and the config (step 1); return the
    files still to rewrite. Raises StalePlan/PlanError, before anything is written."""
    listed = [b for b in plan.broken_references if b.replacement is not None]
    if not listed:
        return []
    files = {display_path(p): p for p in reference_files(ws)}
    by_real: dict[Path, list[BrokenReference]] = defaultdict(list)
    for broken in listed:
        if broken.file not in files:
            raise PlanError(f"the plan rewrites {broken.file}, which is not among the config's references.paths "
                            f"files (run apply from the folder plan ran in); nothing was written")
        by_real[files[broken.file].resolve()].append(broken)
    pending = []
    for real, refs in sorted(by_real.items(), key=lambda item: min(b.file for b in item[1])):
        before = read_text(real) or ""
        after = _rewritten(before, _once(refs))
        if after is not None:
            shown = min(b.file for b in refs)
            _check_produced(ws, plan, before, shown, refs)
            pending.append(FileRewrite(real, shown, before, after, tuple(sorted({files[b.file] for b in refs}))))
    return pending


def prepare_and_show(ws: Workspace, plan: Plan, console) -> list[FileRewrite]:
    """`prepare`, then print the diff of what is pending (before apply asks)."""
    rewrites = prepare(ws, plan)
    if rewrites:
        say(console, "References to rewrite once every action is verified (--rewrite-references):\n"
            + diff(rewrites))
    return rewrites


def finish_last(ws: Workspace, last: JournalState | None, auto_approve: bool, console) -> bool:
    """When every secret is in place already: rewrite the references the `last` apply's
    plan broke that are still pending (it ran without the flag, or stopped after its last
    secret), with the same checks, diff and question. False when the user declined."""
    if last is None or not last.finished or not last.plan.broken_references:
        return True
    try:
        rewrites = prepare_and_show(ws, last.plan, console)
    except PlanError as error:
        console.err(f"warning: the references of apply {last.apply_id} cannot be rewritten now: {error}")
        return True
    if not rewrites:
        return True
    if not auto_approve and not console.ask("Rewrite these references? Only 'yes' will be accepted: "):
        console.err("Rewrite cancelled; nothing was changed.")
        return False
    write(rewrites)
    say(console, summary(last.plan, True))
    return True


def say(console, text: str) -> None:
    """Print `text` through the console, unless it is empty."""
    if text:
        console.out(text.rstrip("\n"))


def diff(rewrites: list[FileRewrite]) -> str:
    """The unified diff of the pending rewrites (changed lines only)."""
    chunks = []
    for rewrite in rewrites:
        chunks += difflib.unified_diff(rewrite.before.splitlines(keepends=True),
                                       rewrite.after.splitlines(keepends=True),
                                       f"a/{rewrite.shown}", f"b/{rewrite.shown}", n=0)
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def write(rewrites: list[FileRewrite]) -> None:
    """Replace each file atomically with its rewritten content (step 3). A file changed
    since `prepare`, or a listed link now pointing elsewhere, is left alone (an error)."""
    for rewrite in rewrites:
        if any(p.resolve() != rewrite.path for p in rewrite.listed) or read_text(rewrite.path) != rewrite.before:
            raise SecretShiftError(f"{rewrite.shown} changed while apply ran; its references were not rewritten "
                                   f"(the secrets were moved): run `secretshift plan` and rewrite them by hand")
        _replace_file(rewrite.path, rewrite.after.encode("utf-8", "surrogateescape"))


def summary(plan: Plan, rewritten: bool) -> str:
    """One sentence on the plan's broken references after apply ("" when there are none);
    `rewritten` says whether apply ran with --rewrite-references."""
    total = len(plan.broken_references)
    if not total:
        return ""
    if not rewritten:
        return (f"{_count(total, 'reference')} naming where a secret was still point{'s' if total == 1 else ''} "
                f"there (listed in the plan); `apply --rewrite-references` rewrites them.")
    cannot = sum(1 for b in plan.broken_references if b.replacement is None)
    done = total - cannot
    texts = [f"{_count(done, 'reference')} naming a location now name{'s' if done == 1 else ''} the new one."] \
        if done else []
    if cannot:
        texts.append(f"{_count(cannot, 'reference')} could not be rewritten and no longer "
                     f"work{'s' if cannot == 1 else ''} (see the plan).")
    return " ".join(texts)


# --- checking -----------------------------------------------------------------------------

def _once(refs: list[BrokenReference]) -> list[BrokenReference]:
    """The references of one file by line and column, each place once: a file listed
    through a link and its own path has every reference listed twice."""
    return sorted({(b.line, b.column): b for b in refs}.values(), key=lambda b: (b.line, b.column))


def _rewritten(text: str, refs: list[BrokenReference]) -> str | None:
    """`text` with every reference replaced; None when every replacement is in place
    already (an earlier run rewrote the file). Raises StalePlan when the file holds
    neither state."""
    starts = _line_starts(text)
    shift: dict[int, int] = defaultdict(int)  # per line: how far earlier rewrites move later columns
    pending, done = [], []
    for ref in refs:
        offset = _offset(starts, ref.line, ref.column)
        pending.append(offset is not None and text.startswith(ref.text, offset))
        moved = None if offset is None else offset + shift[ref.line]
        done.append(moved is not None and text.startswith(ref.replacement, moved))
        shift[ref.line] += len(ref.replacement) - len(ref.text)
    if all(done):
        return None
    if not all(pending):
        ref = refs[pending.index(False)]
        raise StalePlan(f"stale plan: {ref.file}:{ref.line}:{ref.column} no longer holds {ref.text!r}; "
                        f"nothing was written. Run plan again")
    for ref in reversed(refs):
        offset = _offset(starts, ref.line, ref.column)
        text = text[:offset] + ref.replacement + text[offset + len(ref.text):]
    return text


def _check_produced(ws: Workspace, plan: Plan, text: str, shown: str, refs: list[BrokenReference]) -> None:
    """Refuse rewrites that this config would not produce from this file (an edited plan)."""
    places = places_of(ws.backends())
    scanned = {(r.line, r.column): r for r in scan_locations(text, shown)}
    deleting = {(a.id, a.source, a.target) for a in plan.changes if a.delete_source or a.action == "delete"}
    for broken in refs:
        ref = scanned.get((broken.line, broken.column))
        fits = (ref is not None and ref.text == broken.text and broken.source in places and broken.target in places
                and (broken.id, broken.source, broken.target) in deleting
                and names(ref, places[broken.source]) == broken.id
                and replacement(ref, broken.id, places[broken.source], places[broken.target])[0] == broken.replacement)
        if not fits:
            raise PlanError(f"the plan's rewrite of {broken.file}:{broken.line}:{broken.column} is not one this "
                            f"config produces for that reference; nothing was written. Run plan again")


def _line_starts(text: str) -> list[int]:
    return [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]


def _offset(starts: list[int], line: int, column: int) -> int | None:
    if not 1 <= line <= len(starts):
        return None
    return starts[line - 1] + column - 1


# --- writing ------------------------------------------------------------------------------

def _replace_file(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path` with its mode, fsync, rename over it.
    `path` is the real file: renaming over a link would replace the link, not its target."""
    mode = path.stat().st_mode & 0o7777
    tmp = path.with_name(f".{path.name}.secretshift-tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise SecretShiftError(f"cannot rewrite {path}: {error.strerror}") from None
    with contextlib.suppress(OSError):
        fsync_folder(path.parent)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
