"""Location references without servers: scanning each syntax (locscan.py), mapping a
reference to the secret and manager it names, the replacement at a new location
(locrefs.py), and what apply says about them (rewrite.py). Places are built as
`places_of` builds them from real backends."""

from __future__ import annotations

import pytest

from engine.locrefs import Place, broken_references, replacement, resolve
from engine.locscan import ANSIBLE, VALS_AWS, VALS_VAULT, scan_locations
from engine.model import Kind, SecretId
from engine.plan import Action
from engine.render.markdown import render_markdown
from engine.render.markup import cell
from engine.rewrite import summary

TEXT, FILE = Kind.TEXT, Kind.FILE
FOLDERS = {TEXT: "SECRET_TEXT", FILE: "CONFIG_FILE"}


def vault(manager: str, mount: str, base: str, kv: int, address: str = "https://vault.example.com:8200",
          namespace: str = "") -> Place:
    def location(secret: SecretId, middle: str = "") -> str:
        return "/".join(p for p in (mount, middle, base, FOLDERS[secret.kind], secret.name) if p)

    def api_path(secret: SecretId) -> str:
        return location(secret, "data" if kv == 2 else "")

    return Place(manager, "vault", location, api_path, kv, address, namespace)


def aws(manager: str, prefix: str, region: str = "eu-west-1") -> Place:
    return Place(manager, "aws_secrets_manager",
                 lambda s: f"{prefix}{'files/' if s.kind is FILE else ''}{s.name}", region=region)


OLD_V2, OLD_V1 = vault("old", "secret", "harness", 2), vault("legacy", "kv", "team/app", 1)
NEW = vault("new", "platform", "apps", 2, address="https://vault2.example.com")
AWS = aws("aws", "prod/")
BUILTIN = Place("harness", "builtin", lambda s: f"harness.db:{s.kind.value}/{s.name}")
DB = SecretId(TEXT, "db_password")


def one(text: str):
    found = scan_locations(text, "p.yaml")
    assert len(found) == 1, found
    return found[0]


# --- scanning ---------------------------------------------------------------------------

def test_vals_references_are_found_with_position_path_field_and_options():
    text = 'a: 1\nurl: "x ref+vault://secret/data/harness/SECRET_TEXT/db%20pw?version=3&address=https://v:8200#/value"\n'
    ref = one(text)
    assert (ref.line, ref.column, ref.syntax) == (2, 9, VALS_VAULT)
    assert ref.text == "ref+vault://secret/data/harness/SECRET_TEXT/db%20pw?version=3&address=https://v:8200#/value"
    assert (ref.path, ref.field, ref.option("version"), ref.option("address")) == \
        ("secret/data/harness/SECRET_TEXT/db pw", "value", "3", "https://v:8200")
    aws_ref = one("k: secretref+awssecrets://prod/db_password#/user+")
    assert (aws_ref.syntax, aws_ref.prefix, aws_ref.path, aws_ref.field) == (VALS_AWS, "secretref", "prod/db_password", "user")
    assert aws_ref.text == "secretref+awssecrets://prod/db_password#/user"  # vals ends a reference at '+'


def test_ansible_lookups_are_found_in_term_and_keyword_form():
    text = ("x: \"{{ lookup('hashi_vault', 'secret=secret/data/harness/SECRET_TEXT/db_password:value "
            "token=t url=https://vault.example.com:8200') }}\"\n"
            "y: \"{{ query('community.hashi_vault.hashi_vault', 'secret/data/app:pw', url='https://v:8200') }}\"\n"
            "z: \"{{ lookup('hashi_vault', my_term_variable) }}\"\n")
    first, second = scan_locations(text, "site.yml")
    assert (first.syntax, first.line, first.column, first.path, first.field) == \
        (ANSIBLE, 1, 8, "secret/data/harness/SECRET_TEXT/db_password", "value")
    assert first.option("url") == "https://vault.example.com:8200"
    assert (second.line, second.path, second.field, second.option("url")) == (2, "secret/data/app", "pw", "https://v:8200")
    assert second.text.endswith("url='https://v:8200')")


def test_look_alikes_are_not_location_references():
    assert scan_locations('a: ${secrets.getValue("hashicorpvault://conn/path#key")}\n'
                          "b: href+vault://x\nc: lookup('file', 'x')\nd: ref+awsssm://p\n", "p.yaml") == []


# --- naming and rewriting --------------------------------------------------------------------

def test_a_reference_names_a_secret_by_api_path_or_logical_path_only_where_the_layout_fits():
    for text in ("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value",
                 "ref+vault://secret/harness/SECRET_TEXT/db_password#/value"):
        assert resolve(one(text), [OLD_V2, OLD_V1, NEW, AWS, BUILTIN], lambda s: []) == [("old", DB)]
    assert resolve(one("ref+vault://secret/data/other/SECRET_TEXT/db_password"), [OLD_V2], lambda s: []) == []
    assert resolve(one("ref+vault://secret/data/harness/SECRET_TEXT/db_password?address=https://elsewhere:8200"),
                   [OLD_V2], lambda s: []) == []
    assert resolve(one("ref+awssecrets://prod/files/kubeconfig"), [AWS], lambda s: []) == \
        [("aws", SecretId(FILE, "kubeconfig"))]
    assert resolve(one("ref+awssecrets://prod/db_password?region=us-east-1"), [AWS], lambda s: []) == []


def test_two_vaults_with_the_same_layout_are_told_apart_by_what_they_hold():
    twin = vault("twin", "secret", "harness", 2, address="https://other:8200")
    ref = one("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value")
    assert resolve(ref, [OLD_V2, twin], lambda s: ["twin"]) == [("twin", DB)]
    assert len(resolve(ref, [OLD_V2, twin], lambda s: ["old", "twin"])) == 2
    move = Action("move", DB, "old", "new", NEW.location(DB), None, delete_source=True)
    (broken,) = broken_references([move], [ref], {"old": OLD_V2, "twin": twin, "new": NEW}, lambda s: ["old", "twin"])
    assert broken.replacement is None and "old and twin" in broken.reason


@pytest.mark.parametrize(("text", "target", "expected"), [
    ("ref+vault://secret/data/harness/SECRET_TEXT/db_password?version=2&token_env=T#/value", NEW,
     "ref+vault://platform/data/apps/SECRET_TEXT/db_password?token_env=T&address=https://vault2.example.com#/value"),
    ("ref+vault://secret/harness/SECRET_TEXT/db_password#value", NEW,  # logical style stays logical
     "ref+vault://platform/apps/SECRET_TEXT/db_password?address=https://vault2.example.com#value"),
    ("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value", OLD_V1,
     "ref+vault://kv/team/app/SECRET_TEXT/db_password#/value"),
    ("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value", AWS,
     "ref+awssecrets://prod/db_password?region=eu-west-1"),
])
def test_vals_vault_references_are_rewritten_in_the_targets_syntax(text, target, expected):
    assert replacement(one(text), DB, OLD_V2, target) == (expected, None)


def test_aws_references_are_rewritten_within_aws_and_to_vault():
    ref = one("ref+awssecrets://prod/db_password?version_stage=AWSPREVIOUS")
    assert replacement(ref, DB, AWS, aws("aws2", "team/", "us-east-1")) == \
        ("ref+awssecrets://team/db_password?region=us-east-1", None)
    assert replacement(ref, DB, AWS, NEW) == \
        ("ref+vault://platform/data/apps/SECRET_TEXT/db_password?address=https://vault2.example.com#/value", None)


@pytest.mark.parametrize(("text", "secret", "source", "target", "why"), [
    ("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value", DB, OLD_V2, BUILTIN, "has no location"),
    ("ref+vault://secret/data/harness/CONFIG_FILE/tls.pem#/value", SecretId(FILE, "tls.pem"), OLD_V2, AWS,
     "stored differently"),
    ("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/user", DB, OLD_V2, AWS, "field 'user'"),
    ("ref+awssecrets://prod/db_password#/user", DB, AWS, NEW, "key 'user' inside the secret's JSON"),
    ("lookup('hashi_vault', 'secret/data/harness/SECRET_TEXT/db_password:value')", DB, OLD_V2, AWS,
     "reads only Vault"),
])
def test_what_the_target_cannot_express_is_not_rewritten_and_says_why(text, secret, source, target, why):
    new, reason = replacement(one(text), secret, source, target)
    assert new is None and why in reason


def test_a_lookup_keeps_its_field_and_options_and_gets_the_targets_url():
    term = one("lookup('hashi_vault', 'secret=secret/data/harness/SECRET_TEXT/db_password:value token=t')")
    assert replacement(term, DB, OLD_V2, NEW)[0] == ("lookup('hashi_vault', 'secret=platform/data/apps/SECRET_TEXT/"
                                                     "db_password:value token=t url=https://vault2.example.com')")
    keyword = one("lookup('hashi_vault', 'secret/data/harness/SECRET_TEXT/db_password:value', "
                  "url='https://vault.example.com:8200')")
    assert replacement(keyword, DB, OLD_V2, NEW)[0] == ("lookup('hashi_vault', 'platform/data/apps/SECRET_TEXT/"
                                                        "db_password:value', url='https://vault2.example.com')")


def test_only_actions_that_delete_the_source_break_references():
    ref = one("ref+vault://secret/data/harness/SECRET_TEXT/db_password#/value")
    places = {"old": OLD_V2, "new": NEW}
    actions = {kind: Action(kind, DB, "old", "new", NEW.location(DB), None, delete_source=kind != "copy")
               for kind in ("move", "copy", "delete", "update")}
    for kind, action in actions.items():
        broken = broken_references([action], [ref], places, lambda s: ["old"])
        assert len(broken) == (0 if kind == "copy" else 1), kind
    keep = Action("update", DB, "old", "new", NEW.location(DB), None, delete_source=False)
    assert broken_references([keep], [ref], places, lambda s: ["old"]) == ()


def test_markdown_escapes_a_hostile_reference_text():
    from engine.plan import BrokenReference, Plan

    hostile = "ref+vault://a|b/<script>/SECRET_TEXT/x#/value"
    plan = Plan((), broken_references=(BrokenReference("p|<b>.yaml", 1, 1, hostile, None, "no | way <i>", VALS_VAULT,
                                                       DB, "old", "new"),))
    rendered = render_markdown(plan)
    row = next(line for line in rendered.splitlines() if line.startswith("| <code>p"))
    assert "<script>" not in rendered and "<b>" not in row and cell(hostile) in row
    assert row.count("|") - row.count("\\|") == 5


def test_a_lookup_in_a_namespace_the_target_lacks_is_not_rewritten_and_an_equal_url_is_kept():
    in_team = vault("old", "secret", "harness", 2, namespace="team")
    ref = one("lookup('hashi_vault', 'secret/data/harness/SECRET_TEXT/db_password:value namespace=team')")
    assert resolve(ref, [OLD_V2, in_team], lambda s: []) == [("old", DB)]
    assert replacement(ref, DB, in_team, NEW) == (None, "the lookup names namespace 'team'; manager 'new' has none")
    same_host = vault("new", "platform", "apps", 2, address="https://VAULT.example.com:443")
    local = one("lookup('hashi_vault', 'secret/data/harness/SECRET_TEXT/db_password:value url=https://vault.example.com')")
    assert replacement(local, DB, OLD_V2, same_host)[0] == \
        "lookup('hashi_vault', 'platform/data/apps/SECRET_TEXT/db_password:value url=https://vault.example.com')"


@pytest.mark.parametrize(("cannot", "expected"), [
    (1, "1 reference naming a location now names the new one. "
        "1 reference could not be rewritten and no longer works (see the plan)."),
    (2, "1 reference naming a location now names the new one. "
        "2 references could not be rewritten and no longer work (see the plan)."),
])
def test_the_apply_summary_agrees_in_number_with_the_references_it_counts(cannot, expected):
    from engine.plan import BrokenReference, Plan

    def broken(line: int, new: str | None) -> BrokenReference:
        return BrokenReference("p.yaml", line, 1, "ref+vault://a/x", new, None if new else "no", VALS_VAULT,
                               DB, "old", "new")

    plan = Plan((), broken_references=(broken(1, "ref+vault://b/x"), *(broken(2 + i, None) for i in range(cannot))))
    assert summary(plan, True) == expected
