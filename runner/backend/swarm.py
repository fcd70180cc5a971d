"""A Docker Swarm cluster, through its manager's API: the one place that knows services, tasks, nodes and
the registry the nodes pull from. A cluster run is a replicated job whose container is this runner,
driving the engine of the node Swarm placed it on (its socket mounted): every local semantic holds there,
and the run's `finally` does not depend on the client that submitted it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import docker.types

from runner.backend.docker import DockerBackend
from runner.errors import ExitCode, ResourceGone, RunnerError
from runner.progress import activity

CLUSTER_RUN = "dev.runner.cluster-run"  # service, task container and images of one cluster run
CLUSTER_FILE = "dev.runner.cluster-file"  # what the run runs, for `runner ps`
CLUSTER_CANCEL = "dev.runner.cluster-cancel"  # the global job that signals a run's container
CLUSTER_RUNNER = "dev.runner.cluster-runner"  # the runner's image a run uses, which every node can pull
NODE_SOCKET = "/var/run/docker.sock"  # the node engine's socket, as the job's container sees it
TERMINAL = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
STOP_GRACE_SECONDS = 300  # a cancelled run's `finally` gets this long before Swarm kills it


class NotAManager(RunnerError):
    exit_code = ExitCode.INVALID_INPUT


@dataclass(frozen=True)
class ClusterJob:
    run_id: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class TaskState:
    state: str  # Swarm's: new, pending, assigned, running, complete, failed, shutdown, rejected…
    node: str  # the node's hostname, "" before it is placed
    exit_code: int | None
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class ClusterRun:
    run_id: str
    service_id: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    task: TaskState | None = None


class SwarmCluster:
    def __init__(self, backend: DockerBackend, registry: str = "") -> None:
        self.backend = backend
        self.api = backend.api
        self.registry = registry.rstrip("/")
        self._nodes: dict[str, str] = {}

    def _api(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call of the manager's API, its errors mapped as every engine call's are."""
        call = getattr(self.api, method)
        return self.backend._call(lambda: call(*args, **kwargs))

    def check_manager(self) -> None:
        info = self._api("info")
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise NotAManager(
                f"{self.backend.endpoint.address} is not a Swarm manager",
                "point --engine (or DOCKER_HOST, or a docker context) at a manager of the cluster; "
                "without --cluster the engine runs the pipeline itself",
            )

    # --- images ------------------------------------------------------------------------------------

    def name(self, repository: str, tag: str) -> str:
        return f"{self.registry}/{repository}:{tag}"

    def has_pushed(self, image: str) -> bool:
        """True when the registry has the image: the manager pulls it (and then holds it too)."""
        try:
            self.backend.pull_image(image)
        except RunnerError:
            return False
        return True

    def build(self, context: bytes | Iterable[bytes], tag: str) -> None:
        with activity(f"building {tag}", "steps") as update:
            self.backend.build_image(context, tag, {}, update)

    def tag(self, image: str, target: str) -> None:
        repository, _, tag = target.rpartition(":")
        self._api("tag", image, repository, tag=tag)

    def push(self, image: str) -> None:
        repository, _, tag = image.rpartition(":")

        def push() -> None:
            for entry in self.api.push(repository, tag=tag, stream=True, decode=True):
                if isinstance(entry, dict) and entry.get("error"):
                    raise RunnerError(
                        f"pushing {image} failed: {str(entry['error']).strip()}",
                        f"the engine must reach the registry {self.registry}: mark it insecure "
                        "(`insecure-registries` in daemon.json) if it serves plain HTTP",
                    )

        self.backend._call(push)

    def forget(self, image: str) -> None:
        """The manager's own copy of an image, which building or pulling left there."""
        with contextlib.suppress(RunnerError):  # ResourceGone too: already gone is the goal
            self._api("remove_image", image, force=True, noprune=False)

    # --- services ----------------------------------------------------------------------------------

    def submit(self, job: ClusterJob) -> str:
        """A replicated job that runs once (restart condition none: a failing run is not run again)."""
        spec = docker.types.ContainerSpec(
            image=job.image,
            args=list(job.command),
            env=[f"{key}={value}" for key, value in job.env.items()],
            labels={**job.labels, CLUSTER_RUN: job.run_id},
            mounts=[docker.types.Mount(NODE_SOCKET, NODE_SOCKET, type="bind")],
            init=True,
            stop_grace_period=STOP_GRACE_SECONDS * 1_000_000_000,
        )
        template = docker.types.TaskTemplate(
            container_spec=spec,
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )

        created = self._api(
            "create_service",
            template,
            name=f"runner-{job.run_id}",
            labels={**job.labels, CLUSTER_RUN: job.run_id},
            mode=docker.types.ServiceMode("replicated-job", concurrency=1, replicas=1),
            # the node's own network: the runner reaches what its steps publish on the node's 127.0.0.1,
            # and names the node resolves (the registry's) as the node does
            networks=["host"],
        )
        return str(created["ID"])

    def signal(self, run_id: str, image: str) -> str:
        """SIGTERM to the run's container, wherever it is: a global job runs on every node, signals the
        run's containers there and removes its own container. Returns the job's service id, to remove
        once the run has ended."""
        name = f"runner-cancel-{run_id}"
        spec = docker.types.ContainerSpec(
            image=image,
            command=["python3", "-m", "runner.backend.swarm_signal", run_id, name],
            labels={CLUSTER_CANCEL: run_id},
            mounts=[docker.types.Mount(NODE_SOCKET, NODE_SOCKET, type="bind")],
        )
        template = docker.types.TaskTemplate(
            container_spec=spec, restart_policy=docker.types.RestartPolicy(condition="none")
        )
        created = self._api(
            "create_service",
            template,
            name=name,
            labels={CLUSTER_CANCEL: run_id},
            mode=docker.types.ServiceMode("global-job"),
        )
        return str(created["ID"])

    def runs(self, run_id: str | None = None) -> list[ClusterRun]:
        label = f"{CLUSTER_RUN}={run_id}" if run_id else CLUSTER_RUN
        services = self._api("services", filters={"label": label})
        found = []
        for service in services:
            labels = dict(service.get("Spec", {}).get("Labels") or {})
            found.append(
                ClusterRun(
                    run_id=labels.get(CLUSTER_RUN, ""),
                    service_id=str(service["ID"]),
                    created=str(service.get("CreatedAt", "")),
                    labels=labels,
                    task=self.task(str(service["ID"])),
                )
            )
        return sorted(found, key=lambda run: run.created)

    def signallers(self, run_id: str | None = None) -> list[str]:
        """The ids of the signalling jobs left (their client died while cancelling)."""
        label = f"{CLUSTER_CANCEL}={run_id}" if run_id else CLUSTER_CANCEL
        return [str(service["ID"]) for service in self._api("services", filters={"label": label})]

    def task(self, service_id: str) -> TaskState | None:
        """The job's one task, its latest state."""
        try:
            tasks = self._api("tasks", filters={"service": service_id})
        except ResourceGone:
            return None
        if not tasks:
            return None
        latest = max(tasks, key=lambda task: str(task.get("UpdatedAt", "")))
        status = latest.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        code = container.get("ExitCode")
        return TaskState(
            state=str(status.get("State", "")),
            node=self._node_name(str(latest.get("NodeID", ""))),
            exit_code=int(code) if code is not None and str(status.get("State")) in TERMINAL else None,
            message=str(status.get("Err") or status.get("Message") or ""),
        )

    def _node_name(self, node_id: str) -> str:
        if not node_id:
            return ""
        if node_id not in self._nodes:
            try:
                node = self._api("inspect_node", node_id)
                self._nodes[node_id] = str(node.get("Description", {}).get("Hostname") or node_id[:12])
            except RunnerError:
                return node_id[:12]
        return self._nodes[node_id]

    def wait_started(self, service_id: str, timeout: float) -> TaskState | None:
        """The task once it runs or has ended; None when it was not placed within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(service_id)
            if task is not None and (task.state == "running" or task.ended):
                return task
            time.sleep(0.2)
        return None

    def logs(self, service_id: str, follow: bool, tail: str = "all") -> Iterator[bytes]:
        """The job's output as its container writes it (stdout and stderr, in order per stream)."""
        try:
            stream = self.api.service_logs(
                service_id, stdout=True, stderr=True, follow=follow, tail=tail, timestamps=False
            )
            yield from stream
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise RunnerError(f"no logs of {service_id[:12]}: {exc.explanation}") from exc

    def remove(self, service_id: str) -> bool:
        """Removes the service: a task still running is stopped with the grace period (its `finally`
        runs in it). True when this call removed it."""
        try:
            self._api("remove_service", service_id)
        except ResourceGone:
            return False
        return True
