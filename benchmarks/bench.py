"""secretshift against a naive sequential script, on the Vault-API simulator with a fixed
injected latency per request, all in one run so that the ratios compare like with like.

    python benchmarks/bench.py            # 2,000 secrets at 10 ms and 2 ms (a few minutes)
    python benchmarks/bench.py --full     # also 10,000 secrets (much longer)
    python benchmarks/bench.py --counts 50000 --latencies 0 --only-memory

For each size and latency, for Vault -> Vault (copy and move) and builtin -> Vault (copy):
secretshift `plan --out`, `apply FILE`, and a no-change `plan`; from Vault, the naive
loop doing the same copy or move, and its read-only pass; the ceiling (the best request
rate a minimal concurrent client gets from that server); requests per secret, CPU seconds
per 1,000 secrets and peak RSS of each client process. Times are wall-clock seconds; ratios are naive / secretshift.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import hvac

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from vaultsim import VaultServer  # noqa: E402

from engine.backends.builtin import BuiltinBackend  # noqa: E402
from engine.model import Kind, SecretId, SecretValue  # noqa: E402

SECRETSHIFT = Path(sys.executable).parent / "secretshift"
TOKEN = "root"
BASE = "bench"


@dataclass
class Run:
    """One measured client process."""

    seconds: float
    cpu: float
    rss_mb: float
    requests: int
    system: float = 0.0  # the part of `cpu` spent in the kernel


def measure(server: VaultServer, command: list[str], env: dict | None = None, latency: float = 0.0) -> Run:
    """Run a client process to the end, with `latency` seconds added to every request it
    makes; its wall time, CPU, peak RSS and requests served."""
    server.reset_counts()
    server.latency = latency
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as peak:
        wrapped = [sys.executable, str(ROOT / "benchmarks" / "peakrss.py"), peak.name, "--", *command]
        started = time.perf_counter()
        try:
            process = subprocess.Popen(wrapped, env={**os.environ, **(env or {})},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(process.pid, 0)  # CPU: the command's and the small wrapper's
        finally:
            server.latency = 0
        elapsed = time.perf_counter() - started
        rss_kib = int(peak.read() or 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 2):
        raise SystemExit(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, rss_kib / 1024, server.request_count, usage.ru_stime)


def values(count: int, seed: int) -> dict[SecretId, bytes]:
    """Text and file secrets from 20 B to 16 KiB."""
    rng = random.Random(seed)
    made = {}
    for i in range(count):
        size = int(20 * (16384 / 20) ** rng.random())
        kind = Kind.FILE if i % 3 == 0 else Kind.TEXT
        data = os.urandom(size) if kind is Kind.FILE else base64.b64encode(os.urandom(size))[:size]
        made[SecretId(kind, f"secret-{i:06d}")] = data
    return made


def seed_vault(server: VaultServer, mount: str, secrets: dict[SecretId, bytes]) -> None:
    client = hvac.Client(url=server.url, token=TOKEN)
    folder = {Kind.TEXT: "SECRET_TEXT", Kind.FILE: "CONFIG_FILE"}

    def put(item):
        secret, data = item
        value = ({"value": base64.b64encode(data).decode(), "encoding": "base64"} if secret.kind is Kind.FILE
                 else {"value": data.decode()})
        client.secrets.kv.v2.create_or_update_secret(f"{BASE}/{folder[secret.kind]}/{secret.name}",
                                                     secret=value, mount_point=mount)

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(put, secrets.items()))


def seed_builtin(path: Path, key: bytes, secrets: dict[SecretId, bytes]) -> None:
    store = BuiltinBackend.from_settings("source", {"path": path, "key": SecretValue(key), "read_only": False})
    for secret, data in secrets.items():
        store.write(secret, SecretValue(data))
    store.close()


def config_text(server: VaultServer, source: str, target_mount: str, parallelism: int, mode: str) -> str:
    vault = (f"type: vault, address: \"{server.url}\", token: {{env: VAULT_TOKEN}}, base_path: {BASE}, "
             f"kv_version: 2, parallelism: {parallelism}")
    return f"""version: 1
managers:
  source: {source}
  target: {{{vault}, secret_engine: {target_mount}}}
fingerprint_key: {{file: fingerprint.key}}
migrations:
  - {{from: source, to: target, mode: {mode}}}
"""


def ceiling(server: VaultServer, latency: float) -> float:
    """The best rate over a few client shapes (processes x threads) reading one secret, in
    requests/second, with `latency` seconds added to every request."""
    server.enable_kv("probe", version=2)
    hvac.Client(url=server.url, token=TOKEN).secrets.kv.v2.create_or_update_secret(
        "x", secret={"value": "x"}, mount_point="probe")
    best = 0.0
    server.latency = latency
    try:
        for processes, threads in ((1, 32), (2, 32), (2, 64)):
            command = [sys.executable, str(ROOT / "benchmarks" / "ceiling.py"), "127.0.0.1", str(server.port),
                       TOKEN, "/v1/probe/data/x", "3", str(threads)]
            clients = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
            best = max(best, sum(float(c.communicate()[0]) for c in clients))
    finally:
        server.latency = 0
    return best


@dataclass(frozen=True)
class Case:
    """One row of the table: what is migrated, how, and at what latency (seconds)."""

    count: int
    latency: float
    source: str  # "vault" or "builtin"
    mode: str  # "copy" or "move"


def scenario(server: VaultServer, case: Case, secrets, work: Path, index: int, parallelism: int) -> dict:
    """secretshift plan/apply/no-change plan and, from Vault, the naive loop, on one server;
    seeding is not measured and runs without the latency."""
    source_mount, target_mount, naive_mount = f"src{index}", f"dst{index}", f"naive{index}"
    for mount in (target_mount, naive_mount):
        server.enable_kv(mount, version=2)
    folder = work / f"run{index}"
    folder.mkdir()
    (folder / "fingerprint.key").write_text(base64.b64encode(os.urandom(32)).decode())
    if case.source == "vault":
        server.enable_kv(source_mount, version=2)
        seed_vault(server, source_mount, secrets)
        source = (f"{{type: vault, address: \"{server.url}\", token: {{env: VAULT_TOKEN}}, "
                  f"secret_engine: {source_mount}, base_path: {BASE}, kv_version: 2, parallelism: {parallelism}}}")
    else:
        key = os.urandom(32)
        (folder / "master.key").write_text(base64.b64encode(key).decode())
        seed_builtin(folder / "source.db", key, secrets)
        source = "{type: builtin, path: source.db, key: {file: master.key}}"
    (folder / "secretshift.yaml").write_text(config_text(server, source, target_mount, parallelism, case.mode))
    env = {"VAULT_TOKEN": TOKEN}
    cli = [str(SECRETSHIFT), "-c", str(folder / "secretshift.yaml")]
    row = {"plan": measure(server, cli + ["plan", "--out", str(folder / "plan.json")], env, case.latency)}
    row["apply"] = measure(server, cli + ["apply", str(folder / "plan.json")], env, case.latency)
    row["noop"] = measure(server, cli + ["plan", "--detailed-exitcode"], env, case.latency)
    if case.source == "vault":
        naive = [sys.executable, str(ROOT / "benchmarks" / "naive.py"), server.url, TOKEN]
        # A source of its own (secretshift's move emptied the other); the read-only pass
        # goes first, as a naive move empties this one too.
        naive_source = f"naivesrc{index}"
        server.enable_kv(naive_source, version=2)
        seed_vault(server, naive_source, secrets)
        row["naive read"] = measure(server, naive + [naive_source, naive_mount, BASE, "read"], latency=case.latency)
        row[f"naive {case.mode}"] = measure(server, naive + [naive_source, naive_mount, BASE, case.mode],
                                            latency=case.latency)
    return row


def report(case: Case, row: dict, best: float) -> list[str]:
    per_k = 1000 / case.count
    lines = []
    for name, run in row.items():
        client = name if name.startswith("naive") else f"secretshift {name}"
        lines.append(f"| {case.count} | {case.latency * 1000:g} ms | {case.source} -> vault {case.mode} | {client} | "
                     f"{run.seconds:.2f} | {run.requests / case.count:.2f} | {run.requests / run.seconds:.0f} | "
                     f"{run.cpu * per_k:.2f} | {run.rss_mb:.0f} |")
    naive = row.get(f"naive {case.mode}")
    if naive:
        plan, apply, noop = row["plan"], row["apply"], row["noop"]
        lines.append(
            f"| | | | **ratios** | apply {naive.seconds / apply.seconds:.1f}x faster than the naive "
            f"{case.mode}; plan+apply {naive.seconds / (plan.seconds + apply.seconds):.1f}x; no-change plan "
            f"{noop.seconds / row['naive read'].seconds:.2f} of the naive read pass; apply request rate "
            f"{apply.requests / apply.seconds / best:.0%} of the ceiling ({best:.0f}/s) | | | | | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also 10,000 secrets")
    parser.add_argument("--counts", type=int, nargs="*", help="numbers of secrets (default 2000; --full adds 10000)")
    parser.add_argument("--latencies", type=float, nargs="*", default=[10, 2], help="ms per request")
    parser.add_argument("--modes", nargs="*", default=["copy", "move"], choices=["copy", "move"],
                        help="Vault -> Vault migration modes (builtin -> Vault is always a copy)")
    parser.add_argument("--parallelism", type=int, default=32, help="secretshift's parallelism per manager")
    parser.add_argument("--only-memory", action="store_true", help="builtin -> vault only, no naive runs")
    args = parser.parse_args()
    counts = args.counts or ([2000, 10000] if args.full else [2000])
    lines = ["| secrets | latency | migration | client | seconds | requests/secret | requests/s | "
             "CPU s/1000 secrets | peak RSS MB |", "|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    index = 0
    with tempfile.TemporaryDirectory(prefix="secretshift-bench-") as tmp:
        for count in counts:
            secrets = values(count, seed=count)
            for latency_ms in args.latencies:
                cases = [] if args.only_memory else [Case(count, latency_ms / 1000, "vault", m) for m in args.modes]
                cases.append(Case(count, latency_ms / 1000, "builtin", "copy"))
                server = VaultServer(root_token=TOKEN).start()
                try:
                    best = ceiling(server, latency_ms / 1000)
                    for case in cases:
                        index += 1
                        row = scenario(server, case, secrets, Path(tmp), index, args.parallelism)
                        row = {name: run for name, run in row.items() if run is not None}
                        lines += report(case, row, best)
                        print("\n".join(lines[-(len(row) + (1 if f"naive {case.mode}" in row else 0)):]), flush=True)
                finally:
                    server.stop()
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
