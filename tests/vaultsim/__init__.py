"""A Vault-API-compatible HTTP server for tests (stdlib only).

    with VaultServer(root_token="root") as srv:        # 127.0.0.1, free port
        srv.enable_kv("secret", version=2)              # namespace="a/b" creates it
        srv.set_policy("ro", 'path "secret/*" { capabilities = ["read", "list"] }')
        token = srv.create_token(policies=["ro"])       # plus "default"
        fault = srv.add_fault(status=429, path_regex=r"secret/data/", count=1)
        client = hvac.Client(url=srv.url, token="root")

Behaviour follows /work/shared/reference/api-facts.md sections 0-4. Layout: server.py
(HTTP, public API, faults), core.py (check order), sysapi.py (sys/ and auth/token/),
kv.py / kv2.py (engines), policy.py (HCL + ACL), state.py (namespaces, mounts, tokens),
responses.py (envelopes and error bodies). `python -m vaultsim` runs it standalone.

Deliberate differences from Vault: namespaces work as in Enterprise (CE ignores the
header); tokens never expire; any unseal key unseals; only KV engines can be mounted.
"""

from .server import Fault, VaultServer

__all__ = ["Fault", "VaultServer"]
