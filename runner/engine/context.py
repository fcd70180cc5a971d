"""What every piece of a run shares: the pipeline, the engine, the ledger, the reporter, and what the run
has learned so far (results, shared variables, artifacts). One place records a result."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from runner.backend.base import Backend
from runner.engine.ahead import StepsAhead
from runner.engine.artifacts import ArtifactStore
from runner.engine.events import MaskedReporter, Reporter
from runner.engine.frames import LOOP_VALUES
from runner.engine.fresh_tree import TreeImages, clone_uses
from runner.engine.images import ImageResolver
from runner.engine.interrupts import Interrupts
from runner.engine.reuse import CarriedStep
from runner.engine.status import Block, RunResult, StepResult, StepStatus
from runner.engine.storage import RunStorage
from runner.engine.templating import RunTemplates
from runner.engine.variables import SHARED_FILE, SharedVariables
from runner.engine.workspace import DEFAULT_EXCLUDES, Exclusions, SourceTree
from runner.model import ContainerRun, Group, Mount, Node, Pipeline, Step, SubflowAction
from runner.teardown.ledger import Ledger
from runner.teardown.manager import TeardownManager

STATUS_VARIABLE = "RUNNER_PIPELINE_STATUS"
FAILED_STEPS_VARIABLE = "RUNNER_FAILED_STEPS"

ConfirmManual = Callable[[Step], bool]
# runs a subflow step's pipeline (its rendered action) as a run of its own, and returns how it ended;
# LookupError when no pipeline answers to the name the step gives at run time
SubflowRunner = Callable[[SubflowAction, Interrupts], "RunResult"]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class RunOptions:
    image_map: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)  # name -> value, masked in every log line
    keep: bool = False
    bind: bool = False
    sweep_dead_runs: bool = True
    lease: bool = True
    max_parallel: int = 4
    confirm_manual: ConfirmManual | None = None  # None: the run stops before a manual step
    carried: Mapping[str, CarriedStep] = field(default_factory=dict)  # steps not run again, by id
    parent: str = ""  # the run this one resumes or re-runs
    selection: Mapping[str, object] = field(default_factory=dict)  # how the pipeline was chosen, kept
    build_number: int = 0
    subflows: SubflowRunner | None = None  # None: a subflow step fails, saying it needs one
    send_notifications: bool = False  # notification steps only show their message unless this is set
    run_id: str = ""  # the run's id when it was chosen before (a cluster run's); a new one otherwise
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES  # what the copy of the source tree leaves out
    ahead: bool = True  # steps made ahead, and lanes of steps sharing a network namespace


def new_run_id() -> str:
    return secrets.token_hex(5)


def depths(pipeline: Pipeline) -> dict[str, int]:
    """How many reported groups hold each node: the summary indents a step or group that much."""
    found: dict[str, int] = {}

    def walk(nodes: tuple[Node, ...], depth: int) -> None:
        for node in nodes:
            found[node.id] = depth
            if isinstance(node, Group):
                inner = depth + 1 if node.reported else depth
                for children in (node.children(), node.errors, node.finally_):
                    walk(children, inner)

    for nodes in (pipeline.services, pipeline.steps, pipeline.errors, pipeline.finally_, pipeline.after):
        walk(nodes, 0)
    return found


class RunContext:
    def __init__(
        self,
        pipeline: Pipeline,
        backend: Backend,
        ledger: Ledger,
        reporter: Reporter,
        options: RunOptions,
        interrupts: Interrupts,
        teardown: TeardownManager,
    ) -> None:
        self.pipeline = pipeline
        self.backend = backend
        self.ledger = ledger
        self.reporter: Reporter = MaskedReporter(reporter, self.mask)
        self.options = options
        self.interrupts = interrupts
        self.teardown = teardown
        self.run_id = teardown.run_id
        self.images = ImageResolver(backend, options.image_map)
        self.results: list[StepResult] = []
        self.network: str | None = None
        self.workspace: tuple[Mount, ...] = ()
        self.seed_lock = threading.Lock()
        self.confirm_lock = threading.Lock()
        self.seeded = not pipeline.workspace or options.bind
        self.source = SourceTree(pipeline.context, pipeline.source_files, Exclusions(options.exclude))
        self.trees = TreeImages(backend, teardown, self.source, clone_uses(pipeline))
        self.removals = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remove")
        self.pending_removals: list[Future[object]] = []
        self.ahead = StepsAhead(
            remove=lambda container_id: self.pending_removals.append(
                self.removals.submit(teardown.remove_container, container_id)
            )
        )
        self.log_dir = ledger.directory / "logs" / self.run_id
        self.artifacts = ArtifactStore(ledger.directory / "artifacts" / self.run_id)
        self.storage = RunStorage(ledger.directory / "storage", self.run_id)
        self.deadline: float | None = None
        self.paused = False
        self.exit_state: str | None = None  # set by an exit action: nothing more starts, the run ends so
        self.templates = RunTemplates(pipeline.templating, self.run_id) if pipeline.templating else None
        self.shared = SharedVariables(options.secrets)
        self.depths = depths(pipeline)

    def stopping(self, block: Block) -> bool:
        if block in (Block.FINALLY, Block.AFTER):
            return self.interrupts.abandon_finally
        return self.interrupts.interrupted or self.exit_state is not None

    def record(self, step: Step | Group, result: StepResult) -> None:
        result.depth = self.depths.get(step.id, 0)
        values = LOOP_VALUES.get()
        if values:  # the same task once per value: each run is its own result
            result.step_id = step.id + "".join(f"[{value}]" for value in values)
            result.name = f"{step.name} ({', '.join(values)})"
        self.results.append(result)
        if self.templates is not None:
            self.templates.record(step.id, result.status.value, result.outputs, result.message, values)
        variables, masked = self.shared.produced(step.id)
        self.ledger.step_result(
            self.run_id,
            result.step_id,
            step.name,
            result.status.value,
            result.exit_code,
            result.duration,
            str(self.log_dir / f"{step.id}.log"),
            variables,
            masked,
            result.outputs,
        )
        self.reporter.step_finished(step, result)

    def env(self, block: Block, action: ContainerRun | None = None) -> dict[str, str]:
        env = {**self.options.env, **self.shared.current()}
        if action is not None and action.shared_outputs is not None:
            env[action.shared_outputs.path_variable] = SHARED_FILE
        if block in (Block.ERRORS, Block.FINALLY, Block.AFTER):
            failed = [r.name for r in self.results if r.fails_run]
            env[STATUS_VARIABLE] = self.status_so_far(failed)
            env[FAILED_STEPS_VARIABLE] = ",".join(failed)
        return env

    def status_so_far(self, failed: list[str]) -> str:
        if self.interrupts.interrupted:
            return "stopped"
        if failed:
            return "failed"
        if any(r.status is StepStatus.WARNING for r in self.results):
            return "warning"
        return "paused" if self.paused else "success"

    def mask(self, line: str) -> str:
        values = (*self.options.secrets.values(), *self.pipeline.secrets, *self.shared.masked_values())
        # the longest first: a shared value that holds a secret is hidden whole, not around the secret
        for value in sorted(values, key=len, reverse=True):
            if value:
                line = line.replace(value, "$SECRET")
        return line

    def timeout(self, step: Step, block: Block) -> float | None:
        limits = [step.timeout] if step.timeout else []
        if self.deadline is not None and block in (Block.SERVICES, Block.STEPS):
            limits.append(max(self.deadline - time.monotonic(), 0.001))
        return min(limits) if limits else None
