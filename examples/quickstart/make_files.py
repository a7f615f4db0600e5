"""Generate the quickstart's file secrets: all keys and certificates are made fresh on
each run, every token is obviously fake. Usage: python3 make_files.py OUTPUT_DIR"""

from __future__ import annotations

import base64
import datetime
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def certificate(subject: str, key, issuer_name: str, issuer_key, ca: bool) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = certificate("Example Fake Root CA", root_key, "Example Fake Root CA", root_key, True)
    mid = certificate("Example Fake Issuing CA", mid_key, "Example Fake Root CA", root_key, True)
    leaf = certificate("api.example.invalid", leaf_key, "Example Fake Issuing CA", mid_key, False)
    (out / "tls_chain.pem").write_bytes(pem(leaf) + pem(mid) + pem(root))
    (out / "tls_key.pem").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_data = base64.b64encode(pem(root)).decode()
    (out / "kubeconfig").write_text(f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca_data}
    server: https://k8s.example.invalid:6443
  name: staging
contexts:
- context:
    cluster: staging
    user: deployer
  name: staging
current-context: staging
users:
- name: deployer
  user:
    token: fake-k8s-token-NOT-REAL-0123456789abcdef
""")

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pem = sa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    (out / "gcp_sa.json").write_text(json.dumps({
        "type": "service_account", "project_id": "fake-project-123",
        "private_key_id": "0123456789abcdef-fake", "private_key": sa_pem,
        "client_email": "deployer@fake-project-123.iam.gserviceaccount.com",
        "client_id": "100000000000000000000", "token_uri": "https://oauth2.example.invalid/token",
    }, indent=2) + "\n")

    ssh_key = ed25519.Ed25519PrivateKey.generate()
    (out / "deploy_ssh_key").write_bytes(ssh_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))

    p12 = pkcs12.serialize_key_and_certificates(
        b"app-keystore", leaf_key, leaf, [mid, root],
        serialization.BestAvailableEncryption(b"fake-keystore-pass"))
    assert b"\x00" in p12, "a PKCS#12 keystore is binary and holds NUL bytes"
    (out / "keystore.p12").write_bytes(p12)

    (out / "npmrc").write_text(
        "registry=https://registry.npmjs.org/\n"
        "//npm.pkg.example.invalid/:_authToken=npm_FAKEfakeFAKEfake0000000000000000000\n"
        "always-auth=true\n")
    (out / "docker_config.json").write_text(json.dumps({"auths": {"registry.example.invalid": {
        "auth": base64.b64encode(b"ci-bot:fake-registry-password").decode()}}}) + "\n")
    (out / "app.env").write_text("DATABASE_URL=postgres://app:fake-pw@db.example.invalid/app\nDEBUG=false\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
