"""NameMap: identity <-> physical names of one manager (pure, no I/O)."""

import pytest

from engine.backends.naming import IDENTITY, NameMap, name_map_problems
from engine.model import Kind, SecretId

TEXT, FILE = Kind.TEXT, Kind.FILE
MAP = NameMap({" ": "+", "#": "=", "ü": "ue"}, {SecretId(TEXT, "legacy name"): "LEGACY"})


@pytest.mark.parametrize(("name", "physical"), [
    ("db password", "db+password"), ("api key#1", "api+key=1"), ("grüße", "grueße"),
    ("plain_name", "plain_name"), ("legacy name", "LEGACY"),
])
def test_names_map_to_physical_names_and_back(name, physical):
    secret = SecretId(TEXT, name)
    assert MAP.physical(secret) == physical
    assert MAP.identity(TEXT, physical) == secret
    assert MAP.round_trip_problem(secret) is None


def test_renames_are_per_kind():
    assert MAP.physical(SecretId(FILE, "legacy name")) == "legacy+name"
    assert MAP.identity(FILE, "LEGACY") == SecretId(FILE, "LEGACY")


@pytest.mark.parametrize("physical", ["has space", "legacy+name", "hash#"])
def test_physical_names_the_map_would_not_produce_are_not_secrets(physical):
    """A space is stored as '+', so 'has space' is nobody's physical name; the renamed
    secret lives only at its rename."""
    assert MAP.identity(TEXT, physical) is None


def test_a_name_that_reads_back_as_another_is_a_problem():
    problem = MAP.round_trip_problem(SecretId(TEXT, "a+b"), "aws")
    assert problem is not None and "reads back as 'a b'" in problem and "rename: {aws: NEW-NAME}" in problem


def test_a_clash_with_a_renamed_secret_is_left_to_the_plan():
    """It is a conflict between two secrets there, not a problem of one name."""
    assert MAP.round_trip_problem(SecretId(TEXT, "LEGACY")) is None


def test_the_empty_map_is_the_identity():
    secret = SecretId(TEXT, "any name ✓")
    assert IDENTITY.physical(secret) == secret.name and IDENTITY.identity(TEXT, secret.name) == secret


def test_longest_replacement_is_undone_first():
    names = NameMap({"ü": "ue", "ö": "u"})
    assert name_map_problems(names.chars) == []
    assert names.physical(SecretId(TEXT, "üö")) == "ueu"
    assert names.identity(TEXT, "ueu") == SecretId(TEXT, "üö")
    assert "reads back as 'ü'" in names.round_trip_problem(SecretId(TEXT, "öe"))


@pytest.mark.parametrize(("name_map", "problem"), [
    ({" ": "_", "#": "_"}, "several characters map to '_'"),
    ({" ": "a-", "-": "="}, "contains '-', which is itself replaced"),
])
def test_ambiguous_maps_are_refused(name_map, problem):
    assert any(problem in p for p in name_map_problems(name_map))
