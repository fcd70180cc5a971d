"""Big source trees, for `make bench`: the runner's memory while it copies a tree, and what a fresh tree
per step costs once the first step has paid for it.

1. Memory: a 500 MB and a 2 GB tree (no git: every file is copied) run as the workspace of a one-step
   native pipeline; the runner's peak RSS against `docker cp` of the same tree into a container. Target:
   under 100 MiB for both sizes, whatever the size.
2. A fresh tree per step: a checkout like a real one (about 13,800 source files and some large binaries,
   committed and packed as in a clone, `.git` included) with a five-step `bitbucket-pipelines.yml` on
   one image, against the same pipeline in an empty checkout; each step's duration, side by side.
   Target: steps 2-5 each at most 0.5 s longer than on the empty checkout.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rss  # bench/rss.py, beside this file

from runner.backend import connect
from runner.engine.events import SilentReporter
from runner.engine.executor import Executor, RunOptions
from runner.formats import load_pipeline
from runner.teardown.ledger import Ledger

HERE = Path(__file__).resolve().parent
BUSYBOX = "runner/busybox:latest"
BASE = "runner/base:bookworm"
MB = 1000 * 1000
SOURCE_FILES = 13_800
ROUNDS = 3
FIVE_STEPS = "".join(
    f"    - step:\n        name: step {n}\n        script:\n          - test -e bitbucket-pipelines.yml\n"
    f"          - touch made-by-step-{n} && test ! -e made-by-step-{n - 1}\n"
    for n in range(1, 6)
)
BITBUCKET = f"image: atlassian/default-image:4\npipelines:\n  default:\n{FIVE_STEPS}"


def fill(root: Path, total_mb: int, blobs_share: float = 0.45) -> None:
    """A tree of about `total_mb`: source-like text files in nested folders, and a few random binaries."""
    rng = random.Random(15)
    words = [f"token{index}" for index in range(400)]
    text_bytes = int(total_mb * MB * (1 - blobs_share))
    per_file = max(1, text_bytes // SOURCE_FILES)
    for index in range(SOURCE_FILES):
        folder = root / f"pkg{index % 97}" / f"mod{index % 13}"
        folder.mkdir(parents=True, exist_ok=True)
        line = " ".join(rng.choices(words, k=12)) + "\n"
        (folder / f"file{index}.py").write_text((line * (per_file // len(line) + 1))[:per_file])
    blobs = 6
    for index in range(blobs):
        with open(root / f"asset{index}.bin", "wb") as file:
            left = int(total_mb * MB * blobs_share / blobs)
            while left:
                chunk = min(left, 8 * MB)
                file.write(rng.randbytes(chunk))
                left -= chunk


def git_commit(root: Path) -> None:
    """Committed, and packed as a clone's `.git` is."""
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        # no gc of its own in the background, which would refuse the one below
        ["-c", "gc.auto=0", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "tree"],
        ["gc", "-q", "--prune=now"],
    ):
        subprocess.run(["git", "-C", str(root), *command], check=True, stdout=subprocess.DEVNULL)


def size_mb(root: Path) -> float:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) / MB


def measured(command: list[str]) -> tuple[float, float, int]:
    completed = subprocess.run(
        [sys.executable, str(HERE / "rss.py"), *command], capture_output=True, text=True, check=True
    )
    figures = json.loads(completed.stdout)
    return float(figures["wall"]), float(figures["rss_mib"]), int(figures["exit"])


def memory(directory: Path) -> None:
    print(f"memory while the tree is copied ({rss.METHOD}):")
    for total in (500, 2000):
        root = directory / f"tree{total}"
        fill(root, total)
        (root / "runner.yml").write_text(
            "image: busybox\nsteps:\n  - {id: count, script: 'du -sm . | tail -1'}\n"
        )
        wall, peak, code = measured(
            [
                sys.executable,
                "-m",
                "runner",
                "run",
                str(root / "runner.yml"),
                "-q",
                "--image",
                f"busybox={BUSYBOX}",
            ]
        )
        container = subprocess.run(
            ["docker", "create", BUSYBOX, "true"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            cp_wall, cp_peak, _ = measured(["docker", "cp", f"{root}/.", f"{container}:/workspace"])
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        verdict = "met" if peak < 100 else "NOT MET"
        print(
            f"  {size_mb(root):6.0f} MB tree: runner peak RSS {peak:5.1f} MiB, {wall:5.1f} s (exit {code}); "
            f"docker cp {cp_peak:5.1f} MiB, {cp_wall:5.1f} s  [target < 100 MiB: {verdict}]"
        )
        shutil.rmtree(root)


def step_durations(path: Path) -> list[float]:
    options = RunOptions(image_map={"atlassian/default-image:4": BASE})
    result = Executor(load_pipeline(path), connect(), Ledger(), SilentReporter(), options).run()
    assert result.exit_code == 0, result.results
    return [r.duration for r in result.results]


def fresh_trees(directory: Path) -> None:
    big, empty = directory / "checkout", directory / "empty"
    for root in (big, empty):
        root.mkdir()
        (root / "bitbucket-pipelines.yml").write_text(BITBUCKET)
    fill(big, 380)
    git_commit(big)
    git_commit(empty)
    on_big: list[list[float]] = []
    on_empty: list[list[float]] = []
    walls = {"big": [], "empty": []}
    for _ in range(ROUNDS):
        for name, root, durations in (("big", big, on_big), ("empty", empty, on_empty)):
            started = time.perf_counter()
            durations.append(step_durations(root / "bitbucket-pipelines.yml"))
            walls[name].append(time.perf_counter() - started)
    medians_big = [statistics.median(run[index] for run in on_big) for index in range(5)]
    medians_empty = [statistics.median(run[index] for run in on_empty) for index in range(5)]
    print(
        f"a fresh tree per step: 5 Bitbucket steps on one image, a {size_mb(big):.0f} MB checkout "
        f"({SOURCE_FILES} source files, .git included) against an empty one, {ROUNDS} alternated rounds "
        "(medians):"
    )
    for index in range(5):
        extra = medians_big[index] - medians_empty[index]
        target = "" if index == 0 else f"  [target <= +0.5 s: {'met' if extra <= 0.5 else 'NOT MET'}]"
        print(
            f"  step {index + 1}: {medians_big[index]:5.2f} s against {medians_empty[index]:5.2f} s, "
            f"{extra:+5.2f} s{target}"
        )
    big_wall, empty_wall = statistics.median(walls["big"]), statistics.median(walls["empty"])
    print(f"  whole runs: {big_wall:.1f} s against {empty_wall:.1f} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        memory(Path(name))
        fresh_trees(Path(name))


if __name__ == "__main__":
    main()
