"""VaultBackend against the Vault-API simulator (tests/vaultsim) through unmodified hvac.

Each test gets its own KV mount on one module-wide server, and checks what Vault really
stores by reading it back with a raw hvac client (root token), not only through the backend.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import socket
from concurrent.futures import ThreadPoolExecutor

import hvac
import pytest

from engine.backends.retry import RetryPolicy
from engine.backends.vault import VaultBackend
from engine.errors import (
    BackendError,
    ManagerUnreachable,
    PermissionDenied,
    ReadOnlyManager,
    TransientError,
    ValueTooLarge,
)
from engine.model import Kind, SecretId, SecretValue

vaultsim = pytest.importorskip("vaultsim")

ROOT = "root-token-canary-4f1d"
_mount_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server():
    """One simulated Vault for the module, root token `ROOT`, on 127.0.0.1."""
    srv = vaultsim.VaultServer(root_token=ROOT)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def raw(server) -> hvac.Client:
    """A plain hvac client with the root token, to see what Vault really holds."""
    client = hvac.Client(url=server.url, token=ROOT)
    yield client
    client.adapter.close()


def new_mount(server, version: int = 2, namespace: str = "", prefix: str = "kv") -> str:
    """Enable a fresh KV mount of `version` and return its path."""
    mount = f"{prefix}{next(_mount_numbers)}"
    server.enable_kv(mount, version=version, namespace=namespace)
    return mount


@pytest.fixture
def made(server):
    """`make(mount, **settings)`: a VaultBackend on the server; closed after the test."""
    backends = []

    def make(mount: str, **overrides) -> VaultBackend:
        settings = {"address": server.url, "token": SecretValue.from_text(ROOT),
                    "secret_engine": mount, "base_path": "harness", "kv_version": "auto"}
        settings.update(overrides)
        backend = VaultBackend.from_settings("corp_vault", settings)
        backend.retry = RetryPolicy(attempts=2, base_delay=0.001)  # transient errors surface fast
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.close()


def text(name: str) -> SecretId:
    return SecretId(Kind.TEXT, name)


def file(name: str) -> SecretId:
    return SecretId(Kind.FILE, name)


def raw_v2(raw: hvac.Client, mount: str, path: str) -> dict:
    return raw.secrets.kv.v2.read_secret_version(
        path=path, mount_point=mount, raise_on_deleted_version=True)["data"]["data"]


def raw_v1(raw: hvac.Client, mount: str, path: str) -> dict:
    return raw.secrets.kv.v1.read_secret(path=path, mount_point=mount)["data"]


# ------------------------------------------------------------------ layout


def test_kv2_stores_text_and_file_at_the_contract_paths(server, raw, made):
    """Text -> {"value"} under SECRET_TEXT, file -> base64 + encoding under CONFIG_FILE."""
    mount = new_mount(server, 2)
    vault = made(mount)
    vault.write(text("db_password"), SecretValue.from_text("hunter2"))
    vault.write(file("kubeconfig"), SecretValue(b"apiVersion: v1\n\x00\xff"))

    assert raw.adapter.get(f"/v1/{mount}/data/harness/SECRET_TEXT/db_password")["data"]["data"] == {
        "value": "hunter2"}
    assert raw_v2(raw, mount, "harness/CONFIG_FILE/kubeconfig") == {
        "value": base64.b64encode(b"apiVersion: v1\n\x00\xff").decode(), "encoding": "base64"}
    assert vault.location(text("db_password")) == f"{mount}/harness/SECRET_TEXT/db_password"
    assert vault.location(file("kubeconfig")) == f"{mount}/harness/CONFIG_FILE/kubeconfig"
    assert vault.list_ids() == [file("kubeconfig"), text("db_password")]


def test_kv1_stores_the_same_data_without_data_segment(server, raw, made):
    """On KV v1 the data sits directly at <mount>/<base>/<FOLDER>/<name>."""
    mount = new_mount(server, 1)
    vault = made(mount)
    vault.write(text("api key"), SecretValue.from_text("s3cr3t"))
    vault.write(file("cert.pem"), SecretValue(b"-----BEGIN-----\n"))

    assert raw.adapter.get(f"/v1/{mount}/harness/SECRET_TEXT/api%20key")["data"] == {"value": "s3cr3t"}
    assert raw_v1(raw, mount, "harness/CONFIG_FILE/cert.pem") == {
        "value": base64.b64encode(b"-----BEGIN-----\n").decode(), "encoding": "base64"}
    assert vault.read(text("api key")) == SecretValue.from_text("s3cr3t")
    assert vault.list_ids() == [file("cert.pem"), text("api key")]


@pytest.mark.parametrize("version", [1, 2])
def test_auto_detects_the_mount_version(server, made, version):
    """kv_version: auto asks sys/internal/ui/mounts and uses the version it reports."""
    mount = new_mount(server, version)
    vault = made(mount)
    assert vault.layout().version == version
    vault.write(text("a"), SecretValue.from_text("x"))
    assert vault.read(text("a")) == SecretValue.from_text("x")


@pytest.mark.parametrize("version", [1, 2])
def test_explicit_version_skips_detection(server, raw, made, version):
    mount = new_mount(server, version)
    vault = made(mount, kv_version=version)
    vault.write(text("a"), SecretValue.from_text("x"))
    reader = raw_v2 if version == 2 else raw_v1
    assert reader(raw, mount, "harness/SECRET_TEXT/a") == {"value": "x"}


def test_empty_base_path_has_no_double_slash(server, raw, made):
    mount = new_mount(server, 2)
    vault = made(mount, base_path="/")
    vault.write(text("a"), SecretValue.from_text("x"))
    assert vault.location(text("a")) == f"{mount}/SECRET_TEXT/a"
    assert raw_v2(raw, mount, "SECRET_TEXT/a") == {"value": "x"}
    assert vault.list_ids() == [text("a")]


def test_nested_base_path(server, raw, made):
    mount = new_mount(server, 2)
    vault = made(mount, base_path="/teams/payments/prod/")
    vault.write(file("f"), SecretValue(b"\x01"))
    assert vault.location(file("f")) == f"{mount}/teams/payments/prod/CONFIG_FILE/f"
    assert raw_v2(raw, mount, "teams/payments/prod/CONFIG_FILE/f")["value"] == "AQ=="
    assert vault.list_ids() == [file("f")]


def test_nested_mount_path_is_found_by_detection(server, raw, made):
    """secret_engine "team/kvN" mounted as one engine: data/ goes after the whole mount."""
    mount = new_mount(server, 2, prefix="team/kv")
    vault = made(mount)
    vault.write(text("a"), SecretValue.from_text("x"))
    assert vault.layout().mount == mount
    assert raw_v2(raw, mount, "harness/SECRET_TEXT/a") == {"value": "x"}
    assert vault.location(text("a")) == f"{mount}/harness/SECRET_TEXT/a"


def test_mount_shorter_than_secret_engine_uses_the_real_mount(server, raw, made):
    """secret_engine "kvN/extra" on a mount "kvN": data/ is inserted after "kvN"."""
    mount = new_mount(server, 2)
    vault = made(mount + "/extra")
    vault.write(text("a"), SecretValue.from_text("x"))
    assert raw_v2(raw, mount, "extra/harness/SECRET_TEXT/a") == {"value": "x"}
    assert vault.location(text("a")) == f"{mount}/extra/harness/SECRET_TEXT/a"


NAMES = ["with space", "dots.in.name", "ünïcødé-名前", "hash#and?query", "percent%20sign",
         "plus+equals=", "semi;colon", "...", "UPPER_lower-123"]


@pytest.mark.parametrize("version", [1, 2])
def test_unusual_names_round_trip_and_list(server, made, version):
    vault = made(new_mount(server, version))
    for number, name in enumerate(NAMES):
        vault.write(text(name), SecretValue.from_text(f"value {number}"))
    assert vault.list_ids() == sorted(text(n) for n in NAMES)
    for number, name in enumerate(NAMES):
        assert vault.read(text(name)) == SecretValue.from_text(f"value {number}")


@pytest.mark.parametrize("version", [1, 2])
def test_any_bytes_round_trip_exactly(server, made, version):
    vault = made(new_mount(server, version))
    samples = {"all-bytes": bytes(range(256)) * 4, "nul": b"\x00", "empty": b"",
               "not-utf8": b"\xc3\x28\xa0\xa1", "pkcs12ish": b"0\x82\x05\x00" + bytes(1000)}
    for name, data in samples.items():
        vault.write(file(name), SecretValue(data))
    for name, data in samples.items():
        assert vault.read(file(name)).data == data
    vault.write(text("unicode"), SecretValue.from_text("päss\u00a0wörd ✓ \"quoted\" \\ <&>"))
    assert vault.read(text("unicode")).text() == "päss\u00a0wörd ✓ \"quoted\" \\ <&>"


def test_same_name_as_text_and_file_are_two_secrets(server, made):
    vault = made(new_mount(server, 2))
    vault.write(text("same"), SecretValue.from_text("t"))
    vault.write(file("same"), SecretValue(b"f"))
    assert vault.read(text("same")).data == b"t"
    assert vault.read(file("same")).data == b"f"
    assert vault.list_ids() == [file("same"), text("same")]


# ------------------------------------------------------------------ files written by others


def test_file_without_encoding_key_is_base64_by_default(server, raw, made):
    mount = new_mount(server, 2)
    raw.secrets.kv.v2.create_or_update_secret(
        path="harness/CONFIG_FILE/harness.pem", mount_point=mount,
        secret={"value": base64.encodebytes(b"x" * 100).decode()})  # wrapped at 76 columns
    assert made(mount).read(file("harness.pem")).data == b"x" * 100


def test_file_without_encoding_key_is_utf8_when_configured(server, raw, made):
    mount = new_mount(server, 2)
    raw.secrets.kv.v2.create_or_update_secret(
        path="harness/CONFIG_FILE/app.conf", mount_point=mount, secret={"value": "key=välue\n"})
    vault = made(mount, file_encoding="utf-8")
    assert vault.read(file("app.conf")).data == "key=välue\n".encode()


def test_explicit_encoding_key_wins_over_file_encoding(server, raw, made):
    mount = new_mount(server, 2)
    vault = made(mount, file_encoding="utf-8")
    vault.write(file("bin"), SecretValue(b"\xff\x00"))
    assert raw_v2(raw, mount, "harness/CONFIG_FILE/bin")["encoding"] == "base64"
    assert vault.read(file("bin")).data == b"\xff\x00"


def test_undecodable_file_value_names_the_path(server, raw, made):
    mount = new_mount(server, 2)
    raw.secrets.kv.v2.create_or_update_secret(
        path="harness/CONFIG_FILE/plain", mount_point=mount, secret={"value": "not base64!"})
    with pytest.raises(BackendError) as caught:
        made(mount).read(file("plain"))
    assert f"{mount}/harness/CONFIG_FILE/plain" in str(caught.value)
    assert "base64" in str(caught.value)
    assert "not base64!" not in str(caught.value)


def test_secret_without_value_field_names_the_path(server, raw, made):
    mount = new_mount(server, 2)
    raw.secrets.kv.v2.create_or_update_secret(
        path="harness/SECRET_TEXT/other", mount_point=mount, secret={"password": "leak-me"})
    with pytest.raises(BackendError) as caught:
        made(mount).read(text("other"))
    assert str(caught.value).startswith(f"manager 'corp_vault' at {mount}/harness/SECRET_TEXT/other:")
    assert '"value"' in str(caught.value) and "leak-me" not in str(caught.value)


# ------------------------------------------------------------------ absence and deletion


def test_missing_secret_and_empty_folders(server, made):
    vault = made(new_mount(server, 2))
    assert vault.read(text("nope")) is None
    assert vault.list_ids() == []


def test_kv2_delete_is_a_recoverable_soft_delete(server, raw, made):
    mount = new_mount(server, 2)
    vault = made(mount)
    vault.write(text("old"), SecretValue.from_text("v1"))
    vault.write(text("old"), SecretValue.from_text("v2"))
    vault.write(text("kept"), SecretValue.from_text("k"))
    vault.delete(text("old"))

    assert vault.read(text("old")) is None
    assert vault.read(text("kept")) == SecretValue.from_text("k")
    meta = raw.secrets.kv.v2.read_secret_metadata(path="harness/SECRET_TEXT/old", mount_point=mount)
    versions = meta["data"]["versions"]
    assert versions["2"]["deletion_time"] != "" and versions["2"]["destroyed"] is False
    assert versions["1"]["deletion_time"] == ""
    raw.secrets.kv.v2.undelete_secret_versions(path="harness/SECRET_TEXT/old", versions=[2],
                                               mount_point=mount)
    assert vault.read(text("old")) == SecretValue.from_text("v2")


def test_kv2_listing_asks_vault_to_leave_out_soft_deleted_secrets(server, made):
    """list_ids sends exclude_deleted=true (honoured by Vault 2025+); where a Vault ignores
    it and still lists the deleted key, read() returns None for it."""
    vault = made(new_mount(server, 2))
    vault.write(text("gone"), SecretValue.from_text("x"))
    vault.write(text("here"), SecretValue.from_text("y"))
    vault.delete(text("gone"))
    urls = []
    vault._client.adapter.session.hooks["response"].append(lambda r, *a, **k: urls.append(r.url))

    ids = vault.list_ids()
    assert text("here") in ids and set(ids) <= {text("here"), text("gone")}
    assert vault.read(text("gone")) is None
    assert len([u for u in urls if "/metadata/" in u]) == 2
    assert all(u.endswith("?exclude_deleted=true") for u in urls if "/metadata/" in u)


def test_kv1_delete_removes_the_secret(server, raw, made):
    mount = new_mount(server, 1)
    vault = made(mount)
    vault.write(file("f"), SecretValue(b"1"))
    vault.delete(file("f"))
    assert vault.read(file("f")) is None
    with pytest.raises(hvac.exceptions.InvalidPath):
        raw_v1(raw, mount, "harness/CONFIG_FILE/f")


def test_listing_walks_sub_folders_and_handles_thousands(server, raw, made):
    """A key in a sub-folder of the layout is a secret whose name holds '/'."""
    mount = new_mount(server, 2)
    vault = made(mount)
    names = [f"secret-{i:05d}" for i in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: vault.write(text(n), SecretValue.from_text(n)), names))
    raw.secrets.kv.v2.create_or_update_secret(
        path="harness/SECRET_TEXT/folder/inside", mount_point=mount, secret={"value": "x"})
    ids = vault.list_ids()
    assert ids == sorted([text(n) for n in names] + [text("folder/inside")])
    assert vault.read(text("folder/inside")).data == b"x"
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda n: vault.read(text(n)), names[:200]))
    assert [v.text() for v in values] == names[:200]


# ------------------------------------------------------------------ permissions


def read_only_token(server, mount: str, namespace: str = "") -> str:
    server.set_policy(f"reader-{mount}", f'path "{mount}/*" {{ capabilities = ["read", "list"] }}',
                      namespace=namespace)
    return server.create_token(policies=[f"reader-{mount}"], namespace=namespace)


def test_read_only_token_fails_check_access_before_any_write(server, raw, made):
    mount = new_mount(server, 2)
    made(mount).write(text("existing"), SecretValue.from_text("v"))
    vault = made(mount, token=SecretValue.from_text(read_only_token(server, mount)))

    assert vault.read(text("existing")) == SecretValue.from_text("v")
    with pytest.raises(ReadOnlyManager) as caught:
        vault.check_access([text("new"), file("other")], [text("existing")])
    message = str(caught.value)
    assert "corp_vault" in message and f"{mount}/harness/SECRET_TEXT/new" in message
    assert "'create'" in message
    assert made(mount).list_ids() == [text("existing")]


def test_check_access_passes_for_a_writer_and_names_a_missing_delete(server, made):
    mount = new_mount(server, 2)
    server.set_policy(f"writer-{mount}", f'path "{mount}/data/*" '
                      '{ capabilities = ["create", "update", "read"] }')
    vault = made(mount, token=SecretValue.from_text(
        server.create_token(policies=[f"writer-{mount}"])))
    vault.check_access([text(f"s{i}") for i in range(450)], [])  # three capability batches
    with pytest.raises(ReadOnlyManager, match="'delete' capability"):
        vault.check_access([], [file("f")])
    vault.write(text("s1"), SecretValue.from_text("written"))
    assert made(mount).read(text("s1")) == SecretValue.from_text("written")


def test_capability_batches_are_asked_concurrently_and_all_answers_count(server, made):
    mount = new_mount(server, 2)
    server.set_policy(f"writer-{mount}", f'path "{mount}/data/harness/SECRET_TEXT/s*" '
                      '{ capabilities = ["create", "update", "read"] }')
    vault = made(mount, token=SecretValue.from_text(server.create_token(policies=[f"writer-{mount}"])))
    vault.layout()  # mount detection first, on its own
    server.reset_counts()
    server.latency = 0.02
    try:
        with pytest.raises(ReadOnlyManager, match="CONFIG_FILE/last"):  # in the last of five batches
            vault.check_access([text(f"s{i}") for i in range(999)] + [file("last")], [])
    finally:
        server.latency = 0.0
    assert server.request_count == 5
    assert max(in_flight for in_flight, _ in server.arrivals) > 1


def test_root_token_passes_check_access(server, made):
    made(new_mount(server, 1)).check_access([text("a")], [file("b")])


def test_read_only_flag_refuses_without_asking_vault(server, made):
    mount = new_mount(server, 2)
    vault = made(mount, read_only=True, address="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ReadOnlyManager, match="read_only"):
        vault.check_access([text("a")], [])
    with pytest.raises(ReadOnlyManager):
        vault.write(text("a"), SecretValue.from_text("x"))
    with pytest.raises(ReadOnlyManager):
        vault.delete(text("a"))


def test_write_with_read_only_token_is_permission_denied(server, made):
    mount = new_mount(server, 2)
    vault = made(mount, token=SecretValue.from_text(read_only_token(server, mount)))
    with pytest.raises(PermissionDenied, match="permission denied") as caught:
        vault.write(text("a"), SecretValue.from_text("value-canary"))
    assert "invalid token" not in str(caught.value)
    assert made(mount).read(text("a")) is None


def test_bad_token_is_permission_denied_saying_invalid_token(server, made):
    vault = made(new_mount(server, 2), token=SecretValue.from_text("bad-token-canary"))
    for call in (vault.ping, lambda: vault.read(text("a")), vault.list_ids):
        with pytest.raises(PermissionDenied, match="invalid token") as caught:
            call()
        assert "bad-token-canary" not in str(caught.value)


def test_ping_checks_token_version_and_folders(server, made):
    vault = made(new_mount(server, 2))
    vault.ping()
    assert vault.layout().version == 2


# ------------------------------------------------------------------ server trouble


def test_sealed_vault_is_a_transient_error(server, made):
    vault = made(new_mount(server, 2))
    vault.layout()
    server.seal()
    try:
        with pytest.raises(TransientError, match="Vault is sealed"):
            vault.read(text("a"))
    finally:
        server.unseal()
    assert vault.read(text("a")) is None


def test_rate_limit_is_a_transient_error(server, made):
    mount = new_mount(server, 2)
    vault = made(mount)
    vault.layout()
    server.add_fault(status=429, path_regex=f"{mount}/data/", count=None)
    try:
        with pytest.raises(TransientError, match="rate limited") as caught:
            vault.read(text("a"))
        assert f"{mount}/harness/SECRET_TEXT/a" in str(caught.value)
    finally:
        server.clear_faults()
    assert vault.read(text("a")) is None


def test_server_error_is_a_transient_error(server, made):
    mount = new_mount(server, 2)
    vault = made(mount)
    vault.layout()
    server.add_fault(status=500, path_regex=f"{mount}/metadata/", count=None)
    try:
        with pytest.raises(TransientError):
            vault.list_ids()
    finally:
        server.clear_faults()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_address_names_it(made):
    address = f"http://127.0.0.1:{free_port()}"
    vault = made("secret", address=address, timeout=5)
    with pytest.raises(ManagerUnreachable) as caught:
        vault.read(text("a"))
    assert address in str(caught.value)


@pytest.mark.parametrize("address", ["http://vault.example.com:8200", "http://10.0.0.5:8200",
                                     "http://[2001:db8::1]:8200"])
def test_plain_http_to_a_remote_host_is_refused(address):
    with pytest.raises(BackendError, match="only sent over TLS"):
        VaultBackend.from_settings("corp_vault", {"address": address, "secret_engine": "secret",
                                                  "token": SecretValue.from_text("t")})


@pytest.mark.parametrize("address", ["http://127.0.0.1:8200", "http://localhost:8200",
                                     "http://[::1]:8200", "https://vault.example.com"])
def test_loopback_http_and_any_https_are_accepted(address):
    backend = VaultBackend.from_settings("corp_vault", {"address": address, "secret_engine": "s",
                                                        "token": SecretValue.from_text("t")})
    backend.close()


def test_no_http_request_for_invalid_settings():
    with pytest.raises(BackendError, match="kv_version"):
        VaultBackend.from_settings("v", {"address": "https://v", "secret_engine": "s",
                                         "token": SecretValue.from_text("t"), "kv_version": 3})


# ------------------------------------------------------------------ TLS and namespaces


def self_signed_cert(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


@pytest.fixture
def tls_server(tmp_path):
    certfile, keyfile = self_signed_cert(tmp_path)
    srv = vaultsim.VaultServer(root_token=ROOT, tls=(str(certfile), str(keyfile)))
    srv.start()
    yield srv, certfile
    srv.stop()


def test_tls_with_ca_cert(tls_server, made):
    srv, certfile = tls_server
    srv.enable_kv("secret", version=2, namespace="")
    assert srv.url.startswith("https://")
    vault = made("secret", address=srv.url, ca_cert=certfile)
    vault.write(file("f"), SecretValue(b"\x00tls"))
    assert vault.read(file("f")).data == b"\x00tls"

    untrusting = made("secret", address=srv.url)
    with pytest.raises(ManagerUnreachable, match="TLS"):
        untrusting.read(file("f"))


def test_namespaces_are_isolated(server, raw, made):
    mount = f"ns{next(_mount_numbers)}"
    server.enable_kv(mount, version=2, namespace="")
    server.enable_kv(mount, version=2, namespace="team-a")
    in_ns = made(mount, namespace="team-a")
    in_root = made(mount)
    in_ns.write(text("a"), SecretValue.from_text("namespaced"))

    assert in_ns.read(text("a")) == SecretValue.from_text("namespaced")
    assert in_root.read(text("a")) is None
    assert in_root.list_ids() == []
    via_prefix = raw.adapter.get(f"/v1/team-a/{mount}/data/harness/SECRET_TEXT/a")
    assert via_prefix["data"]["data"] == {"value": "namespaced"}


# ------------------------------------------------------------------ pure checks and leaks


def test_size_problem_accounts_for_base64(made):
    vault = made("secret", address="https://vault.example.com")
    assert vault.size_problem(file("big"), 2 * 1024 * 1024) == (
        "a 2.0 MiB file is 2.7 MiB once base64-encoded, over this Vault's 1 MiB entry limit "
        "(max_value_bytes)")
    assert vault.size_problem(file("ok"), 700 * 1024) is None
    assert vault.size_problem(file("grows-over"), 900 * 1024) is not None
    assert vault.size_problem(text("t"), 900 * 1024) is None
    assert "text secret" in vault.size_problem(text("t"), 1024 * 1024 + 1)
    assert made("s", address="https://v", max_value_bytes=512 * 1024).size_problem(
        text("t"), 600 * 1024).endswith("512 KiB entry limit (max_value_bytes)")


def test_name_problem_refuses_what_vault_cannot_route(made):
    vault = made("secret", address="https://vault.example.com")
    assert vault.name_problem(text("ünïcødé name.v2")) is None
    assert "U+00A0" in vault.name_problem(text("no\u00a0break"))
    assert "U+200B" in vault.name_problem(text("zero\u200bwidth"))
    assert vault.name_problem(text("team/db")) is None  # a folder, as Vault paths have
    for unroutable in ("a//b", "/a", "a/", "..", "a/../b", "a/./b"):
        assert vault.name_problem(text(unroutable)) is not None, unroutable


def test_no_token_or_value_in_any_error_message(server, raw, made):
    mount = new_mount(server, 2)
    canary_value = "value-canary-77e1"
    writer = made(mount)
    writer.write(text("c"), SecretValue.from_text(canary_value))
    raw.secrets.kv.v2.create_or_update_secret(
        path="harness/CONFIG_FILE/c", mount_point=mount, secret={"value": canary_value + "!"})
    reader = made(mount, token=SecretValue.from_text(read_only_token(server, mount)))
    bad = made(mount, token=SecretValue.from_text("bad-token-canary"))
    messages = []
    attempts = [lambda: bad.read(text("c")), lambda: bad.write(text("c"), SecretValue.from_text(canary_value)),
                lambda: reader.write(text("c"), SecretValue.from_text(canary_value)),
                lambda: reader.check_access([text("c")], [text("c")]),
                lambda: writer.read(file("c"))]
    for attempt in attempts:
        with pytest.raises(BackendError) as caught:
            attempt()
        messages.append(str(caught.value))
    server.seal()
    try:
        with pytest.raises(TransientError) as caught:
            writer.write(text("c"), SecretValue.from_text(canary_value))
        messages.append(str(caught.value))
    finally:
        server.unseal()
    for message in messages:
        assert ROOT not in message and "bad-token-canary" not in message
        assert canary_value not in message
        assert "corp_vault" in message


# ------------------------------------------------------------------ misconfiguration


def test_oversized_write_is_value_too_large(server, made):
    """Vault's storage refuses an entry over 1 MiB; size_problem predicted it."""
    vault = made(new_mount(server, 2))
    big = file("keystore.p12")
    assert vault.size_problem(big, 900 * 1024) is not None
    with pytest.raises(ValueTooLarge) as caught:
        vault.write(big, SecretValue(bytes(900 * 1024)))
    assert "size limit" in str(caught.value)
    assert vault.read(big) is None


def test_unmounted_secret_engine_is_named(server, made):
    vault = made("nothing-mounted-here")
    with pytest.raises(BackendError, match="no secrets engine is mounted") as caught:
        vault.list_ids()
    assert "nothing-mounted-here" in str(caught.value)


def test_kv_version_1_on_a_v2_mount_is_explained(server, made):
    vault = made(new_mount(server, 2), kv_version=1)
    with pytest.raises(BackendError, match="the mount is KV v2"):
        vault.read(text("a"))


def test_kv_version_2_on_a_v1_mount_is_explained(server, made):
    vault = made(new_mount(server, 1), kv_version=2)
    assert vault.read(text("a")) is None  # a v2 read on v1 is a plain 404
    with pytest.raises(BackendError, match="set kv_version: 1"):
        vault.write(text("a"), SecretValue.from_text("x"))
