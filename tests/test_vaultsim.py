"""The Vault simulator answers like Vault (api-facts.md sections 0-4), through hvac and raw HTTP."""

from __future__ import annotations

import http.client
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import hvac
import hvac.exceptions as hx
import pytest
import requests

from vaultsim import VaultServer

READONLY = 'path "secret/*" { capabilities = ["read", "list"] }'
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


@pytest.fixture
def srv():
    with VaultServer(root_token="root") as server:
        server.enable_kv("secret", version=2)
        server.enable_kv("kv1", version=1)
        yield server


@pytest.fixture
def client(srv):
    return hvac.Client(url=srv.url, token="root")


def raw(srv, method, path, token="root", **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["X-Vault-Token"] = token
    return requests.request(method, f"{srv.url}/v1/{path}", headers=headers, timeout=5, **kw)


# --- KV v2 ---------------------------------------------------------------------------
def test_v2_round_trip_versions_and_metadata(client):
    """Writes create versions 1, 2; reads return data+metadata; ?version= reads old ones."""
    kv = client.secrets.kv.v2
    first = kv.create_or_update_secret("app/db", {"password": "a"})
    assert first["data"]["version"] == 1 and first["data"]["deletion_time"] == ""
    assert TS.match(first["data"]["created_time"])
    kv.create_or_update_secret("app/db", {"password": "b", "n": {"x": 1}})
    latest = kv.read_secret_version("app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"password": "b", "n": {"x": 1}}
    assert latest["data"]["metadata"]["version"] == 2
    old = kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)
    assert old["data"]["data"] == {"password": "a"}
    meta = kv.read_secret_metadata("app/db")["data"]
    assert meta["current_version"] == 2 and meta["oldest_version"] == 0
    assert sorted(meta["versions"]) == ["1", "2"] and meta["custom_metadata"] is None
    assert meta["delete_version_after"] == "0s" and meta["max_versions"] == 0


def test_v2_missing_and_future_versions_are_plain_404(srv, client):
    """A missing key and a version above current are 404 {"errors":[]}."""
    client.secrets.kv.v2.create_or_update_secret("k", {"a": "1"})
    for path in ("secret/data/nope", "secret/data/k?version=7", "secret/metadata/nope"):
        resp = raw(srv, "GET", path)
        assert (resp.status_code, resp.json()) == (404, {"errors": []})
        assert resp.headers["Content-Type"] == "application/json"
    with pytest.raises(hx.InvalidPath):
        client.secrets.kv.v2.read_secret_version("nope", raise_on_deleted_version=False)


def test_v2_cas_rules(srv, client):
    """cas must equal the current version; cas=0 only creates; mismatch wording is Vault's."""
    kv = client.secrets.kv.v2
    assert kv.create_or_update_secret("c", {"v": "1"}, cas=0)["data"]["version"] == 1
    with pytest.raises(hx.InvalidRequest) as exc:
        kv.create_or_update_secret("c", {"v": "2"}, cas=0)
    assert exc.value.errors == ["check-and-set parameter did not match the current version"]
    assert kv.create_or_update_secret("c", {"v": "2"}, cas=1)["data"]["version"] == 2
    resp = raw(srv, "POST", "secret/data/c", json={"data": {"v": 3}, "options": {"cas": "x"}})
    assert (resp.status_code, resp.json()) == (400, {"errors": ["error parsing check-and-set parameter"]})
    resp = raw(srv, "POST", "secret/data/c", json={"options": {}})
    assert (resp.status_code, resp.json()) == (400, {"errors": ["no data provided"]})


def test_v2_cas_required_by_config(client):
    """cas_required on the mount config rejects writes without cas."""
    kv = client.secrets.kv.v2
    kv.configure(max_versions=3, cas_required=True)
    assert kv.read_configuration()["data"] == {
        "cas_required": True, "delete_version_after": "0s", "max_versions": 3}
    with pytest.raises(hx.InvalidRequest, match="check-and-set parameter required for this call"):
        kv.create_or_update_secret("r", {"a": "1"})
    assert kv.create_or_update_secret("r", {"a": "1"}, cas=0)["data"]["version"] == 1


def test_v2_max_versions_prunes_oldest(client):
    """Beyond max_versions the oldest versions vanish and oldest_version moves up."""
    kv = client.secrets.kv.v2
    kv.update_metadata("p", max_versions=2)
    for i in range(4):
        kv.create_or_update_secret("p", {"i": i})
    meta = kv.read_secret_metadata("p")["data"]
    assert meta["current_version"] == 4 and meta["oldest_version"] == 3
    assert sorted(meta["versions"]) == ["3", "4"]
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("p", version=1, raise_on_deleted_version=True)


def test_v2_soft_delete_undelete_destroy(srv, client):
    """Soft delete gives the raw 404 envelope; undelete restores; destroy keeps metadata only."""
    kv = client.secrets.kv.v2
    kv.create_or_update_secret("d", {"v": "1"})
    kv.create_or_update_secret("d", {"v": "2"})
    assert kv.delete_latest_version_of_secret("d").status_code == 204
    resp = raw(srv, "GET", "secret/data/d")
    body = resp.json()
    assert resp.status_code == 404 and "errors" not in body
    assert resp.headers["Content-Type"] == "application/json"
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["version"] == 2 and TS.match(body["data"]["metadata"]["deletion_time"])
    parsed = kv.read_secret_version("d", raise_on_deleted_version=False)
    assert parsed["data"]["data"] is None and parsed["data"]["metadata"]["deletion_time"] != ""
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("d", raise_on_deleted_version=True)
    kv.undelete_secret_versions("d", versions=[2])
    assert kv.read_secret_version("d", raise_on_deleted_version=True)["data"]["data"] == {"v": "2"}
    kv.destroy_secret_versions("d", versions=[1])
    gone = raw(srv, "GET", "secret/data/d?version=1").json()
    assert gone["data"]["metadata"]["destroyed"] is True and gone["data"]["metadata"]["deletion_time"] == ""
    with pytest.raises(hx.InvalidPath):  # destroyed but not deleted: hvac still raises
        kv.read_secret_version("d", version=1, raise_on_deleted_version=False)
    assert kv.read_secret_metadata("d")["data"]["versions"]["1"]["destroyed"] is True
    resp = raw(srv, "POST", "secret/delete/d", json={"versions": []})
    assert (resp.status_code, resp.json()) == (400, {"errors": ["No version number provided"]})
    kv.delete_metadata_and_all_versions("d")
    assert raw(srv, "GET", "secret/metadata/d").status_code == 404


def test_v2_cas_after_soft_delete_uses_deleted_version(client):
    """A soft-deleted latest version still counts as current for cas."""
    kv = client.secrets.kv.v2
    kv.create_or_update_secret("s", {"v": "1"})
    kv.delete_latest_version_of_secret("s")
    with pytest.raises(hx.InvalidRequest):
        kv.create_or_update_secret("s", {"v": "2"}, cas=0)
    assert kv.create_or_update_secret("s", {"v": "2"}, cas=1)["data"]["version"] == 2


def test_v2_server_patch_and_content_type(srv, client):
    """PATCH merges (null removes), needs merge-patch content type, 404s on a missing key."""
    client.secrets.kv.v2.create_or_update_secret("m", {"a": "1", "b": "2"})
    ct = {"Content-Type": "application/merge-patch+json"}
    resp = raw(srv, "PATCH", "secret/data/m", headers=dict(ct), data=json.dumps({"data": {"b": None, "c": "3"}}))
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 2
    assert client.secrets.kv.v2.read_secret_version("m", raise_on_deleted_version=True)["data"]["data"] == {"a": "1", "c": "3"}
    resp = raw(srv, "PATCH", "secret/data/m", json={"data": {"x": 1}})
    assert resp.status_code == 415
    resp = raw(srv, "PATCH", "secret/data/missing", headers=dict(ct), data='{"data": {"x": 1}}')
    assert resp.status_code == 404 and resp.content == b""
    with pytest.warns(DeprecationWarning):  # hvac's client-side patch() reads without the flag
        assert client.secrets.kv.v2.patch("m", {"d": "4"})["data"]["version"] == 3


def test_v2_custom_metadata(client, srv):
    """custom_metadata replaces on POST, merges on PATCH, rejects empty values."""
    kv = client.secrets.kv.v2
    kv.update_metadata("cm", custom_metadata={"owner": "me", "team": "x"})
    kv.update_metadata("cm", custom_metadata={"owner": "you"})
    assert kv.read_secret_metadata("cm")["data"]["custom_metadata"] == {"owner": "you"}
    resp = raw(srv, "PATCH", "secret/metadata/cm", headers={"Content-Type": "application/merge-patch+json"},
               data=json.dumps({"custom_metadata": {"owner": None, "env": "prod"}}))
    assert resp.status_code == 204
    assert kv.read_secret_metadata("cm")["data"]["custom_metadata"] == {"env": "prod"}
    with pytest.raises(hx.InvalidRequest, match="custom_metadata validation failed"):
        kv.update_metadata("cm", custom_metadata={"k": ""})
    with pytest.raises(hx.InvalidPath):  # metadata exists but no version yet
        kv.read_secret_version("cm", raise_on_deleted_version=True)


def test_v2_wrong_path_shapes(srv):
    """v1-style paths on a v2 mount get the raw 404 warning; LIST on data/ is 405."""
    resp = raw(srv, "GET", "secret/plain")
    body = resp.json()
    assert resp.status_code == 404 and "errors" not in body
    assert body["warnings"][0].startswith("Invalid path for a versioned K/V secrets engine.")
    assert "'vault kv get'" in body["warnings"][0]
    assert "'vault kv put'" in raw(srv, "POST", "secret/plain", json={"a": 1}).json()["warnings"][0]
    assert raw(srv, "GET", "secret/data/x/").json()["warnings"][0].startswith("Invalid path")
    root = raw(srv, "GET", "secret/data")
    assert root.status_code == 404
    assert root.json()["warnings"] == ["Non-listing operations on the root of a K/V v2 mount are not supported."]
    resp = raw(srv, "LIST", "secret/data/x")
    assert (resp.status_code, resp.json()) == (405, {"errors": ["unsupported operation"]})


# --- LIST ----------------------------------------------------------------------------
def test_list_semantics(srv, client):
    """Direct children only, folders end in /, sorted; LIST verb == GET ?list=true; empty -> 404."""
    kv = client.secrets.kv.v2
    for key in ("b", "a/x", "a/y/z", "c d", "é"):
        kv.create_or_update_secret(key, {"v": "1"})
    assert kv.list_secrets("")["data"]["keys"] == ["a/", "b", "c d", "é"]
    assert kv.list_secrets("a")["data"]["keys"] == ["x", "y/"]
    assert raw(srv, "GET", "secret/metadata/a/?list=true").json()["data"]["keys"] == ["x", "y/"]
    resp = raw(srv, "LIST", "secret/metadata/nothing")
    assert (resp.status_code, resp.json()) == (404, {"errors": []})
    with pytest.raises(hx.InvalidPath):
        kv.list_secrets("nothing")
    assert raw(srv, "GET", "secret/metadata/a?list=abc").status_code == 400
    kv.delete_latest_version_of_secret("b")
    assert "b" in kv.list_secrets("")["data"]["keys"]  # listed while metadata exists


def test_percent_encoded_names_round_trip(srv, client):
    """hvac quotes spaces, '#', unicode; the server stores the decoded name."""
    kv = client.secrets.kv.v2
    kv.create_or_update_secret("x y/ü#1?", {"v": "ok"})
    assert kv.read_secret_version("x y/ü#1?", raise_on_deleted_version=True)["data"]["data"] == {"v": "ok"}
    assert kv.list_secrets("x y")["data"]["keys"] == ["ü#1?"]


# --- KV v1 ---------------------------------------------------------------------------
def test_v1_round_trip_list_delete(srv, client):
    """v1: 204 on write, whole-object replace, lease_duration, LIST, DELETE, 404 when missing."""
    kv = client.secrets.kv.v1
    assert kv.create_or_update_secret("f/one", {"a": "1", "b": "2"}, mount_point="kv1", method="POST").status_code == 204
    kv.create_or_update_secret("f/one", {"a": "9"}, mount_point="kv1", method="PUT")
    got = kv.read_secret("f/one", mount_point="kv1")
    assert got["data"] == {"a": "9"} and got["lease_duration"] == 2764800
    kv.create_or_update_secret("f/sub/two", {"x": "y", "ttl": "1h"}, mount_point="kv1", method="POST")
    assert kv.read_secret("f/sub/two", mount_point="kv1")["lease_duration"] == 3600
    assert kv.list_secrets("f", mount_point="kv1")["data"]["keys"] == ["one", "sub/"]
    assert kv.delete_secret("f/one", mount_point="kv1").status_code == 204
    resp = raw(srv, "GET", "kv1/f/one")
    assert (resp.status_code, resp.json()) == (404, {"errors": []})
    resp = raw(srv, "POST", "kv1/empty", json={})
    assert (resp.status_code, resp.json()) == (400, {"errors": ["missing data fields"]})


def test_v2_call_on_v1_mount_creates_literal_key(srv, client):
    """POST M/data/P on a v1 mount succeeds (204) and stores a key literally named data/P."""
    resp = client.secrets.kv.v2.create_or_update_secret("p", {"v": "1"}, mount_point="kv1")
    assert isinstance(resp, requests.Response) and resp.status_code == 204
    assert client.secrets.kv.v1.read_secret("data/p", mount_point="kv1")["data"] == {"options": {}, "data": {"v": "1"}}
    assert raw(srv, "GET", "kv1/data/nope").status_code == 404


# --- sys -----------------------------------------------------------------------------
def test_mounts_listing_and_enable_disable(srv, client):
    """sys/mounts shows options.version at top level and under data; enable/disable via HTTP."""
    mounts = client.sys.list_mounted_secrets_engines()
    assert mounts["secret/"]["options"] == {"version": "2"}
    assert mounts["data"]["kv1/"]["options"] == {"version": "1"} and mounts["data"]["kv1/"]["type"] == "kv"
    client.sys.enable_secrets_engine("kv", path="team/a", options={"version": "2"})
    assert raw(srv, "POST", "sys/mounts/team/a", json={"type": "kv"}).status_code == 400
    client.secrets.kv.v2.create_or_update_secret("s", {"v": "1"}, mount_point="team/a")
    ui = raw(srv, "GET", "sys/internal/ui/mounts/team/a/s").json()["data"]
    assert ui["path"] == "team/a/" and ui["options"] == {"version": "2"}
    client.sys.disable_secrets_engine("team/a")
    resp = raw(srv, "GET", "team/a/data/s")
    assert (resp.status_code, resp.json()) == (
        404, {"errors": ['no handler for route "team/a/data/s". route entry not found.']})


def test_ui_mounts_longest_prefix_and_preflight_denial(srv):
    """Nested mounts resolve to the longest prefix; no capability under a mount -> 403 preflight."""
    srv.enable_kv("team", version=1)
    srv.enable_kv("team/b", version=2)
    assert raw(srv, "GET", "sys/internal/ui/mounts/team/b/x").json()["data"]["path"] == "team/b/"
    assert raw(srv, "GET", "sys/internal/ui/mounts/team/c").json()["data"]["path"] == "team/"
    srv.set_policy("ro", READONLY)
    token = srv.create_token(["ro"])
    assert raw(srv, "GET", "sys/internal/ui/mounts/secret/x", token=token).json()["data"]["type"] == "kv"
    resp = raw(srv, "GET", "sys/internal/ui/mounts/kv1/foo/bar", token=token)
    assert resp.status_code == 403
    assert resp.json() == {"errors": ["preflight capability check returned 403, please ensure client's "
                                      "policies grant access to path \"kv1/foo/bar/\""]}


def test_capabilities_self(srv, client):
    """Results at top level and in data; 'capabilities' only for one path; root -> ['root']."""
    one = client.sys.get_capabilities(["secret/data/a"])
    assert one["capabilities"] == ["root"] and one["data"]["secret/data/a"] == ["root"]
    srv.set_policy("ro", READONLY)
    srv.set_policy("meta", 'path "secret/metadata/+" { capabilities = ["list"] }\n'
                           'path "secret/data/locked" { capabilities = ["deny"] }')
    token = srv.create_token(["ro", "meta"])
    ro = hvac.Client(url=srv.url, token=token)
    two = ro.sys.get_capabilities(["secret/data/a", "secret/metadata/x", "secret/data/locked", "kv1/x"])
    assert "capabilities" not in two
    assert two["secret/data/a"] == ["list", "read"]
    assert two["data"]["secret/metadata/x"] == ["list"]  # + beats the shorter-prefixed glob
    assert two["secret/data/locked"] == ["deny"] and two["kv1/x"] == ["deny"]
    legacy = raw(srv, "POST", "sys/capabilities-self", token=token, json={"path": "secret/data/a"}).json()
    assert legacy["capabilities"] == ["list", "read"]


def test_readonly_token_denied_on_write(srv, client):
    """A read-only token reads and lists but gets the 1-error 403 on write and delete."""
    client.secrets.kv.v2.create_or_update_secret("x", {"v": "1"})
    srv.set_policy("ro", READONLY)
    ro = hvac.Client(url=srv.url, token=srv.create_token(["ro"]))
    assert ro.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)["data"]["data"] == {"v": "1"}
    assert ro.secrets.kv.v2.list_secrets("")["data"]["keys"] == ["x"]
    with pytest.raises(hx.Forbidden) as exc:
        ro.secrets.kv.v2.create_or_update_secret("x", {"v": "2"})
    assert exc.value.errors == ["1 error occurred:\n\t* permission denied\n\n"]
    with pytest.raises(hx.Forbidden):
        ro.secrets.kv.v2.delete_latest_version_of_secret("x")
    assert ro.lookup_token()["data"]["policies"] == ["default", "ro"]


def test_create_versus_update_capability(srv, client):
    """create allows new keys only; update allows existing keys only."""
    client.secrets.kv.v2.create_or_update_secret("exists", {"v": "1"})
    srv.set_policy("c", 'path "secret/data/*" { capabilities = ["create"] }')
    srv.set_policy("u", 'path "secret/data/*" { capabilities = ["update"] }')
    creator = hvac.Client(url=srv.url, token=srv.create_token(["c"]))
    updater = hvac.Client(url=srv.url, token=srv.create_token(["u"]))
    assert creator.secrets.kv.v2.create_or_update_secret("new", {"v": "1"})["data"]["version"] == 1
    with pytest.raises(hx.Forbidden):
        creator.secrets.kv.v2.create_or_update_secret("exists", {"v": "2"})
    assert updater.secrets.kv.v2.create_or_update_secret("exists", {"v": "2"})["data"]["version"] == 2
    with pytest.raises(hx.Forbidden):
        updater.secrets.kv.v2.create_or_update_secret("brand-new", {"v": "1"})


def test_bad_and_missing_tokens(srv):
    """Unknown token -> 2-errors 403; no token -> 403 permission denied; Bearer header works."""
    resp = raw(srv, "GET", "secret/data/x", token="bogus")
    assert (resp.status_code, resp.json()) == (
        403, {"errors": ["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]})
    with pytest.raises(hx.Forbidden, match="invalid token"):
        hvac.Client(url=srv.url, token="bogus").lookup_token()
    resp = raw(srv, "GET", "secret/data/x", token=None)
    assert resp.status_code == 403 and "permission denied" in resp.json()["errors"][0]
    resp = raw(srv, "GET", "auth/token/lookup-self", token=None, headers={"Authorization": "Bearer root"})
    assert resp.status_code == 200 and resp.json()["data"]["policies"] == ["root"]
    assert resp.json()["data"]["path"] == "auth/token/root" and resp.json()["data"]["expire_time"] is None


def test_token_create_and_policy_endpoints(srv, client):
    """Policies via sys/policies/acl and sys/policy; auth/token/create returns a working token."""
    client.sys.create_or_update_acl_policy("writer", 'path "secret/data/*" { capabilities = ["create", "update", "read"] }')
    assert "writer" in client.sys.list_acl_policies()["data"]["keys"]
    assert "capabilities" in client.sys.read_acl_policy("writer")["data"]["policy"]
    raw(srv, "PUT", "sys/policy/legacy", json={"policy": 'path "kv1/*" { policy = "write" }'})
    assert raw(srv, "GET", "sys/policy/legacy").json()["rules"].startswith("path")
    bad = raw(srv, "PUT", "sys/policies/acl/broken", json={"policy": 'path "x" { capabilities = ["fly"] }'})
    assert bad.status_code == 400 and bad.json()["errors"][0].startswith("failed to parse policy")
    created = client.auth.token.create(policies=["writer", "legacy"])
    assert created["auth"]["policies"] == ["default", "legacy", "writer"]
    writer = hvac.Client(url=srv.url, token=created["auth"]["client_token"])
    assert writer.secrets.kv.v2.create_or_update_secret("w", {"v": "1"})["data"]["version"] == 1
    assert writer.sys.get_capabilities(["kv1/a"])["capabilities"] == ["create", "delete", "list", "read", "update"]


# --- sealed, health, faults ----------------------------------------------------------
def test_sealed_returns_503_except_health(srv, client):
    """Sealed: every endpoint 503 "Vault is sealed" except sys/health (503 body) and seal-status."""
    srv.seal()
    resp = raw(srv, "GET", "secret/data/x")
    assert (resp.status_code, resp.json()) == (503, {"errors": ["Vault is sealed"]})
    with pytest.raises(hx.VaultDown):
        client.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)
    health = raw(srv, "GET", "sys/health", token=None)
    assert health.status_code == 503 and health.json()["sealed"] is True
    assert raw(srv, "GET", "sys/seal-status", token=None).json()["sealed"] is True
    srv.unseal()
    assert raw(srv, "GET", "sys/health", token=None).status_code == 200
    assert client.sys.read_health_status(method="GET")["sealed"] is False


def test_fault_injection_count_after_and_remove(srv, client):
    """Faults hit `count` matching requests after skipping `after`; 429 body names the path."""
    client.secrets.kv.v2.create_or_update_secret("f", {"v": "1"})
    handle = srv.add_fault(status=429, path_regex=r"secret/data/.*", method="GET", count=2, after=1)
    assert raw(srv, "GET", "secret/data/f").status_code == 200
    resp = raw(srv, "GET", "secret/data/f")
    assert (resp.status_code, resp.json()) == (429, {"errors": ['request path "secret/data/f": rate limit quota exceeded']})
    with pytest.raises(hx.RateLimitExceeded):
        client.secrets.kv.v2.read_secret_version("f", raise_on_deleted_version=True)
    assert raw(srv, "GET", "secret/data/f").status_code == 200
    assert raw(srv, "POST", "secret/data/f", json={"data": {}}).status_code == 200  # method filter
    handle.remove()
    srv.add_fault(status=503, path_regex=r"^secret/metadata/", count=None)
    for _ in range(3):
        assert raw(srv, "LIST", "secret/metadata/").json() == {"errors": ["Vault is sealed"]}
    srv.clear_faults()
    assert raw(srv, "LIST", "secret/metadata/").status_code == 200


def test_request_count_and_reset(srv):
    """request_count counts every request served, including faulted ones."""
    srv.reset_counts()
    srv.add_fault(status=500, count=1)
    for _ in range(3):
        raw(srv, "GET", "sys/health", token=None)
    assert srv.request_count == 3
    srv.reset_counts()
    assert srv.request_count == 0



def test_dropped_connection_fault_closes_without_an_answer_and_changes_nothing(srv, client):
    """drop=True (or status=0): the connection is closed with no answer, the request never
    reaches Vault, the request log shows status 0; the next request is served normally."""
    srv.add_fault(drop=True, path_regex=r"^secret/data/dropped$", method="POST", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.secrets.kv.v2.create_or_update_secret("dropped", {"v": "1"})
    assert ("POST", "secret/data/dropped", 0) in srv.request_log
    with pytest.raises(hx.InvalidPath):
        client.secrets.kv.v2.read_secret_version("dropped", raise_on_deleted_version=True)
    client.secrets.kv.v2.create_or_update_secret("dropped", {"v": "2"})
    assert client.secrets.kv.v2.read_secret_version("dropped", raise_on_deleted_version=True)[
        "data"]["data"] == {"v": "2"}
    srv.add_fault(status=0, path_regex=r"^secret/data/dropped$", method="GET", count=2)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    for _ in range(2):
        conn.request("GET", "/v1/secret/data/dropped", headers={"X-Vault-Token": "root"})
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
        conn.close()
    conn.request("GET", "/v1/secret/data/dropped", headers={"X-Vault-Token": "root"})
    assert conn.getresponse().status == 200
    conn.close()


def test_handled_drop_applies_the_write_but_loses_the_answer(srv, client):
    """drop=True, handled=True: Vault carries the write out, then the answer is lost."""
    srv.add_fault(drop=True, handled=True, path_regex=r"^secret/data/lost-answer$", method="POST")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.secrets.kv.v2.create_or_update_secret("lost-answer", {"v": "1"})
    read = client.secrets.kv.v2.read_secret_version("lost-answer", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"v": "1"} and read["data"]["metadata"]["version"] == 1
    with pytest.raises(ValueError):
        srv.add_fault(status=503, handled=True)
    with pytest.raises(ValueError):
        srv.add_fault()

def test_http_hygiene(srv):
    """Unknown verb -> 405; '//' -> 301; over-size body -> 413; malformed JSON -> 400."""
    assert raw(srv, "OPTIONS", "secret/data/x").status_code == 405
    resp = raw(srv, "GET", "secret//data/x", allow_redirects=False)
    assert resp.status_code == 301 and resp.headers["Location"] == "/v1/secret/data/x"
    assert raw(srv, "POST", "secret/data/x", data=b"{nope").json() == {"errors": ["error parsing JSON"]}
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.putrequest("POST", "/v1/secret/data/x")
    conn.putheader("X-Vault-Token", "root")
    conn.putheader("Content-Length", str(33 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read()) == {"errors": ["error parsing JSON"]}
    conn.close()
    big = raw(srv, "POST", "secret/data/big", json={"data": {"v": "x" * (1024 * 1024 + 10)}})
    assert big.status_code == 500 and "too large" in big.json()["errors"][0]


# --- namespaces ------------------------------------------------------------------------
def test_namespaces_header_equals_path_prefix(srv):
    """X-Vault-Namespace a/b == /v1/a/b/...; mounts, policies and tokens are per namespace."""
    srv.enable_kv("secret", version=2, namespace="team/dev")
    ns_client = hvac.Client(url=srv.url, token="root", namespace="team/dev")
    ns_client.secrets.kv.v2.create_or_update_secret("k", {"v": "ns"})
    via_path = raw(srv, "GET", "team/dev/secret/data/k").json()
    assert via_path["data"]["data"] == {"v": "ns"}
    via_mixed = raw(srv, "GET", "dev/secret/data/k", headers={"X-Vault-Namespace": "team"}).json()
    assert via_mixed["data"]["data"] == {"v": "ns"}
    assert raw(srv, "GET", "secret/data/k").status_code == 404  # root namespace is separate
    srv.set_policy("ro", READONLY, namespace="team/dev")
    token = srv.create_token(["ro"], namespace="team/dev")
    ro = hvac.Client(url=srv.url, token=token, namespace="team/dev")
    assert ro.secrets.kv.v2.read_secret_version("k", raise_on_deleted_version=True)["data"]["data"] == {"v": "ns"}
    with pytest.raises(hx.Forbidden):
        ro.secrets.kv.v2.create_or_update_secret("k", {"v": "2"})
    with pytest.raises(hx.Forbidden):  # the token is unknown to the root namespace's paths
        hvac.Client(url=srv.url, token=token).secrets.kv.v2.read_secret_version("k", raise_on_deleted_version=True)
    assert raw(srv, "POST", "sys/namespaces/other").status_code == 200
    assert raw(srv, "LIST", "sys/namespaces").json()["data"]["keys"] == ["other/", "team/"]


# --- transport -------------------------------------------------------------------------
def test_keep_alive_two_requests_one_connection(srv):
    """HTTP/1.1 keep-alive: two requests share one TCP connection; Content-Length always set."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("POST", "/v1/secret/data/ka", body=json.dumps({"data": {"v": "1"}}),
                 headers={"X-Vault-Token": "root", "Content-Type": "application/json"})
    first = conn.getresponse()
    assert first.status == 200 and first.getheader("Content-Length")
    first.read()
    sock = conn.sock
    conn.request("DELETE", "/v1/secret/data/ka", headers={"X-Vault-Token": "root"})
    second = conn.getresponse()
    assert second.status == 204 and second.getheader("Content-Length") == "0" and second.read() == b""
    assert conn.sock is sock
    conn.close()


def test_concurrent_requests(srv):
    """200 writes+reads from 8 threads all succeed and every version is counted."""
    session_local = threading.local()

    def work(i):
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        headers = {"X-Vault-Token": "root"}
        w = session.post(f"{srv.url}/v1/secret/data/load/{i % 20}", json={"data": {"i": i}}, headers=headers, timeout=5)
        r = session.get(f"{srv.url}/v1/secret/data/load/{i % 20}", headers=headers, timeout=5)
        return w.status_code, r.status_code

    srv.reset_counts()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(200)))
    assert results == [(200, 200)] * 200
    assert srv.request_count == 400
    client = hvac.Client(url=srv.url, token="root")
    total = sum(client.secrets.kv.v2.read_secret_metadata(f"load/{k}")["data"]["current_version"] for k in range(20))
    assert total == 200


# --- more behaviour --------------------------------------------------------------------
def test_future_deletion_time_still_reads(client):
    """delete_version_after sets a future deletion_time; such a version still reads 200."""
    kv = client.secrets.kv.v2
    kv.update_metadata("later", delete_version_after="1h")
    kv.create_or_update_secret("later", {"v": "1"})
    got = kv.read_secret_version("later", raise_on_deleted_version=True)["data"]
    assert got["data"] == {"v": "1"} and TS.match(got["metadata"]["deletion_time"])
    assert kv.read_secret_metadata("later")["data"]["delete_version_after"] == "1h0m0s"


def test_exclude_deleted_and_generic_list(srv, client):
    """exclude_deleted hides soft-deleted keys; hvac's generic list (GET ?list=true) works."""
    kv = client.secrets.kv.v2
    kv.create_or_update_secret("live", {"v": "1"})
    kv.create_or_update_secret("dead", {"v": "1"})
    kv.delete_latest_version_of_secret("dead")
    assert raw(srv, "LIST", "secret/metadata/?exclude_deleted=true").json()["data"]["keys"] == ["live"]
    assert client.list("secret/metadata")["data"]["keys"] == ["dead", "live"]
    assert client.list("secret/metadata/none") is None
    strict = hvac.Client(url=srv.url, token="root", strict_http=True)
    assert strict.secrets.kv.v2.list_secrets("")["data"]["keys"] == ["dead", "live"]


def test_health_head_seal_unseal_over_http(srv, client):
    """hvac's HEAD health check, sys/seal (sudo) and sys/unseal through the API."""
    assert client.sys.read_health_status().status_code == 200
    srv.set_policy("ro", READONLY)
    with pytest.raises(hx.Forbidden):
        hvac.Client(url=srv.url, token=srv.create_token(["ro"])).sys.seal()
    client.sys.seal()
    assert srv.sealed and client.sys.read_health_status().status_code == 503
    assert client.sys.submit_unseal_key(key="anything")["sealed"] is False
    assert client.sys.is_sealed() is False


def test_tune_upgrades_v1_mount_to_v2(srv, client):
    """Tuning options.version=2 upgrades a v1 mount; old keys become version 1."""
    client.secrets.kv.v1.create_or_update_secret("old", {"a": "1"}, mount_point="kv1", method="POST")
    client.sys.tune_mount_configuration("kv1", options={"version": "2"})
    assert client.sys.retrieve_mount_option("kv1", "version") == "2"
    got = client.secrets.kv.v2.read_secret_version("old", mount_point="kv1", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"a": "1"} and got["data"]["metadata"]["version"] == 1


def test_form_body_and_latency(srv):
    """POST bodies may be form-encoded; `latency` delays every request."""
    assert raw(srv, "POST", "kv1/form", data={"user": "u", "pw": "p"}).status_code == 204
    assert raw(srv, "GET", "kv1/form").json()["data"] == {"user": "u", "pw": "p"}
    srv.latency = 0.05
    resp = raw(srv, "GET", "kv1/form")
    assert resp.elapsed.total_seconds() >= 0.05
    srv.latency = 0.0


def test_tls(tmp_path):
    """With tls=(cert, key) the server speaks https and hvac verifies against the CA file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    with VaultServer(tls=(str(certfile), str(keyfile))) as server:
        server.enable_kv("secret")
        assert server.url.startswith("https://127.0.0.1:")
        client = hvac.Client(url=server.url, token="root", verify=str(certfile))
        client.secrets.kv.v2.create_or_update_secret("t", {"v": "1"})
        assert client.secrets.kv.v2.read_secret_version("t", raise_on_deleted_version=True)["data"]["data"] == {"v": "1"}


def test_standalone_module_prints_address():
    """python -m vaultsim serves on loopback and prints its address."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-m", "vaultsim", "--port", "0", "--kv", "secret:2", "--kv", "kv1:1"],
                            cwd=Path(__file__).parent, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        mounts = requests.get(f"{url}/v1/sys/mounts", headers={"X-Vault-Token": "root"}, timeout=5).json()
        assert mounts["secret/"]["options"] == {"version": "2"} and mounts["kv1/"]["options"] == {"version": "1"}
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_stop_cuts_keep_alive_connections():
    """After stop(), a client holding a pooled connection gets a connection error, not answers."""
    server = VaultServer().start()
    session = requests.Session()
    assert session.get(f"{server.url}/v1/sys/health", timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{server.url}/v1/sys/health", timeout=5)


# --- ACL priority (pure) ---------------------------------------------------------------
ACL_TEXT = """
# comment
path "secret/*"                 { capabilities = ["read"] }
path "secret/data/team/*"       { capabilities = ["read", "update"] }   // longer glob
path "secret/data/team/locked"  { capabilities = ["deny"] }
path "secret/data/+/shared"     { capabilities = ["list"] }
path "secret/data/+/shared*"    { capabilities = ["create"] }
path "secret/metadata/exact"    { capabilities = ["list"] }
/* legacy shorthand */
path "kv1/*" { policy = "write" }
"""


@pytest.mark.parametrize("path, listing, expected", [
    ("secret/data/x", False, {"read"}),                       # only the short glob matches
    ("secret/data/team/a", False, {"read", "update"}),        # longer prefix wins
    ("secret/data/team/locked", False, {"deny"}),             # exact path wins, deny is total
    ("secret/data/team/shared", False, {"read", "update"}),   # + later than the glob's * loses
    ("secret/data/ops/shared", False, {"list"}),              # no trailing * beats trailing *
    ("secret/data/ops/shared2", False, {"create"}),
    ("secret/metadata/exact/", True, {"list"}),               # LIST retries without the slash
    ("secret/metadata/exact/", False, {"read"}),
    ("kv1/a", False, {"create", "read", "update", "delete", "list"}),
    ("other/x", False, {"deny"}),
])
def test_acl_priority(path, listing, expected):
    """Vault's documented matching order decides which single rule applies."""
    from vaultsim.policy import ACL, parse_policy

    acl = ACL([parse_policy("p", ACL_TEXT)])
    assert acl.capabilities(path, listing=listing) == expected
