"""`make bench`, part 6: 12 pipelines submitted at once to a three-node Swarm (scripts/swarm.sh) against
the same 12 run one after another on this machine's engine, side by side in one run. Printed: the wall
time of each side, the overhead of one run through the cluster (submission, shipping the workspace,
placement, the job's own runner) against a local run, and how the runs spread over the nodes.

On this machine the three nodes share its two cores, so the cluster side shows the cost of going through
the cluster, not a speed-up: the figures are reported as they are, with no target.
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
RUNS = 12
PIPELINE = """
image: busybox
steps:
  - {id: build, script: "echo building; sleep 2"}
  - {id: test, script: "echo testing; sleep 1"}
finally:
  - {id: tidy, script: echo done}
"""


def _swarm() -> dict[str, str]:
    done = subprocess.run(
        ["bash", str(TOP / "scripts/swarm.sh"), "start"], capture_output=True, text=True, check=True
    )
    return dict(line.split("=", 1) for line in done.stdout.strip().splitlines() if "=" in line)


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


def _node(output: str) -> str:
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 5 and words[0] == "run" and words[2:4] == ["on", "node"]:
            return words[4]
    return "?"


def main() -> None:
    hosts = _swarm()
    try:
        _measure(hosts)
    finally:
        subprocess.run(["bash", str(TOP / "scripts/swarm.sh"), "stop"], capture_output=True, check=False)


def _measure(hosts: dict[str, str]) -> None:
    registry = hosts["RUNNER_REGISTRY"]
    cluster_env = {**os.environ, "DOCKER_HOST": hosts["DOCKER_HOST"], "RUNNER_REGISTRY": registry}
    local_env = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "runner.yml"
        path.write_text(PIPELINE, encoding="utf-8")
        run = [sys.executable, "-m", "runner", "run", str(path)]
        local = [*run, "--image", "busybox=runner/busybox:latest"]
        clustered = [*run, "--cluster", "--image", f"busybox={registry}/runner/busybox:latest"]
        _timed(clustered, cluster_env)  # warm-up: the runner's image built, pushed and pulled once
        _timed(local, local_env)

        started = time.perf_counter()
        local_times = [_timed(local, local_env)[0] for _ in range(RUNS)]
        local_wall = time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=RUNS) as pool:
            results = list(pool.map(lambda _: _timed(clustered, cluster_env), range(RUNS)))
        cluster_wall = time.perf_counter() - started

        single = [_timed(clustered, cluster_env)[0] for _ in range(3)]
    spread = collections.Counter(_node(output) for _, output in results)
    overhead = statistics.median(single) - statistics.median(local_times)
    print(f"\n{RUNS} pipelines (2 steps and a finally, 3 s of work each)")
    per_run = statistics.median(local_times)
    print(f"  one engine, one after another:     {local_wall:6.1f} s wall, {per_run:.1f} s per run")
    print(f"  three-node Swarm, all at once:     {cluster_wall:6.1f} s wall")
    print(
        f"  one run alone through the cluster: {statistics.median(single):6.1f} s (median of 3), "
        f"{overhead:+.1f} s against a local run"
    )
    print("  runs per node: " + ", ".join(f"{node} {count}" for node, count in sorted(spread.items())))
    print("  (the three nodes share this machine's cores: this is the cost of the cluster, not a speed-up)")


if __name__ == "__main__":
    main()
