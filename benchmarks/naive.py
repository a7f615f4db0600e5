"""The obvious alternative to secretshift: a sequential hvac loop.

Usage: naive.py URL TOKEN SOURCE_MOUNT TARGET_MOUNT BASE_PATH (copy|move|read)
`copy` reads every secret of the source and writes it to the target; `move` then also
deletes the source (KV v2 soft delete, as secretshift does); `read` only reads.
Runs in its own process so that its CPU and memory are measured apart from the server.
"""

import sys

import hvac

FOLDERS = ("SECRET_TEXT", "CONFIG_FILE")


def main(url: str, token: str, source: str, target: str, base: str, mode: str) -> None:
    client = hvac.Client(url=url, token=token)
    kv = client.secrets.kv.v2
    for folder in FOLDERS:
        keys = kv.list_secrets(f"{base}/{folder}", mount_point=source)["data"]["keys"]
        for key in keys:
            path = f"{base}/{folder}/{key}"
            data = kv.read_secret_version(path, mount_point=source, raise_on_deleted_version=True)["data"]["data"]
            if mode in ("copy", "move"):
                kv.create_or_update_secret(path, secret=data, mount_point=target)
            if mode == "move":
                kv.delete_latest_version_of_secret(path, mount_point=source)


if __name__ == "__main__":
    main(*sys.argv[1:7])
