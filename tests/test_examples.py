"""The Vault example runs end to end (against the Vault-API server standing in for
`vault server -dev`), with identical renders before and after the migration."""

import os
import subprocess
import sys
from pathlib import Path

import hvac

ROOT = Path(__file__).resolve().parent.parent


def test_vault_example_moves_everything_into_vault_and_renders_identically(vault):
    vault.enable_kv("secret", version=2)
    env = {**os.environ, "VAULT_ADDR": vault.url, "VAULT_TOKEN": vault.root_token,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "examples/vault/run.sh")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Plan: 28 to move" in result.stdout
    assert "No changes." in result.stdout
    assert "renders identical before and after" in result.stdout
    client = hvac.Client(url=vault.url, token=vault.root_token)
    texts = client.secrets.kv.v2.list_secrets("harness/SECRET_TEXT", mount_point="secret")["data"]["keys"]
    files = client.secrets.kv.v2.list_secrets("harness/CONFIG_FILE", mount_point="secret")["data"]["keys"]
    assert len(texts) == 18 and len(files) == 10
    stored = client.secrets.kv.v2.read_secret_version(
        "harness/CONFIG_FILE/app_keystore", mount_point="secret", raise_on_deleted_version=True)
    assert stored["data"]["data"]["encoding"] == "base64"
