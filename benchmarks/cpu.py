"""CPU per request of secretshift's plan and apply (Vault -> Vault copy), for profiling
work: wall time is noisy on a shared machine, CPU time and request counts are not.

    python benchmarks/cpu.py                          # 2,000 secrets, 2 ms per request
    python benchmarks/cpu.py --count 500 --profile    # also writes py-spy speedscope files

Prints, per command: seconds, requests, requests per secret, CPU ms per request and
CPU s per 1,000 secrets of the secretshift process (the simulator runs in this one).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SECRETSHIFT, TOKEN, config_text, measure, seed_vault, values
from vaultsim import VaultServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=2, help="ms per request")
    parser.add_argument("--parallelism", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="run each command under py-spy")
    parser.add_argument("--out", default=".", help="folder for the profiles")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="secretshift-cpu-") as tmp, VaultServer(root_token=TOKEN) as server:
        folder = Path(tmp)
        for mount in ("src", "dst"):
            server.enable_kv(mount, version=2)
        seed_vault(server, "src", values(args.count, seed=args.count))
        (folder / "fingerprint.key").write_text(base64.b64encode(os.urandom(32)).decode())
        source = (f"{{type: vault, address: \"{server.url}\", token: {{env: VAULT_TOKEN}}, "
                  f"secret_engine: src, base_path: bench, kv_version: 2, parallelism: {args.parallelism}}}")
        (folder / "secretshift.yaml").write_text(config_text(server, source, "dst", args.parallelism, "copy"))
        cli = [str(SECRETSHIFT), "-c", str(folder / "secretshift.yaml")]
        print("| command | seconds | requests | requests/secret | CPU ms/request (kernel) | CPU s/1000 secrets |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, command in (("plan", ["plan", "--out", str(folder / "plan.json")]),
                              ("apply", ["apply", str(folder / "plan.json")]),
                              ("no-change plan", ["plan", "--detailed-exitcode"])):
            full = cli + command
            if args.profile:
                target = Path(args.out) / f"profile-{name.replace(' ', '-')}.speedscope.json"
                full = [shutil.which("py-spy") or "py-spy", "record", "--format", "speedscope", "--rate", "200",
                        "--gil", "--nonblocking", "--subprocesses", "-o", str(target), "--"] + full
            run = measure(server, full, {"VAULT_TOKEN": TOKEN}, args.latency / 1000)
            print(f"| {name} | {run.seconds:.2f} | {run.requests} | {run.requests / args.count:.2f} | "
                  f"{run.cpu * 1000 / max(1, run.requests):.3f} ({run.system * 1000 / max(1, run.requests):.3f}) | "
                  f"{run.cpu * 1000 / args.count:.2f} |", flush=True)


if __name__ == "__main__":
    main()
