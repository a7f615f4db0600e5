"""python -m vaultsim --port 8200 --root-token root --kv secret:2 --kv kv1:1"""

from __future__ import annotations

import argparse
import sys
import threading

from .server import VaultServer


def main(argv: list[str] | None = None) -> int:
    """Run the simulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m vaultsim", description=__doc__)
    parser.add_argument("--port", type=int, default=8200, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--root-token", default="root")
    parser.add_argument("--kv", action="append", default=[], metavar="PATH:VERSION",
                        help="mount a KV engine, e.g. secret:2 (repeatable; default secret:2)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert and args.tls_key else None
    srv = VaultServer(root_token=args.root_token, latency=args.latency, tls=tls, port=args.port)
    for spec in args.kv or ["secret:2"]:
        path, _, version = spec.partition(":")
        srv.enable_kv(path, version=int(version or 2))
    srv.start()
    print(f"vaultsim listening on {srv.url} (root token: {args.root_token})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
