"""Behaviour of engine.references: finding secret references in messy pipeline files and
rendering those files with the secrets' values."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from engine.errors import SecretShiftError
from engine.model import Kind
from engine.references import Reference, UnresolvedReference, render, scan

DATA = Path(__file__).parent / "data" / "references"
TEXT, FILE = Kind.TEXT, Kind.FILE
GET, B64, STR = "secrets.getValue", "configFile.getAsBase64", "configFile.getAsString"


def refs(text: str) -> list[tuple]:
    """(line, column, syntax, function, name, scope) of every reference in `text`."""
    return [
        (r.line, r.column, r.syntax, r.function, r.name, r.scope) for r in scan(text, "f").references
    ]


def names(text: str) -> list[str]:
    return [r.name for r in scan(text, "f").references]


def unresolvable(text: str) -> list[tuple]:
    return [(u.line, u.column, u.text, u.reason) for u in scan(text, "f").unresolvable]


# --- what is recognised ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('${secrets.getValue("db")}', ("firstgen", GET, "db", None, TEXT)),
        ("${secrets.getValue('db')}", ("firstgen", GET, "db", None, TEXT)),
        ('${configFile.getAsBase64("tls.crt")}', ("firstgen", B64, "tls.crt", None, FILE)),
        ('${configFile.getAsString("app.conf")}', ("firstgen", STR, "app.conf", None, FILE)),
        ('<+secrets.getValue("db")>', ("nextgen", GET, "db", "project", TEXT)),
        ('<+secrets.getValue("org.db")>', ("nextgen", GET, "db", "org", TEXT)),
        ("<+secrets.getValue('account.db')>", ("nextgen", GET, "db", "account", TEXT)),
        ('<+configFile.getAsString("kube")>', ("nextgen", STR, "kube", "project", FILE)),
        ('<+configFile.getAsBase64("account.p12")>', ("nextgen", B64, "p12", "account", FILE)),
        ('<+secrets.getValue("project.db")>', ("nextgen", GET, "project.db", "project", TEXT)),
        ('${secrets.getValue("account.db")}', ("firstgen", GET, "account.db", None, TEXT)),
        ('${secrets.getValue(  "db"  )}', ("firstgen", GET, "db", None, TEXT)),
        ('<+ secrets.getValue ("db") >', ("nextgen", GET, "db", "project", TEXT)),
        ('<+secrets.getValue("o\'brien")>', ("nextgen", GET, "o'brien", "project", TEXT)),
        ('<+secrets.getValue("Prod DB pass")>', ("nextgen", GET, "Prod DB pass", "project", TEXT)),
    ],
)
def test_each_function_syntax_quote_and_scope_is_recognised(text, expected):
    """Every contract form gives the right syntax, function, name, scope and kind."""
    (ref,) = scan("x " + text + " y", "p.yaml").references
    assert (ref.syntax, ref.function, ref.name, ref.scope, ref.kind) == expected
    assert (ref.file, ref.line, ref.column, ref.start, ref.end) == ("p.yaml", 1, 3, 2, 2 + len(text))


def test_to_dict_has_the_contract_keys_and_plain_json_values():
    """Reference/Unresolvable.to_dict give exactly the JSON keys of `refs --format json`."""
    result = scan('a\n  <+secrets.getValue("org.db")> ${secrets.getValue(x)}', "p.yaml")
    assert result.references[0].to_dict() == {
        "file": "p.yaml", "line": 2, "column": 3, "syntax": "nextgen",
        "function": "secrets.getValue", "name": "db", "scope": "org", "kind": "text",
    }
    assert result.unresolvable[0].to_dict() == {
        "file": "p.yaml", "line": 2, "column": 33, "text": "${secrets.getValue(x)}",
        "reason": "the name is not a quoted string (a variable evaluated at run time)",
    }
    json.dumps(result.references[0].to_dict())  # serialisable as is


def test_several_expressions_on_one_line_each_get_their_column():
    line = 'X=${secrets.getValue("a")}${secrets.getValue("b")} Y=<+secrets.getValue("c")>|<+configFile.getAsString("d")>'
    assert refs(line) == [
        (1, 3, "firstgen", GET, "a", None),
        (1, 27, "firstgen", GET, "b", None),
        (1, 54, "nextgen", GET, "c", "project"),
        (1, 79, "nextgen", STR, "d", "project"),
    ]


def test_column_counts_characters_not_bytes_and_crlf_lines_count_once():
    text = 'é€ ${secrets.getValue("a")}\r\n\tx <+secrets.getValue("b")>\r\n'
    assert refs(text) == [(1, 4, "firstgen", GET, "a", None), (2, 4, "nextgen", GET, "b", "project")]


def test_expression_in_yaml_block_scalar_shell_script():
    text = (
        "script: |\n"
        "  set -e\n"
        "  psql -c 'select 1' \"password=${secrets.getValue(\"db\")}\"\n"
    )
    assert refs(text) == [(3, 32, "firstgen", GET, "db", None)]


def test_expression_in_yaml_and_shell_comments_still_counts():
    """Harness substitutes before bash runs, so a reference in a comment must resolve too."""
    text = '# uses <+secrets.getValue("a")>\nscript: |\n  # and ${secrets.getValue("b")}\n'
    assert refs(text) == [(1, 8, "nextgen", GET, "a", "project"), (3, 9, "firstgen", GET, "b", None)]


def test_backslash_escaped_quotes_in_a_double_quoted_string():
    text = 'command: "echo ${secrets.getValue(\\"db_password\\")}"'
    assert refs(text) == [(1, 16, "firstgen", GET, "db_password", None)]


def test_doubly_escaped_quotes_of_json_inside_a_json_string():
    text = '{"body": "{\\"k\\": \\"<+secrets.getValue(\\\\\\"nested_json\\\\\\")>\\"}"}'
    assert names(text) == ["nested_json"]
    assert json.loads(json.loads(text)["body"]) == {"k": '<+secrets.getValue("nested_json")>'}


def test_yaml_single_quoted_string_with_doubled_quotes():
    text = "body: 'x=<+secrets.getValue(''single'')> y=<+secrets.getValue('''')>'"
    assert names(text) == ["single"]
    assert yaml.safe_load(text)["body"].startswith("x=<+secrets.getValue('single')>")
    assert unresolvable(text) == [
        (1, 44, "<+secrets.getValue('''')>", "the name is empty")
    ]


def test_closing_quote_must_match_the_opening_one():
    assert unresolvable('<+secrets.getValue(\\"db")>') == [
        (1, 1, '<+secrets.getValue(\\"db")>', 'the quoted name is not closed by \\" as it was opened')
    ]


# --- folded and multi-line expressions --------------------------------------------------


def test_line_break_and_indentation_inside_the_parentheses():
    text = 'a: "echo ${secrets.getValue(\n    \\"db_password\\"\n    )}"\nb: <+secrets.getValue(\n    "x")>'
    assert refs(text) == [(1, 10, "firstgen", GET, "db_password", None), (4, 4, "nextgen", GET, "x", "project")]
    assert yaml.safe_load(text) == {"a": 'echo ${secrets.getValue( "db_password" )}',
                                    "b": '<+secrets.getValue( "x")>'}


def test_yaml_escaped_line_break_inside_the_function_and_the_name():
    """A backslash at the end of a double-quoted YAML line joins it to the next, minus indentation."""
    text = 'k: "<+secrets.get\\\n    Value(\\"db_\\\n    password\\"\\\n    )>"\n'
    assert yaml.safe_load(text) == {"k": '<+secrets.getValue("db_password")>'}
    assert refs(text) == [(1, 5, "nextgen", GET, "db_password", "project")]


def test_name_broken_by_a_plain_line_break_is_not_guessed():
    text = '<+secrets.getValue("my\n  secret")>'
    assert unresolvable(text) == [(1, 1, text, "the quoted name is not closed on its line")]


@pytest.mark.parametrize("width", [20, 30, 45, 60, 80])
@pytest.mark.parametrize("style", ['"', None, "|"])
def test_whatever_pyyaml_emits_scans_like_its_parsed_value(width, style):
    """Folding by a real YAML emitter never hides or invents a reference."""
    script = (
        'docker login -p "<+secrets.getValue(\\"account.registry_password\\")>" r.example.com && '
        "export K=<+secrets.getValue('org.api_key')> && echo <+configFile.getAsBase64(\"ca\")> | "
        'base64 -d && curl "${secrets.getValue("fg_token")}" https://x.example.com/a/b/c'
    )
    emitted = yaml.dump({"script": script}, default_style=style, width=width)
    assert yaml.safe_load(emitted) == {"script": script}
    expected = [("registry_password", "account"), ("api_key", "org"), ("ca", "project"), ("fg_token", None)]
    assert [(r.name, r.scope) for r in scan(emitted, "e.yaml").references] == expected
    assert scan(emitted, "e.yaml").unresolvable == ()


# --- look-alikes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<+pipeline.variables.x>",
        '<+exportedVariables.getValue("x")>',
        '<+secrets.getValueX("x")>',
        '<+secrets.getValue_old("x")>',
        '${mysecrets.getValue("x")}',
        '${secrets.getvalue("x")}',
        '${configFile.getAsBytes("x")}',
        'secrets.getValue("x")',
        'echo "secrets.getValue(\\"x\\")"',
        "<+secrets.getValue>",
        "<+stage.variables.secrets.getValue>",
        '$ {secrets.getValue("x")}',
        '< +secrets.getValue("x")>',
        '{secrets.getValue("x")}',
    ],
)
def test_look_alikes_are_neither_references_nor_unresolvable(text):
    result = scan(f"a {text} b\n", "f")
    assert (result.references, result.unresolvable) == ((), ())


def test_double_dollar_is_a_reference_at_the_second_dollar():
    """Harness has no $$ escape: its FirstGen matcher finds ${...} inside $${...}."""
    assert refs('echo "$${secrets.getValue("x")}"') == [(1, 8, "firstgen", GET, "x", None)]


# --- names known only at run time -------------------------------------------------------


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("<+secrets.getValue(<+pipeline.variables.env>)>",
         "the name comes from a nested expression evaluated at run time"),
        ('<+secrets.getValue("db_" + <+env.name>)>', "the name is built at run time by concatenation"),
        ('${secrets.getValue("db_" + env)}', "the name is built at run time by concatenation"),
        ("${secrets.getValue(variable)}", "the name is not a quoted string (a variable evaluated at run time)"),
        ('${secrets.getValue("db_${env.name}")}', "the name contains a nested expression evaluated at run time"),
        ('<+secrets.getValue("")>', "the name is empty"),
        ("<+secrets.getValue()>", "no name is given"),
        ('<+secrets.getValue("org.")>', "the name is empty after the scope prefix 'org'"),
        ('<+secrets.getValue("a", "b")>', "secrets.getValue takes one quoted name and nothing else"),
        ('<+secrets.getValue("a").toUpperCase()>',
         'the expression goes on after secrets.getValue(...); only a bare secrets.getValue("name") can be resolved'),
        ('<+secrets.getValue("a")}', "the expression opened with '<+' is closed by '}'"),
        ('<+secrets.getValue("hashicorpvault://myVault/harness/db#value")>',
         "the name is a location in a secrets manager (scheme://...), read directly by the "
         "pipeline, not a secret that secretshift can move"),
        ('<+secrets.getValue("account.awssecretsmanager://aws/prod/db")>',
         "the name is a location in a secrets manager (scheme://...), read directly by the "
         "pipeline, not a secret that secretshift can move"),
        ('${secrets.getValue("hashicorpvault://myVault/harness/APP_DYNAMICS/k#value")}',
         "the name is a location in a secrets manager (scheme://...), read directly by the "
         "pipeline, not a secret that secretshift can move"),
    ],
)
def test_names_known_only_at_run_time_are_unresolvable_with_a_reason(expression, reason):
    text = f"value: {expression} # end\n"
    result = scan(text, "p.yaml")
    assert result.unresolvable[0].to_dict() == {
        "file": "p.yaml", "line": 1, "column": 8, "text": expression, "reason": reason,
    }
    assert [r for r in result.references if r.start == 7] == []


def test_unterminated_expression_shows_the_rest_of_its_line():
    text = 'a\necho "<+secrets.getValue("db")" && exit 1\n<+secrets.getValue("ok")>\n'
    assert unresolvable(text) == [
        (2, 7, '<+secrets.getValue("db")" && exit 1', "unterminated expression: no closing '>' found")
    ]
    assert names(text) == ["ok"]


def test_reference_nested_in_an_unresolvable_expression_is_still_found():
    text = '<+secrets.getValue(<+secrets.getValue("env_name")>)>'
    assert refs(text) == [(1, 20, "nextgen", GET, "env_name", "project")]
    assert [u[:2] for u in unresolvable(text)] == [(1, 1)]


def test_conditional_expression_yields_both_branches():
    text = '<+<+pipeline.variables.env> == "prod" ? <+secrets.getValue("p")> : <+secrets.getValue("d")>>'
    assert names(text) == ["p", "d"]
    assert unresolvable(text) == []


# --- size ---------------------------------------------------------------------------------


def test_one_mebibyte_with_ten_thousand_expressions_is_scanned_exactly():
    forms = [
        '  - run: echo "${{secrets.getValue(\\"name_{i}\\")}}" # padding padding padding padding\n',
        "    script: export V=<+secrets.getValue('org.name_{i}')> && deploy --verbose --wait\n",
        '    body: {{"k": "<+configFile.getAsBase64(\\"name_{i}\\")>", "pad": "xxxxxxxxxxxxxxxx"}}\n',
    ]
    lines = [forms[i % 3].format(i=i) for i in range(10_000)]
    filler = "# " + "-" * 77 + "\n"
    text = "".join(lines)
    text += filler * ((1024 * 1024 - len(text)) // len(filler) + 1)
    assert len(text) >= 1024 * 1024
    found = scan(text, "big.yaml").references
    assert len(found) == 10_000
    assert [r.name for r in found] == [f"name_{i}" for i in range(10_000)]
    assert [r.line for r in found] == list(range(1, 10_001))
    assert [r.column for r in found[:3]] == [16, 22, 18]


@pytest.mark.parametrize(
    "unit, count",
    [
        ("<+secrets.getValue(", 0),
        ('<+secrets.getValue("', 0),
        ("${secrets.getValue(x'", 0),
        ("<+secrets.getValue(\\", 0),
        ("<+secrets.getValue(\\\n", 0),
        ("<+secrets.getValue((((((((", 0),
        ("<+", 0),
        ('<+secrets.getValue("a")>', 1),
    ],
)
def test_pathological_input_is_scanned_completely(unit, count):
    """Unterminated openers by the tens of thousands: every one is reported once."""
    repeats = 10_000
    result = scan(unit * repeats, "f")
    assert len(result.references) == count * repeats
    if unit.startswith("<+secrets"):
        assert len(result.references) + len(result.unresolvable) == repeats


# --- realistic fixtures ---------------------------------------------------------------------

FIXTURES = {
    "firstgen_workflow.yaml": {
        "references": [
            (4, 22, "firstgen", GET, "db_password", None),
            (21, 30, "firstgen", GET, "db_password", None),
            (22, 37, "firstgen", GET, "registry_token", None),
            (23, 39, "firstgen", GET, "db_user", None),
            (24, 39, "firstgen", GET, "db_user", None),
            (24, 70, "firstgen", GET, "db_schema", None),
            (25, 18, "firstgen", GET, "dollar_escaped", None),
            (26, 24, "firstgen", B64, "tls.crt", None),
            (28, 11, "firstgen", STR, "app.properties", None),
            (38, 40, "firstgen", GET, "hooks_token", None),
            (39, 45, "firstgen", GET, "hooks_key", None),
            (42, 15, "firstgen", GET, "template_secret", None),
        ],
        "unresolvable": [
            (32, 20, "${secrets.getValue(${workflow.variables.vaultUser})}",
             "the name comes from a nested expression evaluated at run time"),
            (33, 17, "${secrets.getValue(dbVariable)}",
             "the name is not a quoted string (a variable evaluated at run time)"),
        ],
        "comment_references": ["db_password"],
    },
    "nextgen_pipeline.yaml": {
        "references": [
            (7, 11, "nextgen", GET, "dockerhub_token", "account"),
            (26, 49, "nextgen", GET, "dockerhub_token", "account"),
            (27, 46, "nextgen", GET, "db_password", "org"),
            (27, 93, "nextgen", GET, "api_key", "project"),
            (28, 33, "nextgen", B64, "kubeconfig", "project"),
            (29, 33, "nextgen", GET, "license_file", "project"),
            (30, 29, "nextgen", GET, "commented_out", "project"),
            (36, 32, "nextgen", GET, "smtp_password", "project"),
            (54, 59, "nextgen", GET, "slack_path", "project"),
            (58, 39, "nextgen", GET, "slack_token", "org"),
            (62, 40, "nextgen", GET, "signing_key", "project"),
            (73, 72, "nextgen", GET, "prod_key", "project"),
            (73, 106, "nextgen", GET, "dev_key", "project"),
        ],
        "unresolvable": [
            (39, 32, "<+secrets.getValue(<+pipeline.variables.env>)>",
             "the name comes from a nested expression evaluated at run time"),
            (42, 32, '<+secrets.getValue("db_" + <+env.name>)>',
             "the name is built at run time by concatenation"),
            (45, 32, '<+secrets.getValue("hashicorpvault://corpVault/payments/db#password")>',
             "the name is a location in a secrets manager (scheme://...), read directly by the "
             "pipeline, not a secret that secretshift can move"),
            (48, 32, '<+secrets.getValue("account.awssecretsmanager://awsConn/prod/api")>',
             "the name is a location in a secrets manager (scheme://...), read directly by the "
             "pipeline, not a secret that secretshift can move"),
        ],
        "comment_references": ["dockerhub_token"],
    },
    "nextgen_folded.yaml": {
        "references": [
            (17, 23, "nextgen", GET, "registry_password", "account"),
            (19, 32, "nextgen", GET, "helm_token", "org"),
            (22, 45, "nextgen", GET, "db_password", "project"),
            (23, 99, "nextgen", STR, "root_ca", "project"),
            (25, 34, "nextgen", GET, "split_word", "project"),
            (36, 58, "nextgen", GET, "folded_api_key", "project"),
            (48, 42, "nextgen", GET, "plain_folded_token", "project"),
            (59, 41, "nextgen", GET, "single_quoted_key", "project"),
            (60, 28, "nextgen", B64, "client_cert", "org"),
        ],
        "unresolvable": [],
        "comment_references": [],
    },
    "nextgen_pipeline.json": {
        "references": [
            (6, 54, "nextgen", GET, "smoke_api_key", "account"),
            (22, 62, "nextgen", GET, "smoke_api_key", "project"),
            (23, 53, "nextgen", GET, "json_in_json", "project"),
            (23, 110, "nextgen", B64, "client_p12", "project"),
            (32, 89, "nextgen", GET, "check_a", "org"),
        ],
        "unresolvable": [
            (32, 128, '<+secrets.getValue(\\"\\")>', "the name is empty"),
            (32, 168, '<+secrets.getValue(\\"azurevault://kv/app-key\\")>',
             "the name is a location in a secrets manager (scheme://...), read directly by the "
             "pipeline, not a secret that secretshift can move"),
            (32, 235, '<+secrets.getValue(\\"unterminated\\"\\n"}}',
             "unterminated expression: no closing '>' found"),
        ],
        "comment_references": [],
    },
    "firstgen_hooks.sh": {
        "references": [
            (3, 17, "firstgen", GET, "hook_token", None),
            (3, 66, "firstgen", STR, "ca.pem", None),
            (6, 8, "firstgen", GET, "hook_token", None),
            (6, 49, "firstgen", GET, "hook_user", None),
            (6, 91, "firstgen", GET, "hook_schema", None),
            (9, 1, "firstgen", STR, "ca.pem", None),
            (11, 7, "firstgen", B64, "keystore.p12", None),
            (13, 24, "firstgen", GET, "hook_db_password", None),
        ],
        "unresolvable": [
            (15, 9, '${secrets.getValue("hook_${name}")}',
             "the name contains a nested expression evaluated at run time"),
            (17, 7, '${secrets.getValue("hook_token")" # missing brace',
             "unterminated expression: no closing '}' found"),
        ],
        "comment_references": [],
    },
}


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_fixture_full_scan(fixture):
    """Each realistic pipeline file gives exactly the expected references and unresolvables."""
    text = (DATA / fixture).read_text(encoding="utf-8")
    result = scan(text, fixture)
    assert refs(text) == FIXTURES[fixture]["references"]
    assert unresolvable(text) == FIXTURES[fixture]["unresolvable"]
    lines = text.split("\n")
    for ref in result.references:
        assert ref.file == fixture
        assert lines[ref.line - 1][ref.column - 1:].startswith(text[ref.start:ref.start + 2])
        assert ref.kind is (TEXT if ref.function == GET else FILE)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


@pytest.mark.parametrize("fixture", sorted(f for f in FIXTURES if f.endswith((".yaml", ".json"))))
def test_fixture_raw_scan_agrees_with_its_parsed_strings(fixture):
    """Scanning the raw file finds what Harness sees after parsing it, plus comment references."""
    text = (DATA / fixture).read_text(encoding="utf-8")
    document = json.loads(text) if fixture.endswith(".json") else yaml.safe_load(text)
    parsed = Counter()
    parsed_unresolvable = Counter()
    for value in _strings(document):
        result = scan(value, "v")
        parsed.update((r.function, r.name, r.scope) for r in result.references)
        parsed_unresolvable.update(u.reason for u in result.unresolvable)
    raw = Counter((r.function, r.name, r.scope) for r in scan(text, fixture).references)
    comments = Counter(n for n in FIXTURES[fixture]["comment_references"])
    assert Counter(name for _, name, _ in (raw - parsed).elements()) == comments
    assert parsed - raw == Counter()
    assert parsed_unresolvable == Counter(u[3] for u in FIXTURES[fixture]["unresolvable"])


# --- render ---------------------------------------------------------------------------------

PIPELINE = """\
pipeline:
  identifier: deploy
  # needs <+secrets.getValue("account.registry")>
  steps:
    - script: |
        docker login -p '<+secrets.getValue("account.registry")>' r.example.com
        echo "${configFile.getAsBase64("tls.crt")}" | base64 -d > tls.crt
        cat > ca.pem <<EOF
        ${configFile.getAsString("ca.pem")}
        EOF
        psql "password=${secrets.getValue(\\"db\\")} user=<+secrets.getValue('org.user')>"
"""

VALUES = {
    (TEXT, "registry"): b"r3g!stry",
    (FILE, "tls.crt"): b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    (FILE, "ca.pem"): b"CA\xff\x00\xfe",
    (TEXT, "db"): "pässword".encode(),
    (TEXT, "user"): b"app",
}


def _value_of(store):
    return lambda ref: store.get((ref.kind, ref.name))


def test_render_round_trip_of_a_realistic_pipeline():
    rendered = render(PIPELINE, scan(PIPELINE, "p.yaml").references, _value_of(VALUES))
    tls = base64.b64encode(VALUES[(FILE, "tls.crt")])
    expected = (
        b"pipeline:\n  identifier: deploy\n  # needs r3g!stry\n  steps:\n    - script: |\n"
        b"        docker login -p 'r3g!stry' r.example.com\n"
        b'        echo "' + tls + b'" | base64 -d > tls.crt\n'
        b"        cat > ca.pem <<EOF\n"
        b"        CA\xff\x00\xfe\n"
        b"        EOF\n"
        b'        psql "password=p\xc3\xa4ssword user=app"\n'
    )
    assert rendered == expected


def test_render_is_byte_identical_whichever_manager_serves_the_values():
    """The migration guarantee: same values from another store give the same bytes."""
    moved = {key: bytes(value) for key, value in reversed(list(VALUES.items()))}
    references = scan(PIPELINE, "p.yaml").references
    assert render(PIPELINE, references, _value_of(VALUES)) == render(PIPELINE, references, _value_of(moved))


def test_get_as_base64_renders_base64_and_get_as_string_raw_bytes():
    text = '<+configFile.getAsBase64("k")>|${configFile.getAsString("k")}|${configFile.getAsBase64("k")}'
    keystore = b"\x30\x82\x00\x00PKCS12\x00\xff"
    rendered = render(text, scan(text, "f").references, lambda ref: keystore)
    encoded = base64.b64encode(keystore)
    assert rendered == encoded + b"|" + keystore + b"|" + encoded


def test_a_value_containing_an_expression_is_not_expanded_again():
    text = 'a=${secrets.getValue("outer")} b=<+secrets.getValue("other")>'
    store = {(TEXT, "outer"): b'${secrets.getValue("other")}', (TEXT, "other"): b"OTHER"}
    rendered = render(text, scan(text, "f").references, _value_of(store))
    assert rendered == b'a=${secrets.getValue("other")} b=OTHER'


def test_text_between_references_is_kept_byte_for_byte():
    raw = b"\xef\xbb\xbfk: \xff\xfe caf\xc3\xa9 ${secrets.getValue(\"a\")}\r\n\tend\x00"
    text = raw.decode("utf-8", "surrogateescape")
    rendered = render(text, scan(text, "f").references, lambda ref: b"A")
    assert rendered == raw.replace(b'${secrets.getValue("a")}', b"A")
    assert render(text, [], lambda ref: None) == raw


def test_unresolved_reference_names_file_line_and_secret_but_no_value():
    text = 'x: <+secrets.getValue("known")>\ny:   <+secrets.getValue("org.missing")>\n'
    store = {(TEXT, "known"): b"CANARY-VALUE-123"}
    with pytest.raises(UnresolvedReference) as raised:
        render(text, scan(text, "pipe.yaml").references, _value_of(store))
    message = str(raised.value)
    assert isinstance(raised.value, SecretShiftError)
    assert "pipe.yaml:2:6" in message and "'missing'" in message
    assert "CANARY" not in message
    assert raised.value.reference.name == "missing"


def test_render_refuses_references_that_do_not_belong_to_the_text():
    text = '<+secrets.getValue("a")>'
    (ref,) = scan(text, "f").references
    shifted = Reference(**{**ref.__dict__, "start": 1, "end": ref.end})
    with pytest.raises(ValueError):
        render(text, [shifted], lambda r: b"v")
    with pytest.raises(ValueError):
        render(text, [ref, ref], lambda r: b"v")


def test_render_keeps_unresolvable_expressions_as_written():
    text = '<+secrets.getValue(<+pipeline.variables.env>)> <+secrets.getValue("a")>'
    assert render(text, scan(text, "f").references, lambda r: b"A") == (
        b"<+secrets.getValue(<+pipeline.variables.env>)> A"
    )
