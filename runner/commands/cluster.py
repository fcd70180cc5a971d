"""Runs on a Swarm cluster: `runner run --cluster` submits the run as a job whose container is this runner
(with the run's workspace) on a node Swarm chooses, and follows it; `runner ps`, `logs` and `cancel` act
on the cluster's runs. The client only submits and watches: the run, its `finally` and its teardown
happen in the cluster, whatever becomes of the client."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.backend import connect
from runner.backend.docker import DockerBackend
from runner.backend.runner_image import build_context, content_hash, workspace_context
from runner.backend.swarm import (
    CLUSTER_FILE,
    CLUSTER_RUN,
    CLUSTER_RUNNER,
    STOP_GRACE_SECONDS,
    ClusterJob,
    ClusterRun,
    SwarmCluster,
    TaskState,
)
from runner.commands.run import RUN_ID_VARIABLE, RunRequest, load
from runner.config import CONFIG_NAME, config_exclusions, engine_settings, read_env_file, registry_setting
from runner.engine.context import new_run_id
from runner.engine.workspace import DEFAULT_EXCLUDES, Exclusions, SourceTree
from runner.errors import ExitCode, InputError, RunnerError
from runner.teardown import provision
from runner.teardown.lease import CLUSTER_RUN_VARIABLE

CLUSTER_IMAGE_VARIABLE = (
    "RUNNER_CLUSTER_IMAGE"  # the run's own image, which the run deletes from the registry
)

PLACEMENT_TIMEOUT = 300.0  # a job no node takes within this is reported, and removed
TOOL_REPOSITORY = "runner/reaper"
RUNNER_REPOSITORY = "runner/runner"
RUN_REPOSITORY = "runner/run"


def run_on_cluster(console: Console, request: RunRequest, registry: str | None, detach: bool) -> int:
    """Checks the pipeline here, ships the runner and the workspace through the registry, submits the
    job, then follows it (or, detached, prints its id)."""
    path, pipeline, _ = load(console, request)  # a file with problems is refused before anything ships
    cluster = _cluster(path, registry, shipping=True)
    run_id = new_run_id()
    notice = _notice(console, request.quiet)
    tool = _tool_image(cluster, notice)
    runner_image = _runner_image(cluster, notice)
    context = pipeline.context.resolve()
    image = cluster.name(RUN_REPOSITORY, run_id)
    notice(f"packing the workspace {context} into {image}")
    tree = SourceTree(context, pipeline.source_files, Exclusions(config_exclusions(path, DEFAULT_EXCLUDES)))
    entries = list(tree.entries())
    listed = {relative for _, relative in entries}
    for own in (path.resolve(), *(p for p in (context / CONFIG_NAME,) if p.is_file())):
        if own.is_relative_to(context) and own.relative_to(context).as_posix() not in listed:
            entries.append((own, own.relative_to(context).as_posix()))  # what the run needs, ignored or not
    cluster.build(workspace_context(runner_image, entries, {CLUSTER_RUN: run_id}), image)
    cluster.push(image)
    cluster.forget(image)
    job = ClusterJob(
        run_id=run_id,
        image=image,
        command=("run", _relative(path, context), *forwarded(request)),
        env={
            RUN_ID_VARIABLE: run_id,
            CLUSTER_RUN_VARIABLE: run_id,
            "RUNNER_TOOL_IMAGE": tool,
            CLUSTER_IMAGE_VARIABLE: image,
            "NO_COLOR": "1",
        },
        labels={CLUSTER_FILE: str(path), CLUSTER_RUNNER: runner_image},
    )
    service_id = cluster.submit(job)
    if detach:
        console.print(run_id, highlight=False)
        return 0
    notice(f"run {run_id} submitted to the cluster")
    return follow(console, cluster, service_id, run_id)


def follow(console: Console, cluster: SwarmCluster, service_id: str, run_id: str) -> int:
    """The job's output as it comes, then its exit code. Ctrl-C cancels the run: Swarm stops the job's
    container with the grace period, in which the runner inside runs `finally` and removes what it made."""
    cancelled = threading.Event()

    def cancel(signum: int, frame: object) -> None:
        cancelled.set()

    previous = signal.signal(signal.SIGINT, cancel)
    previous_term = signal.signal(signal.SIGTERM, cancel)
    try:
        task = cluster.wait_started(service_id, PLACEMENT_TIMEOUT)
        if task is None:
            cluster.remove(service_id)
            raise RunnerError(
                f"no node took run {run_id} within {PLACEMENT_TIMEOUT:g}s",
                "`docker service ps` on the manager says why (an image the nodes cannot pull, a "
                "constraint no node meets)",
            )
        console.print(f"[dim]run {run_id} on node {escape(task.node)}[/dim]", highlight=False)
        printer = LogPrinter(cluster, service_id, None)
        printer.start()
        while True:
            task = cluster.task(service_id)
            if task is None or task.ended:
                break
            if cancelled.is_set():
                console.print(f"cancelling run {run_id}: its finally runs in the cluster", highlight=False)
                runs = cluster.runs(run_id)
                ended = stop_run(cluster, runs[0]) if runs else None
                printer.drain()
                return ended.exit_code if ended and ended.exit_code is not None else int(ExitCode.INTERRUPTED)
            time.sleep(0.3)
        printer.drain()
        if task is None:
            raise RunnerError(f"run {run_id} was removed from the cluster before it ended")
        if task.exit_code is None:
            raise RunnerError(f"run {run_id} ended {task.state} on {task.node}: {task.message}")
        return task.exit_code
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        cluster.remove(service_id)


class LogPrinter(threading.Thread):
    """Prints a job's output as it comes (a step's lines alone when `step` is given). Swarm's log stream
    of a service does not end when its job does: the caller watches the task, then drains what is left."""

    def __init__(self, cluster: SwarmCluster, service_id: str, step: str | None, follow: bool = True) -> None:
        super().__init__(daemon=True, name=f"logs-{service_id[:12]}")
        self.cluster = cluster
        self.service_id = service_id
        self.step = step
        self.follow = follow
        self.last_output = time.monotonic()

    def run(self) -> None:
        out = sys.stdout.buffer
        pending = b""
        for chunk in self.cluster.logs(self.service_id, follow=self.follow):
            self.last_output = time.monotonic()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if self.step is None or _of_step(line.decode("utf-8", errors="replace"), self.step):
                    out.write(line + b"\n")
            out.flush()
        if pending and (self.step is None or _of_step(pending.decode("utf-8", errors="replace"), self.step)):
            out.write(pending + b"\n")
            out.flush()

    def drain(self, quiet_for: float = 1.0, at_most: float = 10.0) -> None:
        """Returns once nothing came for `quiet_for` seconds (the tail has arrived), or after `at_most`."""
        deadline = time.monotonic() + at_most
        while self.is_alive() and time.monotonic() < deadline:
            if time.monotonic() - self.last_output >= quiet_for:
                return
            time.sleep(0.1)


def forwarded(request: RunRequest) -> list[str]:
    """The options of `runner run` that mean the same inside the cluster, as arguments for it."""
    args: list[str] = []
    pairs = (
        ("--image", request.images),
        ("--env", [*_file_pairs(request.env_files), *request.env]),
        ("--secret", [*_file_pairs(request.secret_files), *request.secrets]),
        ("--var", request.variables),
        ("--step", request.steps),
        ("--trigger", request.trigger),
    )
    for option, values in pairs:
        for value in values:
            args += [option, value]
    for option, text in (
        ("--pipeline", request.pipeline),
        ("--branch", request.branch),
        ("--tag", request.tag),
        ("--format", request.format_name),
    ):
        if text:
            args += [option, text]
    args += ["--max-parallel", str(request.max_parallel)]
    for option, on in (
        ("--strict", request.strict),
        ("--no-final", request.no_final),
        ("--skip-unsupported", request.skip_unsupported),
        ("--send-notifications", request.send_notifications),
        ("--no-ahead", not request.ahead),
        ("--quiet", request.quiet),
        ("--verbose", request.verbose),
    ):
        if on:
            args.append(option)
    return args


def _file_pairs(files: list[Path]) -> list[str]:
    return [f"{key}={value}" for path in files for key, value in read_env_file(path).items()]


def _relative(path: Path, context: Path) -> str:
    try:
        return path.resolve().relative_to(context).as_posix()
    except ValueError:
        raise InputError(
            f"{path} is not inside {context}, the folder a cluster run ships", "run it from its folder"
        ) from None


def _cluster(path: Path | None, registry: str | None = None, *, shipping: bool = False) -> SwarmCluster:
    """The manager the engine settings name; `shipping`: a run is submitted, so the registry is needed."""
    backend = connect(engine_settings(path))
    if not isinstance(backend, DockerBackend):
        raise InputError("--cluster needs a Docker engine that is a Swarm manager")
    chosen = registry or registry_setting(path) or ""
    if shipping and not chosen:
        raise InputError(
            "a cluster run needs the registry its nodes pull from",
            "give it with --registry HOST:PORT, `registry =` in runner.toml, or RUNNER_REGISTRY",
        )
    cluster = SwarmCluster(backend, chosen)
    cluster.check_manager()
    return cluster


def _notice(console: Console, quiet: bool) -> provision.Notice:
    def notice(line: str) -> None:
        if not quiet:
            console.print(f"[dim]{escape(line)}[/dim]", highlight=False)

    return notice


def _tool_image(cluster: SwarmCluster, notice: provision.Notice) -> str:
    """The reaper every node's run uses, in the registry under its source hash."""
    target = cluster.name(TOOL_REPOSITORY, provision.source_hash())
    if cluster.has_pushed(target):
        return target
    local = provision.ensure(cluster.backend, notice)
    if local is None or local == provision.STOCK_RYUK:
        raise RunnerError("the runner's reaper image could not be built on the manager")
    cluster.tag(local, target)
    notice(f"pushing {target}")
    cluster.push(target)
    return target


def _runner_image(cluster: SwarmCluster, notice: provision.Notice) -> str:
    """This runner, on the reaper's image (Debian's Python), in the registry under a hash of its files."""
    target = cluster.name(RUNNER_REPOSITORY, content_hash())
    if cluster.has_pushed(target):
        return target
    base = provision.ensure(cluster.backend, notice)
    if base is None or base == provision.STOCK_RYUK:
        raise RunnerError(
            "the runner's image needs the reaper's image on the manager, which could not be built"
        )
    notice(f"building {target} (this runner and its libraries, once per version)")
    cluster.build(build_context(base), target)
    notice(f"pushing {target}")
    cluster.push(target)
    return target


def ps_cluster(console: Console) -> int:
    cluster = _cluster(None)
    runs = cluster.runs()
    if not runs:
        console.print("no run on the cluster")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "file", "node", "state", "exit code"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        task = run.task
        table.add_row(
            run.run_id,
            escape(Path(run.labels.get(CLUSTER_FILE, "")).name),
            escape(task.node if task else ""),
            task.state if task else "pending",
            "" if task is None or task.exit_code is None else str(task.exit_code),
        )
    console.print(table)
    return 0


def logs(console: Console, run_id: str, step: str | None, follow_it: bool) -> int:
    """The run's lines as the client following it printed them; a step's alone (`STEP │ …` and the lines
    that start and end it) with `step`. Following, it returns when the run has ended."""
    cluster = _cluster(None)
    runs = cluster.runs(run_id)
    if not runs:
        raise InputError(f"no run {run_id} on the cluster", "`runner ps --cluster` lists them")
    service_id = runs[0].service_id
    printer = LogPrinter(cluster, service_id, step, follow_it)
    printer.start()
    while follow_it:
        task = cluster.task(service_id)
        if task is None or task.ended:
            break
        time.sleep(0.3)
    if follow_it:
        printer.drain()
    else:
        printer.join(timeout=60)
    return 0


def _of_step(line: str, step: str) -> bool:
    name, bar, _ = line.partition("│")
    if bar:
        return name.strip() == step
    words = line.split()
    return len(words) >= 2 and words[0] in ("▶", "✓", "✗", "○", "!") and words[1] == step


def stop_run(cluster: SwarmCluster, run: ClusterRun) -> TaskState | None:
    """Signals the run's container on its node, waits (up to the grace period) for the run to end, its
    `finally` included, then removes its service and the signalling job. The run's task as it ended."""
    image = run.labels.get(CLUSTER_RUNNER, "")
    if not image:
        raise RunnerError(f"run {run.run_id} names no runner image: it cannot be signalled")
    signaller = cluster.signal(run.run_id, image)
    deadline = time.monotonic() + STOP_GRACE_SECONDS + 60
    task = cluster.task(run.service_id)
    try:
        while task is not None and not task.ended and time.monotonic() < deadline:
            time.sleep(0.5)
            task = cluster.task(run.service_id)
    finally:
        # the signal has reached the run's node; on the others the job's containers remove themselves,
        # or are never made once its service is gone
        cluster.remove(signaller)
        cluster.remove(run.service_id)
    return task


def cancel(console: Console, run_id: str) -> int:
    cluster = _cluster(None)
    runs = cluster.runs(run_id)
    if not runs:
        raise InputError(f"no run {run_id} on the cluster", "`runner ps --cluster` lists them")
    console.print(f"cancelling run {run_id}: its running step stops and its finally runs", highlight=False)
    task = stop_run(cluster, runs[0])
    code = "" if task is None or task.exit_code is None else f" (exit code {task.exit_code})"
    console.print(f"run {run_id} ended{code}; what it made is being removed on its node", highlight=False)
    return 0


def cleanup_cluster(console: Console, dry_run: bool, run_id: str | None, everything: bool) -> int:
    """The services of cluster runs that ended (a detached run, or one whose client was killed); with
    `everything`, running ones too, which cancels them (their finally runs)."""
    cluster = _cluster(None)
    removed = 0
    for run in cluster.runs(run_id):
        ended = run.task is None or run.task.ended
        if not ended and not everything:
            continue
        verb = "would remove" if dry_run else "removed"
        if not dry_run and not ended:
            stop_run(cluster, run)  # a running one stops first: its finally runs
            console.print(f"{verb} run {run.run_id}, after its finally", highlight=False)
            removed += 1
            continue
        if dry_run or cluster.remove(run.service_id):
            state = run.task.state if run.task else "never placed"
            console.print(f"{verb} the service of run {run.run_id} ({state})", highlight=False)
            removed += 1
    for signaller in cluster.signallers(run_id):  # a client that died while cancelling left it
        if dry_run or cluster.remove(signaller):
            console.print(f"{'would remove' if dry_run else 'removed'} a cancelling job", highlight=False)
            removed += 1
    if not removed:
        console.print("no cluster run to remove")
    return 0
