"""`make bench`: the runner against the Docker SDK floor, measured side by side in one run.

1. A pipeline of 20 trivial steps on the busybox image, and the same 20 containers created, started,
   waited and removed with the SDK directly (bench/sdk_baseline.py), alternated round by round.
   Each side is a whole process, so interpreter start-up counts on both. The ratio is taken per round,
   and its median is printed. Target: at most 0.85 (steps made ahead, in one lane).
2. The teardown of a run that leaves 10 detached services running: how long the final sweep takes.
3. The same multi-step `bitbucket-pipelines.yml` (a service, artifacts, a cache) run by runner and by
   bitbucket-pipeline-runner (bench/peer: its own venv and the offline stand-ins of its helper images),
   alternated; the ratio runner/peer per round, and each tool's exit code on a failing variant.
   Target: at most 0.32, with the right exit code where the peer's is wrong.
4. Removing a leak of 100 labelled containers, 20 networks and 20 volumes: `runner cleanup` against the
   best of 16 concurrent `docker rm -f` and concurrent kills then `docker ... prune`, each on a fresh
   leak. Target: at most 1.0, the engine's own floor.
5. bench/load.py: many steps (with and without steps ahead), a wide parallel group, a gigabyte of output,
   a very long file; memory measured by bench/rss.py, a launcher that cannot count the benchmark's own.
6. bench/trees.py: the runner's memory while it copies a 500 MB and a 2 GB tree, and what a fresh tree
   per step costs on a big checkout against an empty one.
7. bench/cluster.py: 12 pipelines submitted at once to a three-node Swarm against the same 12 one after
   another on this engine: wall times, the overhead of one run through the cluster, the spread over nodes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cluster  # bench/cluster.py, beside this file
import load  # bench/load.py, beside this file
import trees  # bench/trees.py, beside this file

from runner.backend import connect
from runner.engine.events import SilentReporter
from runner.engine.executor import Executor, RunOptions
from runner.formats import load_pipeline
from runner.teardown.ledger import Ledger

BUSYBOX = "runner/busybox:latest"
STEPS = 20
ROUNDS = 7
SERVICES = 10
HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def write_pipeline(directory: Path, text: str) -> Path:
    path = directory / "runner.yml"
    path.write_text(text, encoding="utf-8")
    return path


def step_overhead(directory: Path) -> None:
    steps = "".join(f"  - {{id: s{index}, script: 'true'}}\n" for index in range(STEPS))
    pipeline = write_pipeline(directory, f"image: busybox\nsteps:\n{steps}")
    runner = [sys.executable, "-m", "runner", "run", str(pipeline), "-q", "--image", f"busybox={BUSYBOX}"]
    sdk = [sys.executable, str(HERE / "sdk_baseline.py"), BUSYBOX, str(STEPS)]
    timed(runner), timed(sdk)  # warm-up: page cache, image layers
    runner_times, sdk_times, ratios = [], [], []
    for _ in range(ROUNDS):
        runner_times.append(timed(runner))
        sdk_times.append(timed(sdk))
        ratios.append(runner_times[-1] / sdk_times[-1])
    runner_median, sdk_median = statistics.median(runner_times), statistics.median(sdk_times)
    print(f"{STEPS} trivial steps, {ROUNDS} alternated rounds (whole process each, medians):")
    print(f"  runner       {runner_median:6.2f} s   {runner_median / STEPS * 1000:6.0f} ms/step")
    print(f"  Docker SDK   {sdk_median:6.2f} s   {sdk_median / STEPS * 1000:6.0f} ms/step")
    print(
        f"  ratio runner/SDK per step: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 0.85)"
    )


def teardown_time(directory: Path) -> None:
    services = "".join(f"  - {{id: svc{n}, detach: true, script: sleep 600}}\n" for n in range(SERVICES))
    text = f"image: busybox\nsteps:\n{services}  - {{script: 'true'}}\n"
    pipeline = load_pipeline(write_pipeline(directory, text))
    sweeps = []
    for _ in range(3):
        options = RunOptions(image_map={"busybox": BUSYBOX})
        result = Executor(pipeline, connect(), Ledger(), SilentReporter(), options).run()
        assert result.resources is not None and len(result.resources.left_running) == SERVICES
        sweeps.append(result.resources.sweep_seconds)
    print(
        f"teardown of a run with {SERVICES} detached services still running "
        f"(network, volume, 11 containers): median {statistics.median(sweeps):.2f} s of 3"
    )


def exit_code(command: list[str]) -> int:
    return subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    ).returncode


def peer_comparison() -> None:
    peer = HERE / "peer"
    subprocess.run(["bash", str(peer / "setup.sh")], check=True, stdout=subprocess.DEVNULL)
    good, failing = peer / "project", peer / "project-failing"

    def runner_on(project: Path) -> list[str]:
        return [sys.executable, "-m", "runner", "run", str(project / "bitbucket-pipelines.yml"), "-q"]

    def peer_on(project: Path) -> list[str]:
        return ["bash", str(peer / "run_peer.sh"), str(project)]

    timed(runner_on(good)), timed(peer_on(good))  # warm-up: both caches filled
    ratios, runner_times, peer_times = [], [], []
    for _ in range(5):
        runner_times.append(timed(runner_on(good)))
        peer_times.append(timed(peer_on(good)))
        ratios.append(runner_times[-1] / peer_times[-1])
    print("bitbucket-pipelines.yml with a service, artifacts and a cache, 3 steps, 5 alternated rounds:")
    print(f"  runner                    {statistics.median(runner_times):6.2f} s")
    print(f"  bitbucket-pipeline-runner {statistics.median(peer_times):6.2f} s")
    print(
        f"  ratio runner/peer: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 0.32)"
    )
    print(
        f"  exit codes, passing pipeline: runner {exit_code(runner_on(good))}, "
        f"peer {exit_code(peer_on(good))}"
    )
    print(
        f"  exit codes, failing pipeline: runner {exit_code(runner_on(failing))} (right: 1), "
        f"peer {exit_code(peer_on(failing))}"
    )
    backend = connect()
    for volume in backend.list_resources("volume", "dev.runner.cache=deps"):
        backend.remove("volume", volume.id)


LEAK_CONTAINERS, LEAK_NETWORKS, LEAK_VOLUMES = 100, 20, 20


def make_leak(run_id: str) -> tuple[list[str], list[str], list[str]]:
    """A dead run's leftovers, created concurrently: running containers, networks and volumes."""
    from concurrent.futures import ThreadPoolExecutor

    import docker

    api = docker.from_env().api
    labels = {"dev.runner.run-id": run_id, "dev.runner.owner": "bench/1/0", "dev.runner.pipeline": "bench"}

    def container(index: int) -> str:
        host_config = api.create_host_config(init=True)
        created = api.create_container(
            BUSYBOX,
            command=["sleep", "600"],
            labels=labels,
            name=f"leak-{run_id}-{index}",
            host_config=host_config,
        )
        api.start(created["Id"])
        return str(created["Id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        containers = list(pool.map(container, range(LEAK_CONTAINERS)))
        networks = list(
            pool.map(
                lambda i: str(api.create_network(f"leak-{run_id}-{i}", labels=labels)["Id"]),
                range(LEAK_NETWORKS),
            )
        )
        volumes = list(
            pool.map(
                lambda i: str(api.create_volume(f"leak-{run_id}-{i}", labels=labels)["Name"]),
                range(LEAK_VOLUMES),
            )
        )
    return containers, networks, volumes


def cleanup_comparison() -> None:
    """`runner cleanup` against the best a shell does with the engine's own CLI, on fresh leaks alike.

    The engine removes containers one at a time whoever asks (about 55 ms each here), so the target is
    the engine's floor: at most 1.0 times the faster of 16 concurrent `docker rm -f` and concurrent kills
    then `docker container prune`, each followed by removing the networks and volumes.
    """
    import secrets

    def concurrent_rm(leak: tuple[list[str], list[str], list[str]], run_id: str) -> list[str]:
        containers, networks, volumes = leak
        return [
            "bash",
            "-c",
            f"printf '%s\\n' {' '.join(containers)} | xargs -P 16 -n 7 docker rm -f >/dev/null; "
            f"docker network rm {' '.join(networks)} >/dev/null; "
            f"docker volume rm {' '.join(volumes)} >/dev/null",
        ]

    def kill_then_prune(leak: tuple[list[str], list[str], list[str]], run_id: str) -> list[str]:
        label = f"label=dev.runner.run-id={run_id}"
        return [
            "bash",
            "-c",
            f"printf '%s\\n' {' '.join(leak[0])} | xargs -P 16 -n 7 docker kill >/dev/null; "
            f"docker container prune -f --filter {label} >/dev/null; "
            f"docker network prune -f --filter {label} >/dev/null; "
            f"docker volume prune -f --filter {label} >/dev/null",
        ]

    times: dict[str, list[float]] = {"runner": [], "rm": [], "prune": []}
    ratios = []
    for _ in range(3):
        for name, command in (
            ("runner", lambda leak, run_id: [sys.executable, "-m", "runner", "cleanup", "--run", run_id]),
            ("rm", concurrent_rm),
            ("prune", kill_then_prune),
        ):
            run_id = secrets.token_hex(5)
            leak = make_leak(run_id)
            times[name].append(timed(command(leak, run_id)))
        ratios.append(times["runner"][-1] / min(times["rm"][-1], times["prune"][-1]))
    print(
        f"removing {LEAK_CONTAINERS} running containers, {LEAK_NETWORKS} networks, {LEAK_VOLUMES} volumes "
        "(3 alternated rounds, each on a fresh leak):"
    )
    print(f"  runner cleanup                     {statistics.median(times['runner']):6.2f} s")
    print(f"  16 concurrent docker rm -f         {statistics.median(times['rm']):6.2f} s")
    print(f"  concurrent kills, then prune       {statistics.median(times['prune']):6.2f} s")
    print(
        f"  ratio runner/best of the two: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.0: the engine's own floor)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        step_overhead(Path(directory))
        teardown_time(Path(directory))
    peer_comparison()
    cleanup_comparison()
    load.main()
    trees.main()
    cluster.main()


if __name__ == "__main__":
    main()
