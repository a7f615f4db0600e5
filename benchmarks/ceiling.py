"""The highest request rate any client reaches on the server: many threads, each with
one kept-alive connection, reading one secret in a loop for a fixed time.

Usage: ceiling.py HOST PORT TOKEN PATH SECONDS THREADS  -> prints requests per second
"""

import http.client
import sys
import threading
import time


def main(host: str, port: int, token: str, path: str, seconds: float, threads: int) -> None:
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def worker(slot: int) -> None:
        connection = http.client.HTTPConnection(host, port)
        while time.monotonic() < stop:
            connection.request("GET", path, headers={"X-Vault-Token": token})
            connection.getresponse().read()
            counts[slot] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(f"{sum(counts) / (time.monotonic() - started):.1f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]))
