"""Fault injection: signals at random moments of a pipeline with a service, parallel steps and a final step.

    python -m tests.chaos --kills 100 --signals 30

SIGKILL trials: the runner's process group is killed at a random moment; 15 s after the last kill no
resource of any killed run may be left, and the ledger must say how every run ended. Signal trials
(SIGINT, SIGTERM, SIGHUP, and a second SIGINT during `final`): the runner must exit 130 with `final`
run, unless the signal came after the pipeline had ended, and leave nothing behind.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.backend import connect
from runner.teardown.labels import RUN_ID, Owner
from runner.teardown.ledger import Ledger

PIPELINE = """
definitions:
  services:
    redis: {image: runner/redis:bookworm}
pipelines:
  default:
    - step:
        name: with-service
        image: runner/redis:bookworm
        services: [redis]
        script: [redis-cli -h localhost ping, sleep 1]
    - parallel:
        - step: {name: p1, script: [sleep 1.5]}
        - step: {name: p2, script: [sleep 1]}
        - step: {name: p3, script: [sleep 2]}
    - final:
        name: last
        script: [echo final-started, sleep 1, echo final-done]
"""
IMAGES = ["--image", "atlassian/default-image=runner/base:bookworm"]
SETTLE = 15.0


@dataclass
class Report:
    kills: int = 0
    signals: int = 0
    leftovers: list[str] = field(default_factory=list)
    unended: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.leftovers or self.unended or self.problems)


def start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(path), "--no-color", *IMAGES],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_ids_of(pids: set[int]) -> list[str]:
    """Runs whose owner was one of `pids` (a killed runner may not have printed its id)."""
    found = []
    for record in Ledger().runs(limit=10_000):
        owner = Owner.parse(record.owner)
        if owner is not None and owner.pid in pids and owner.is_local():
            found.append(record.run_id)
    return found


def left_of(run_id: str) -> list[str]:
    backend = connect()
    return [
        f"{kind} {r.name}"
        for kind in ("container", "network", "volume")
        for r in backend.list_resources(kind, f"{RUN_ID}={run_id}")
    ]


def kill_trials(path: Path, trials: int, report: Report, rng: random.Random) -> None:
    pids: set[int] = set()
    last_kill = time.monotonic()
    for _ in range(trials):
        process = start(path)
        time.sleep(rng.uniform(0.1, 6.0))
        pids.add(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        last_kill = time.monotonic()
        report.kills += 1
    time.sleep(max(0.0, SETTLE - (time.monotonic() - last_kill)))
    subprocess.run([sys.executable, "-m", "runner", "ps"], capture_output=True, check=False)  # reconciles
    for run_id in run_ids_of(pids):
        report.leftovers += [f"{run_id}: {what}" for what in left_of(run_id)]
        record = Ledger().run(run_id)
        if record is None or record.status == "running":
            report.unended.append(run_id)


def signal_trials(path: Path, trials: int, report: Report, rng: random.Random) -> None:
    kinds = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, "double"]
    for index in range(trials):
        kind = kinds[index % len(kinds)]
        process = start(path)
        assert process.stdout is not None
        seen: list[str] = []
        if kind == "double":
            for line in process.stdout:
                seen.append(line)
                if "final-started" in line:
                    break
            process.send_signal(signal.SIGINT)  # stops a step, then `final` runs
            process.send_signal(signal.SIGINT)  # abandons `final`
        else:
            time.sleep(rng.uniform(0.2, 6.0))
            process.send_signal(kind)
        out, _ = process.communicate(timeout=120)
        text = "".join(seen) + out
        report.signals += 1
        run_id = text.split(" run ", 1)[1].split()[0] if " run " in text else ""
        finished = f"run {run_id} succeeded" in text or f"run {run_id} failed" in text
        name = "double SIGINT" if kind == "double" else signal.Signals(kind).name
        if process.returncode != 130 and not finished:
            report.problems.append(f"{name}: exit {process.returncode}\n{text[-400:]}")
        if process.returncode == 130 and kind != "double" and "final-started" not in text and run_id:
            report.problems.append(f"{name}: `final` did not run\n{text[-400:]}")
        if run_id:
            report.leftovers += [f"{run_id}: {what}" for what in left_of(run_id)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--signals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    report = Report()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bitbucket-pipelines.yml"
        path.write_text(PIPELINE, encoding="utf-8")
        started = time.monotonic()
        signal_trials(path, args.signals, report, rng)
        kill_trials(path, args.kills, report, rng)
        took = time.monotonic() - started
    print(
        f"chaos (seed {seed}): {report.kills} SIGKILL trials, {report.signals} signal trials in {took:.0f} s"
    )
    print(f"  resources left {SETTLE:.0f} s after the kills and after the signals: {len(report.leftovers)}")
    print(f"  runs whose ledger does not say how they ended: {len(report.unended)}")
    print(f"  signal trials with a wrong exit code or no `final`: {len(report.problems)}")
    for line in report.leftovers[:10] + report.unended[:10] + report.problems[:5]:
        print("   ", line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
