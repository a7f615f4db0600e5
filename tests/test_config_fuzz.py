"""A seeded mutation fuzz of the config loader: a few hundred random corruptions of the
valid configs and the examples never make `load_config` raise anything but ConfigError,
and every problem it reports is one line naming the file and (unless it is about the
whole file) the line, as `file:line[:col]: message`.

The seed is fixed so a failure reproduces; set SECRETSHIFT_FUZZ_SEED (and optionally
SECRETSHIFT_FUZZ_CASES) to explore other corners.
"""

from __future__ import annotations

import base64
import os
import random
import re
import shutil
from pathlib import Path

import pytest

from engine.config import Config, load_config
from engine.errors import ConfigError

ROOT = Path(__file__).parent.parent
VALID = ROOT / "tests" / "data" / "configs" / "valid"
SEED = int(os.environ.get("SECRETSHIFT_FUZZ_SEED", "20261203"))
CASES = int(os.environ.get("SECRETSHIFT_FUZZ_CASES", "1000"))

# Problems about the file as a whole carry no line number; nothing else may lack one.
WHOLE_FILE = re.compile(
    r"^(no such file|is a folder|cannot be read|is larger than 1 MiB|is nested too deeply|is empty"
    r"|expands to more than \d+ values)"
)
SCALARS = ["", "null", "~", "true", "no", "[]", "{}", "42", "-1", "3.5e9", "0x1F", ".inf", "2026-12-03",
           '"quoted"', "'single'", "[a, b]", "{a: 1}", "{env: X}", "{file: nope.key}", "!!binary aGk=",
           "!custom tag", "&anchor v", "*anchor", "*nowhere", "|", ">-", "'unterminated", '"\\u0000"',
           '"\\ud800"', "9" * 400, "- item", "key: value", "@reserved", "`backtick`", "%directive",
           "? complex", "<<: *anchor", "\t", "é\u202eevil", "\U0001F511", "\x85", "\ufeff"]
GARBAGE = [b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\x07", b"\x1b[31m", b"\r", b"\t", b"\x85",
           "\u2028".encode(), "\u00a0".encode(), b"\xc3\x28", b"\xed\xa0\x80", "\U0001F600".encode(), b"{",
           b"[", b"}", b"]", b":", b"- ", b"#", b"&", b"*", b"!", b"|", b">", b"'", b'"', b"%", b"@", b"`",
           b"---\n", b"...\n", b"\n\n", b"<<", b"\\"]


def seeds() -> list[tuple[str, bytes]]:
    """(name, text) of every valid config and every example config."""
    found = sorted(VALID.glob("*.yaml")) + sorted(ROOT.glob("examples/*/secretshift.yaml"))
    assert len(found) >= 4, found
    return [(str(path.relative_to(ROOT)), path.read_bytes()) for path in found]


# ----------------------------------------------------------------------------- mutations

def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def delete_line(rng, data):
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_line(rng, data):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return b"\n".join(lines)


def swap_lines(rng, data):
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def reindent(rng, data):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    stripped = lines[i].lstrip(b" ")
    indent = len(lines[i]) - len(stripped)
    choice = rng.choice([0, max(0, indent - rng.randint(1, 4)), indent + rng.randint(1, 4), -1])
    lines[i] = (b"\t" + stripped) if choice == -1 else b" " * choice + stripped
    return b"\n".join(lines)


def replace_scalar(rng, data):
    text = data.decode("utf-8", "surrogateescape")
    spots = [m for m in re.finditer(r"(?<=: )[^\n#{}\[\],]+|(?<=- )[^\n#]+", text)]
    if not spots:
        return data
    spot = rng.choice(spots)
    new = text[:spot.start()] + rng.choice(SCALARS) + text[spot.end():]
    return new.encode("utf-8", "surrogateescape")


def rename_key(rng, data):
    text = data.decode("utf-8", "surrogateescape")
    keys = list(re.finditer(r"(?m)^(\s*-?\s*)([A-Za-z_][\w-]*)(?=:)", text))
    if not keys:
        return data
    key = rng.choice(keys)
    new_name = rng.choice(["", "version", "managers", "type", "Type", "tyoe", "path", "key", "x" * 80, "0",
                           "true", "null", "ключ", "mode", "from", "to"])
    return (text[:key.start(2)] + new_name + text[key.end(2):]).encode("utf-8", "surrogateescape")


def insert_bytes(rng, data):
    at = rng.randrange(len(data) + 1)
    junk = b"".join(rng.choice(GARBAGE) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.2:
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return data[:at] + junk + data[at:]


def truncate(rng, data):
    return data[:rng.randrange(len(data) + 1)]


MUTATIONS = [delete_line, duplicate_line, swap_lines, reindent, replace_scalar, rename_key, insert_bytes, truncate]


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    applied = []
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        mutation = rng.choice(MUTATIONS)
        data = mutation(rng, data)
        applied.append(mutation.__name__)
    return data, applied


# ----------------------------------------------------------------------------- the fuzz

@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A copy of the valid configs' folder (keys, certs, tokens), the key files the
    examples name, and the variables they all name: so that unmutated, every seed loads."""
    shutil.copytree(VALID, tmp_path / "valid")
    (tmp_path / "valid" / "work").mkdir()
    for key in ("master.key", "fingerprint.key"):
        (tmp_path / "valid" / "work" / key).write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    monkeypatch.setenv("SECRETSHIFT_KEY", base64.b64encode(bytes(range(100, 132))).decode())
    monkeypatch.setenv("SECRETSHIFT_TEST_TOKEN", "fuzz-token")
    monkeypatch.setenv("VAULT_TOKEN", "fuzz-token")
    monkeypatch.setenv("SECRETSHIFT_FINGERPRINT_KEY", base64.b64encode(os.urandom(32)).decode())  # examples/ci
    return tmp_path / "valid"


def check_problem(problem, shown: str, line_count: int) -> str | None:
    """Why `problem` is not a well-formed `file:line: message` problem, or None."""
    text = str(problem)
    if problem.file != shown:
        return f"names {problem.file!r}, not {shown!r}"
    if "\n" in text or "\r" in text or not problem.message.strip():
        return "is not one non-empty line"
    if problem.line is None:
        return None if WHOLE_FILE.match(problem.message) else "has no line number"
    if not 1 <= problem.line <= line_count + 1:
        return f"points at line {problem.line} of a {line_count}-line file"
    if not re.match(rf"{re.escape(shown)}:{problem.line}(:\d+)?: \S", text):
        return "is not in file:line[:col]: form"
    return None


def test_mutated_configs_give_a_config_or_config_errors_with_file_and_line(workdir):
    """Every mutant loads as a Config or raises ConfigError whose problems are each one
    `file:line[:col]: message` line; no other exception, whatever the input."""
    rng = random.Random(SEED)
    corpus = seeds()
    failures, outcomes = [], {"config": 0, "config_error": 0}
    for number in range(CASES):
        name, original = corpus[number % len(corpus)]
        data, applied = mutate(rng, original)
        path = workdir / f"mutant-{number:04}.yaml"
        path.write_bytes(data)
        what = f"case {number} ({name}, {'+'.join(applied)}; kept at {path})"
        try:
            loaded = load_config(path)
        except ConfigError as error:
            outcomes["config_error"] += 1
            if not error.problems:
                failures.append(f"{what}: ConfigError without problems")
            line_count = data.count(b"\n") + 1
            for problem in error.problems:
                why = check_problem(problem, str(path), line_count)
                if why:
                    failures.append(f"{what}: problem {str(problem)[:200]!r} {why}")
        except Exception as error:  # noqa: BLE001 - exactly what this test hunts for
            failures.append(f"{what}: {type(error).__name__}: {str(error)[:200]}")
        else:
            outcomes["config"] += 1
            if not isinstance(loaded, Config):
                failures.append(f"{what}: returned {type(loaded).__name__}")
            path.unlink()
    assert not failures, f"{len(failures)} of {CASES} mutants (seed {SEED}) misbehaved:\n" + "\n".join(failures[:15])
    # the fuzz must exercise both outcomes, or the mutations are too weak or too strong
    assert outcomes["config"] >= CASES // 50 and outcomes["config_error"] >= CASES // 2, outcomes


def test_every_seed_loads_unmutated(workdir):
    """The fuzz starts from configs that are valid where it runs them."""
    for number, (name, data) in enumerate(seeds()):
        path = workdir / f"seed-{number}.yaml"
        path.write_bytes(data)
        assert isinstance(load_config(path), Config), name


BUILTIN = "version: 1\nmanagers:\n  harness: {type: builtin, path: %s, key: %s}\n"
REFS = ("version: 1\nmanagers:\n  harness: {type: builtin, path: h.db, key: {env: SECRETSHIFT_KEY}}\n"
        "references:\n  paths: [%s]\n")

# Mutants that wider runs of the fuzz (other seeds, more cases) turned up, kept as fixed
# cases: a NUL, a lone surrogate or a newline inside a path-like value. Each must be one
# ConfigError problem at its line naming the key, never another exception, never a
# message broken over two lines, and never a Config that fails later.
FOUND = {
    "nul-in-key-file": (BUILTIN % ("h.db", '{file: "keys/\\0master.key"}'), 3, "managers.harness.key"),
    "lone-surrogate-in-key-file": (BUILTIN % ("h.db", '{file: "k\\udfff.key"}'), 3, "managers.harness.key"),
    "newline-in-key-file": (BUILTIN % ("h.db", '{file: "keys/master\\n.key"}'), 3, "managers.harness.key"),
    "nul-in-store-path": (BUILTIN % ('"h\\0.db"', "{env: SECRETSHIFT_KEY}"), 3, "managers.harness.path"),
    "lone-surrogate-in-store-path": (BUILTIN % ('"h\\ud800.db"', "{env: SECRETSHIFT_KEY}"), 3,
                                     "managers.harness.path"),
    "nul-in-reference-path": (REFS % '"p\\0/*.yaml"', 5, "references.paths[0]"),
    "lone-surrogate-in-reference-path": (REFS % '"p\\ud800/*.yaml"', 5, "references.paths[0]"),
}


@pytest.mark.parametrize("case", list(FOUND))
def test_inputs_the_fuzz_found_give_one_problem_at_their_line(workdir, case):
    text, line, key = FOUND[case]
    path = workdir / f"{case}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert [p.line for p in problems] == [line], [str(p) for p in problems]
    assert check_problem(problems[0], str(path), text.count("\n") + 1) is None, str(problems[0])
    assert key in problems[0].message, str(problems[0])


def test_the_mutations_are_seeded_and_reproducible():
    corpus = seeds()
    first = [mutate(random.Random(SEED), data) for _, data in corpus]
    again = [mutate(random.Random(SEED), data) for _, data in corpus]
    assert first == again
