"""Run a command and write its peak RSS (KiB) to a file: `peakrss.py OUT -- COMMAND...`.

Linux charges a child the memory of the process it was forked from until it execs, so
a client started straight from the benchmark (which holds the Vault simulator and all
its secrets) reports the benchmark's size, not its own. Started from this small process,
it reports its own. Exits with the command's status.
"""

import os
import subprocess
import sys


def main() -> int:
    out, separator, *command = sys.argv[1:]
    assert separator == "--", __doc__
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    with open(out, "w") as handle:
        handle.write(str(usage.ru_maxrss))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
