"""Command line: parse arguments, call ONE function of commands.py, print, exit code.

Exit codes: 0 success, 1 any error (usage errors included), 2 `plan
--detailed-exitcode` found changes. Errors are one line on stderr; `--debug` adds the
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from engine import __version__, commands
from engine.errors import ConfigError, SecretShiftError

DESCRIPTION = """\
Move secrets between secrets managers, declaratively and reviewably.

Declare managers and where each secret must live in secretshift.yaml; `plan` shows the
moves, copies and clean-ups (never a value); `apply` carries them out, reading every
write back before it deletes the source."""

EPILOG = """\
typical use:
  secretshift validate                 check the config and reach every manager
  secretshift plan --out plan.json     review what would change (commit or attach it)
  secretshift apply plan.json          carry out exactly that plan
  secretshift rollback                 undo the last apply
  secretshift history                  every apply and rollback: when, who, how it ended
  secretshift show plan.json --format markdown   the plan as a pull-request comment
  secretshift refs                     list pipeline references and whether they resolve
  secretshift discover corp_vault >> secretshift.yaml   adopt what a manager already holds

every command takes -c/--config PATH (default: ./secretshift.yaml), before or after its name."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors; the contract says 1 (2 means "plan has changes")."""

    usage_error: str | None = None  # the last one, for `--format json` (see main)

    def error(self, message: str):
        _Parser.usage_error = f"{self.prog}: error: {message}"
        self.print_usage(sys.stderr)
        self.exit(1, f"{_Parser.usage_error}\n")


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("-c", "--config", metavar="PATH", default=default,
                        help="config file (default: ./secretshift.yaml)")
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show a traceback on errors")
    parser.add_argument("--no-color", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="never colour the output")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="print only what was asked for (a plan, a value) and errors: no progress")


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar."""
    parser = _Parser(prog="secretshift", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"secretshift {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, description: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description or help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p, top=False)
        return p

    command("validate", "check the config, its schema, and that every manager is reachable")
    p = command("plan", "show what apply would do (no values are ever shown)",
                "Read what every manager holds, compare with the config, and print the actions.\n"
                "Exit codes: 0 success, 1 error (including plan errors), 2 changes (with --detailed-exitcode).")
    p.add_argument("--out", metavar="FILE", help="also save the plan as JSON, to apply later with `apply FILE`")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text", help="output format")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 0 when there are no changes and 2 when there are")
    p.add_argument("--refresh-only", action="store_true",
                   help="show only the drift since the last apply (changes made outside secretshift); "
                        "with --detailed-exitcode exit 2 when there is drift")
    p.add_argument("--no-write-check", action="store_true",
                   help="do not ask the managers whether these credentials may write and delete (a plan "
                        "made with read-only credentials, e.g. in CI); apply checks its own before any write")
    p = command("show", "render a saved plan file as text, JSON or Markdown (reads no manager, needs no config)",
                "Render a plan saved by `plan --out FILE`, e.g. as Markdown for a pull-request comment.\n"
                "Only the file is read: no config and no manager is needed.")
    p.add_argument("plan_file", metavar="FILE", help="a saved plan")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text", help="output format")
    p = command("apply", "carry out a plan: write, read back and compare, then delete the source",
                "Without FILE: plan now, show it and ask for confirmation.\n"
                "With FILE (from `plan --out`): apply exactly that plan; refused if anything changed since.")
    p.add_argument("plan_file", nargs="?", metavar="FILE", help="a saved plan")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force-unlock", metavar="LOCK_ID",
                   help="break the apply lock with this id (only if its holder is really dead)")
    p.add_argument("--rewrite-references", action="store_true",
                   help="also rewrite the references naming a location the plan deletes (vals ref+vault://, "
                        "ref+awssecrets://, Ansible hashi_vault lookups) to the new one; shows the diff first")
    p = command("rollback", "undo the last apply: restore deleted sources and overwritten targets",
                "Undo the last apply from its encrypted journal: put back every source it deleted\n"
                "and every target value it overwrote, remove what it created, verify each step.\n"
                "Refused, with nothing changed, if any of those secrets changed since.")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force-unlock", metavar="LOCK_ID", help="break the apply lock with this id")
    p = command("history", "list every apply, resume and rollback run: when, who, how it ended (no values)",
                "One line per run, oldest first: start time, kind, apply id, status, actions done\n"
                "of the total and their outcomes, duration, user@host. Reads only the history file\n"
                "beside the config (.secretshift/history/): no manager is contacted.")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="json: the stored records as one JSON array")
    p = command("put", "store a secret's value in one manager (from stdin, or --from-file)",
                "Store a value. Text comes from stdin exactly as given (use printf, not echo, to avoid\n"
                "a trailing newline); --from-file stores a file's bytes.")
    p.add_argument("manager")
    p.add_argument("name")
    p.add_argument("--kind", choices=["text", "file"], default="text")
    p.add_argument("--from-file", metavar="PATH", help="read the value from this file")
    p = command("get", "print one secret's raw bytes to stdout")
    p.add_argument("manager")
    p.add_argument("name")
    p.add_argument("--kind", choices=["text", "file"], default="text")
    p = command("list", "list the kinds and names one manager holds (no values)")
    p.add_argument("manager")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p = command("discover", "print YAML placing every secret a manager holds, to paste into the config",
                "Print a secrets: block adopting every secret MANAGER holds where it is (merged into\n"
                "the config, it plans only no-ops), or with --migrate-to a migrations: block moving\n"
                "them to OTHER. Names and kinds only: no value is printed. What is left out (Vault\n"
                "paths it cannot map, AWS secrets pending deletion, names OTHER cannot hold) is listed\n"
                "with its reason in comments at the top, and summed up on stderr.")
    p.add_argument("manager")
    p.add_argument("--migrate-to", metavar="OTHER", help="print a migration from MANAGER to this manager")
    p.add_argument("--mode", choices=["move", "copy"], default="copy",
                   help="mode of the printed migration (default copy: the source keeps its secrets)")
    p.add_argument("--vault-keys", choices=["auto", "split", "whole"], default="auto",
                   help="a Vault secret outside the Harness layout becomes one text secret per key "
                        "(split, named PATH_KEY) or one JSON text secret (whole); auto: whole when "
                        "migrating to AWS, else split")
    p = command("refs", "list every reference expression with file:line:col and whether it resolves",
                "Scan PATHs (files or folders), or the config's references.paths, for\n"
                '${secrets.getValue("n")}, ${configFile.getAsBase64("n")}, ${configFile.getAsString("n")}\n'
                'and <+secrets.getValue("n")> expressions.')
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p = command("render", "print FILE with every reference replaced by its value")
    p.add_argument("file", metavar="FILE")
    return parser


def _run(args: argparse.Namespace) -> int:
    color = not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    cfg = args.config
    say = (lambda message: None) if args.quiet else print
    if args.command == "validate":
        say(commands.validate(cfg))
        return 0
    if args.command == "plan":
        text, code = commands.plan(cfg, args.format, args.out, args.detailed_exitcode, color,
                                   warn=lambda message: print(message, file=sys.stderr),
                                   refresh_only=args.refresh_only, write_check=not args.no_write_check)
        sys.stdout.write(text)
        return code
    if args.command == "show":
        sys.stdout.write(commands.show(args.plan_file, args.format, color))
        return 0
    if args.command == "apply":
        console = commands.Console(out=say, err=lambda m: print(m, file=sys.stderr), ask=_ask, color=color)
        return commands.apply(cfg, args.plan_file, args.auto_approve, console, args.force_unlock,
                              args.rewrite_references)
    if args.command == "rollback":
        console = commands.Console(out=say, err=lambda m: print(m, file=sys.stderr), ask=_ask, color=color)
        return commands.rollback(cfg, args.auto_approve, console, args.force_unlock)
    if args.command == "history":
        sys.stdout.write(commands.history(cfg, args.format))
        return 0
    if args.command == "put":
        data = _read_input(args.from_file)
        stored = commands.put(cfg, args.manager, args.name, args.kind, data)
        if not args.quiet:
            print(stored, file=sys.stderr)
        return 0
    if args.command == "get":
        sys.stdout.buffer.write(commands.get(cfg, args.manager, args.name, args.kind))
        sys.stdout.flush()
        return 0
    if args.command == "list":
        sys.stdout.write(commands.list_secrets(cfg, args.manager, args.format))
        return 0
    if args.command == "discover":
        text, summary = commands.discover(cfg, args.manager, args.migrate_to, args.mode, args.vault_keys)
        sys.stdout.write(text)
        if not args.quiet:
            print(summary, file=sys.stderr)
        return 0
    if args.command == "refs":
        text, code = commands.refs(cfg, args.paths, args.format)
        sys.stdout.write(text)
        return code
    if args.command == "render":
        sys.stdout.buffer.write(commands.render(cfg, args.file))
        sys.stdout.flush()
        return 0
    raise AssertionError(args.command)


def _read_input(path: str | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise SecretShiftError(f"cannot read {path}: {error.strerror}") from None


def _ask(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip() == "yes"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `secretshift` console script."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # a usage error: as JSON too when JSON was asked for
        if stop.code == 1 and _Parser.usage_error and _asks_for_json(argv):
            print(json.dumps({"errors": [{"message": _Parser.usage_error}]}, indent=2, ensure_ascii=False))
        raise
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as error:  # noqa: BLE001 - every error ends as one line (and exit 1)
        for line in _error_lines(error):
            print(f"error: {line}", file=sys.stderr)
        if getattr(args, "format", None) == "json":  # machines asked for JSON: errors come as JSON too
            print(json.dumps({"errors": _error_records(error)}, indent=2, ensure_ascii=False))
        if args.debug:
            traceback.print_exc()
        return 1


def _asks_for_json(argv: list[str]) -> bool:
    """`--format json` (or `--format=json`) among arguments argparse refused."""
    return "--format=json" in argv or any(a == "--format" and b == "json" for a, b in zip(argv, argv[1:]))


def _error_records(error: Exception) -> list[dict]:
    """The errors for `--format json`: config problems keep their file, line and column."""
    if isinstance(error, ConfigError):
        return [{"file": p.file, "line": p.line, "column": p.column, "message": p.message} for p in error.problems]
    return [{"message": line} for line in _error_lines(error)]


def _error_lines(error: Exception) -> list[str]:
    if isinstance(error, ConfigError):
        return [str(problem) for problem in error.problems]
    if isinstance(error, SecretShiftError):
        return [str(error)]
    # an unexpected bug: name it, never print its message (it may hold data)
    return [f"internal error ({type(error).__name__}); run with --debug for the traceback"]
