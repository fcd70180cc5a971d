"""Load and scale figures for `make bench`: many steps, a wide parallel group, a step with a gigabyte of
output, and checking a very long file. Each runner figure is a whole process, its memory measured by
bench/rss.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rss  # bench/rss.py, beside this file

BUSYBOX = "runner/busybox:latest"
BASE = "runner/base:bookworm"
HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


def measured(command: list[str], state: Path | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB of the command alone, exit code), through bench/rss.py."""
    env = {**os.environ, "RUNNER_STATE_DIR": str(state)} if state else None  # keeps big step logs out
    completed = subprocess.run(
        [sys.executable, str(HERE / "rss.py"), *command], capture_output=True, text=True, env=env, check=True
    )
    figures = json.loads(completed.stdout)
    return float(figures["wall"]), float(figures["rss_mib"]), int(figures["exit"])


def runner(path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "run",
        str(path),
        "-q",
        "--image",
        f"busybox={BUSYBOX}",
        "--image",
        f"atlassian/default-image={BASE}",
        *extra,
    ]


def many_steps(directory: Path, count: int = 200) -> None:
    steps = "".join(f"  - {{id: s{index}, script: 'true'}}\n" for index in range(count))
    path = directory / "many.yml"
    path.write_text(f"image: busybox\nsteps:\n{steps}", encoding="utf-8")
    wall, rss, code = measured(runner(path))
    alone, _, _ = measured(runner(path, "--no-ahead"))
    floor, _, _ = measured([sys.executable, str(HERE / "sdk_baseline.py"), BUSYBOX, str(count)])
    print(
        f"{count} steps: runner {wall:.1f} s (exit {code}, peak RSS {rss:.0f} MiB), with --no-ahead "
        f"{alone:.1f} s, SDK floor {floor:.1f} s; ratio to the floor {wall / floor:.3f} "
        f"(--no-ahead {alone / floor:.3f}): steps made ahead save {alone - wall:.1f} s"
    )


def wide_parallel(directory: Path, width: int = 16) -> None:
    steps = "".join(f"        - step: {{name: p{index}, script: ['sleep 1']}}\n" for index in range(width))
    path = directory / "bitbucket-pipelines.yml"
    path.write_text(f"pipelines:\n  default:\n    - parallel:\n        steps:\n{steps}", encoding="utf-8")
    wall, rss, code = measured(runner(path, "--max-parallel", str(width)))
    sequential = width * 1.0
    print(
        f"{width}-way parallel group of 1 s steps on {os.cpu_count()} cores: {wall:.1f} s (exit {code}, "
        f"peak RSS {rss:.0f} MiB; {sequential:.0f} s of sleeping in all)"
    )


def big_output(directory: Path) -> None:
    for size_mib in (100, 1024):
        script = f"head -c {size_mib * MIB} /dev/zero | tr '\\\\0' x | fold -w 1000"
        path = directory / f"out{size_mib}.yml"
        path.write_text(f'image: busybox\nsteps:\n  - {{id: talk, script: "{script}"}}\n', encoding="utf-8")
        wall, rss, code = measured(runner(path), directory / "state")
        container = subprocess.run(
            ["docker", "run", "-d", "--init", BUSYBOX, "sh", "-c", script.replace("\\\\", "\\")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        try:
            started = time.perf_counter()
            subprocess.run(
                ["docker", "logs", "-f", container],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            logs = time.perf_counter() - started
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        print(
            f"a step printing {size_mib} MiB: runner {wall:.1f} s, {size_mib / wall:.0f} MiB/s, peak RSS "
            f"{rss:.0f} MiB (exit {code}); docker logs -f: {logs:.1f} s, {size_mib / logs:.0f} MiB/s"
        )


def validate_long(directory: Path, count: int = 1000) -> None:
    steps = "".join(
        f"  - {{id: s{index}, name: step {index}, script: [echo {index}]}}\n" for index in range(count)
    )
    path = directory / "long.yml"
    path.write_text(f"image: busybox\nsteps:\n{steps}", encoding="utf-8")
    wall, rss, code = measured([sys.executable, "-m", "runner", "validate", str(path)])
    print(f"runner validate of a {count}-step file: {wall:.2f} s, peak RSS {rss:.0f} MiB (exit {code})")


def main() -> None:
    print(f"memory: {rss.METHOD}")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        validate_long(directory)
        wide_parallel(directory)
        big_output(directory)
        many_steps(directory)


if __name__ == "__main__":
    main()
