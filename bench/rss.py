"""Runs a command and prints its wall time, peak RSS and exit code as one JSON line: how every figure of
`make bench` that names memory is measured.

This small process starts the command itself, so the figure is the command's alone. A process forked from
the benchmark would not do: Linux carries the forking process's high-water mark into the child's
`ru_maxrss` until the child execs, and the benchmark's own process grows large (it holds a gigabyte of
output at one point). Here, that mark is this launcher's: a bare interpreter of about 10 MiB.

    python bench/rss.py COMMAND...  ->  {"wall": 1.23, "rss_mib": 54.1, "exit": 0}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

METHOD = "peak RSS read by wait4() in a small launcher process (bench/rss.py), never the benchmark's child"


def main(command: list[str]) -> None:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {"wall": wall, "rss_mib": usage.ru_maxrss / 1024, "exit": os.waitstatus_to_exitcode(status)}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
