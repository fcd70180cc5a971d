"""What a step does: its container (with its services, pipes and artifacts), a built-in action, or a stop of
another step's container; and the volumes and files a container needs."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from runner.backend.base import TOOL_IMAGE, ContainerSpec
from runner.engine import data_tasks, local_tasks, serdes, tarsafe
from runner.engine.ahead import Made, can_go_ahead, comparable
from runner.engine.artifacts import bundles
from runner.engine.builtin import BuiltinAction, BuiltinContext, run_builtin
from runner.engine.container_step import (
    Outcome,
    StepContext,
    container_spec,
    output_marker,
    run_container,
    start_sidecars,
)
from runner.engine.context import RunContext, StopCheck
from runner.engine.frames import WORKING_DIR
from runner.engine.fresh_tree import tree_key
from runner.engine.host_process import HostRun, run_on_host
from runner.engine.interrupts import ChildInterrupts
from runner.engine.lanes import LANE, joins_lane
from runner.engine.status import Block, StepStatus
from runner.engine.variables import expand, parse, read_file
from runner.errors import ImageUnavailable, InputError, RunnerError
from runner.globs import matches
from runner.model import (
    TASK_COMPILERS,
    WORKSPACE,
    ContainerRun,
    CopyAction,
    LogAction,
    Mount,
    PipeCall,
    SerdesAction,
    SqlAction,
    Step,
    StopAction,
    SubflowAction,
    TemplatedAction,
)
from runner.teardown.labels import PREFIX

ENGINE_SOCKET_TARGET = "/var/run/docker.sock"  # where a step that drives the engine finds its socket
CACHE_LABEL = PREFIX + "cache"
STOP_GRACE = 10
WROTE_TO_STDERR = "it wrote to its standard error (warningOnStdErr)"


def script_segments(
    script: tuple[str, ...], pipes: tuple[tuple[int, PipeCall], ...]
) -> list[tuple[tuple[str, ...], PipeCall | None]]:
    """A script cut at its pipes: (shell lines, None) and ((), pipe) in order."""
    segments: list[tuple[tuple[str, ...], PipeCall | None]] = []
    start = 0
    for position, pipe in pipes:
        if position > start:
            segments.append((script[start:position], None))
        segments.append(((), pipe))
        start = position
    if start < len(script):
        segments.append((script[start:], None))
    return segments


def _nothing(container_id: str) -> None:
    """A container that needs no files put into it before it starts."""


class Actions:
    def __init__(self, run: RunContext) -> None:
        self.run = run

    def act(self, step: Step, block: Block, should_stop: StopCheck, attempt: int = 1) -> Outcome:
        action = step.action
        if isinstance(action, ContainerRun) and action.on_host:
            return self._on_host(step, action, block, should_stop, attempt)
        if self.run.templates is not None:
            names = self.run.templates.names(step, attempt)
            if isinstance(action, ContainerRun) and action.workdir:
                names.setdefault("workingDir", action.workdir)  # a script's own working directory
            action = self.run.templates.render_fields(action, names)
        if isinstance(action, StopAction):
            return self._stop(action)
        if isinstance(action, SubflowAction):
            return self._subflow(action)
        if isinstance(action, TemplatedAction):
            return self._templated(step, action, block, should_stop, attempt)
        if isinstance(action, local_tasks.LocalAction):
            return self._local(step, action, attempt)
        if isinstance(action, SqlAction | SerdesAction | CopyAction):
            return self._data(step, action, attempt)
        if not isinstance(action, ContainerRun):
            return self._builtin(step, action, should_stop, attempt)
        shared_dir = WORKING_DIR.get()
        if shared_dir is not None:  # in a group whose containers share their working directory
            action = action.model_copy(
                update={
                    "mounts": (*action.mounts, shared_dir),
                    "workdir": action.workdir or shared_dir.target,
                }
            )
        try:
            return self._container(step, action, block, should_stop)
        finally:
            if not action.detach:
                self.remove_later(step.id)

    def _templated(
        self, step: Step, action: TemplatedAction, block: Block, should_stop: StopCheck, attempt: int
    ) -> Outcome:
        """The task the rendered spec describes, run in this step's place: its outputs are the step's."""
        templates = self.run.templates
        text = templates.render(action.spec, templates.names(step, attempt)) if templates else action.spec
        try:
            compiled = TASK_COMPILERS[action.format](text, action.origin)
        except InputError as exc:
            self._log(step, str(exc))
            return Outcome(StepStatus.FAILED, None, f"the rendered task is not valid: {exc.message}")
        self._log(step, f"runs {compiled.type_name or 'the rendered task'} {compiled.id}")
        update = {"action": compiled.action, "output_aliases": compiled.output_aliases}
        return self.act(step.model_copy(update=update), block, should_stop, attempt)

    def _local(self, step: Step, action: local_tasks.LocalAction, attempt: int) -> Outcome:
        """A task the runner does itself (HTTP, the key-value store, labels, stored files, notifications)."""
        templates = self.run.templates

        def render_text(text: str) -> str:
            return templates.render(text, templates.names(step, attempt)) if templates else text

        def add_labels(labels: dict[str, str]) -> None:
            if templates is not None:
                templates.labels.update(labels)

        flow = templates.templating.names.get("flow", {}) if templates else {}
        shared_dir = WORKING_DIR.get()
        context = local_tasks.LocalContext(
            render=render_text,
            log=lambda line: self._log(step, line),
            store_file=lambda name, content: self.run.storage.store(step.id, name, content),
            purge_files=self.run.storage.purge,
            add_labels=add_labels,
            send_notifications=self.run.options.send_notifications,
            flow_namespace=str(flow.get("namespace", "")),
            put_files=(lambda archive: self._put_into(step, shared_dir, archive)) if shared_dir else None,
        )
        result = local_tasks.RUNNERS[action.kind](action, context)
        return Outcome(result.status, None, result.message, outputs=result.outputs or {})

    def _data(self, step: Step, action: SqlAction | SerdesAction | CopyAction, attempt: int) -> Outcome:
        templates = self.run.templates

        def render(text: str, extra: dict[str, object]) -> str:
            return templates.render(text, {**templates.names(step, attempt), **extra}) if templates else text

        def read_stored(uri: str) -> bytes | None:
            path = self.run.storage.path_of(uri)
            return path.read_bytes() if path is not None else None

        context = data_tasks.DataContext(
            render=render,
            log=lambda line: self._log(step, line),
            read_stored=read_stored,
            store_file=lambda name, content: self.run.storage.store(step.id, name, content),
            engine_host=self.run.backend.info().published_host,
        )
        if isinstance(action, SqlAction):
            result = data_tasks.run_sql(action, context)
        elif isinstance(action, CopyAction):
            result = data_tasks.run_copy(action, context)
        else:
            result = serdes.run_serdes(action, context)
        return Outcome(result.status, None, result.message, outputs=result.outputs or {})

    def _put_into(self, step: Step, target: Mount, archive: bytes) -> None:
        """Files into a volume, through a container of the runner's own image that only holds it."""
        spec = ContainerSpec(
            name=self.run.teardown.name(step.id),
            image=TOOL_IMAGE,
            labels={},
            command=("true",),
            entrypoint=(),
            mounts=(target,),
            network_mode="none",
        )
        container_id = self.run.teardown.create_container(spec, step.id, False)
        try:
            self.run.backend.put_archive(container_id, target.target, archive)
        finally:
            self.run.teardown.stop_step(step.id)

    def _log(self, step: Step, line: str) -> None:
        line = self.run.mask(line)
        with open(self.run.log_dir / f"{step.id}.log", "a", encoding="utf-8") as file:
            file.write(line + "\n")
        self.run.reporter.log(step, line)

    def _subflow(self, action: SubflowAction) -> Outcome:
        """The child pipeline as a run of its own, guarded and swept by itself; Ctrl-C reaches it."""
        runner = self.run.options.subflows
        if runner is None:
            return Outcome(
                StepStatus.FAILED, None, f"subflow {action.label}: this run cannot start other runs"
            )
        try:
            child = runner(action, ChildInterrupts(self.run.interrupts))
        except LookupError as exc:
            return Outcome(StepStatus.FAILED, None, f"subflow {action.namespace}.{action.flow_id}: {exc}")
        state = child.status.upper()
        outputs: dict[str, object] = {"executionId": child.run_id, "state": state, "outputs": child.outputs}
        if child.failed and action.transmit_failed:
            return Outcome(StepStatus.FAILED, None, f"subflow {action.label} ended {state}", outputs=outputs)
        return Outcome(StepStatus.SUCCESS, None, "", outputs=outputs)

    def _builtin(self, step: Step, action: BuiltinAction, should_stop: StopCheck, attempt: int) -> Outcome:
        templates = self.run.templates

        def render_text(text: str) -> str:
            return templates.render(text, templates.names(step, attempt)) if templates else text

        def log(line: str) -> None:
            if templates is not None and isinstance(action, LogAction) and action.level == "ERROR":
                templates.error_log(step.id, self.run.mask(line).removeprefix("ERROR "))
            self._log(step, line)

        context = BuiltinContext(
            render=render_text,
            is_truthy=templates.truthy if templates else bool,
            log=log,
            warn=lambda text: self.run.reporter.notice(f"{step.name}: {text}", warning=True),
            should_stop=should_stop,
            engine_host=self.run.backend.info().published_host,
        )
        result = run_builtin(action, context)
        if result.exit_state is not None:
            self.run.exit_state = result.exit_state
        return Outcome(result.status, None, result.message, outputs=result.outputs)

    def _container(
        self, step: Step, action: ContainerRun, block: Block, should_stop: Callable[[], bool]
    ) -> Outcome:
        image, with_tree = self._image(action)
        context = self._step_context(step, action, block, should_stop, with_tree is not None)
        made_ahead = None
        if can_go_ahead(step, False):
            spec = container_spec(step, action, with_tree or image, "", context)
            made_ahead = self.run.ahead.take(
                step.id, spec, lambda ident: self.run.backend.state(ident).running
            )
        if made_ahead is not None:  # its own files are in: only those of earlier steps are left to put in
            context = replace(context, prepare=lambda container_id: self._late_files(container_id, action))
        if action.sidecars:
            owner = start_sidecars(step, action, context, self.run.images.resolve, self.run.teardown.name)
            context = replace(context, join=owner)
        timeout = self.run.timeout(step, block)
        if action.pipes or action.after_pipes:
            outcome = self._run_segments(step, action, image, context, timeout)
        else:
            name = self.run.teardown.name(step.id)
            outcome = run_container(step, action, with_tree or image, name, context, timeout, made_ahead)
            self._take_shared(step, action, outcome.container_id)
        if action.artifacts and outcome.container_id and action.workdir:
            try:
                _, refused = self.run.artifacts.collect(
                    self.run.backend, outcome.container_id, action.workdir, bundles(action.artifacts), step.id
                )
                for path in refused:
                    self.run.reporter.notice(
                        f"{step.name}: artifact '{path}' is not kept: it links outside the directory or is "
                        "not a plain file",
                        warning=True,
                    )
            except RunnerError as exc:
                self.run.reporter.notice(
                    f"{step.name}: could not collect artifacts: {exc.message}", warning=True
                )
        if action.output_files and outcome.container_id and action.workdir:
            try:
                stored = self.run.storage.collect(
                    self.run.backend, outcome.container_id, action.workdir, action.output_files, step.id
                )
                outcome = replace(outcome, outputs={**outcome.outputs, "outputFiles": stored})
            except RunnerError as exc:
                self.run.reporter.notice(
                    f"{step.name}: could not keep its output files: {exc.message}", warning=True
                )
        if (
            action.warn_on_stderr
            and outcome.status is StepStatus.SUCCESS
            and outcome.container_id
            and self.run.backend.error_lines(outcome.container_id, 1)
        ):
            outcome = replace(outcome, status=StepStatus.WARNING, message=WROTE_TO_STDERR)
        if action.detach and outcome.status is not StepStatus.SUCCESS:
            self.remove_later(step.id)
        return outcome

    def _on_host(
        self, step: Step, action: ContainerRun, block: Block, should_stop: StopCheck, attempt: int
    ) -> Outcome:
        """The script as a process of this machine, in a working directory of its own that holds its input
        files and is removed after its output files are kept."""
        folder = Path(tempfile.mkdtemp(prefix=f"runner-{step.id}-"))
        try:
            templates = self.run.templates
            if templates is not None:
                names = {**templates.names(step, attempt), "workingDir": str(folder)}
                rendered = templates.render_fields(action, names)
                assert isinstance(rendered, ContainerRun)
                action = rendered
            env = {
                key: str(folder) if value == action.workdir else value
                for key, value in {**action.env, **self.run.env(block, action)}.items()
            }
            if action.input_files:
                archive = self.run.storage.archive(action.input_files, "work")
                with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                    for member in tar.getmembers():
                        member.name = member.name.removeprefix("work").lstrip("/") or "."
                    for member in tar.getmembers():
                        tarsafe.extract(tar, member, folder)
            self._log(step, f"runs on this machine, in {folder} (--allow-host-process)")
            result = run_on_host(
                action,
                HostRun(
                    folder=folder,
                    env=env,
                    log=lambda line: self._log(step, line),
                    should_stop=should_stop,
                    timeout=self.run.timeout(step, block),
                    read_marker=output_marker if action.output_markers else lambda line: None,
                ),
            )
            outputs: dict[str, object] = {"vars": result.vars}
            if action.output_files:
                outputs["outputFiles"] = {
                    relative: self.run.storage.store(step.id, relative, path.read_bytes())
                    for path in sorted(folder.rglob("*"))
                    if path.is_file()
                    and matches(relative := path.relative_to(folder).as_posix(), action.output_files)
                }
            status, message = result.status, result.message
            if action.warn_on_stderr and status is StepStatus.SUCCESS and result.stderr_lines:
                status, message = StepStatus.WARNING, WROTE_TO_STDERR
            return Outcome(status, result.exit_code, message, outputs=outputs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run_segments(
        self, step: Step, action: ContainerRun, image: str, context: StepContext, timeout: float | None
    ) -> Outcome:
        """A script with pipes: its shell parts and its pipes run one after another, each in a container of
        its own over one volume that holds the step's files. The first failure ends the step."""
        files = Mount(
            source=self.run.teardown.create_volume(f"{step.id}-files"), target=action.workdir or WORKSPACE
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        shared = {
            "mounts": (*action.mounts, files),
            "artifacts": None,
            "sidecars": (),
            "after_script": (),
            "pipes": (),
            "after_pipes": (),
        }
        outcome = Outcome(StepStatus.SUCCESS, 0)
        for index, segment in enumerate(script_segments(action.script, action.pipes)):
            part, part_image = self._segment(action, image, segment, shared, action.env, context.env)
            part = part.model_copy(update={"source": action.source if index == 0 else "none"})
            prepare = context.prepare if index == 0 else _nothing
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            outcome = self._part(step, action, part, part_image, replace(context, prepare=prepare), remaining)
            if outcome.status is not StepStatus.SUCCESS:
                break
        # The after-script (and its pipes) reads the script's exit code, and never changes the step's result.
        env = {**action.env, action.exit_code_variable: str(outcome.exit_code or 0)}
        for segment in script_segments(action.after_script, action.after_pipes):
            part, part_image = self._segment(
                action, image, segment, {**shared, "source": "none"}, env, context.env
            )
            after = self._part(step, action, part, part_image, replace(context, prepare=_nothing), None)
            if after.status is not StepStatus.SUCCESS:
                self.run.reporter.notice(f"{step.name}: after-script failed: {after.message}", warning=True)
                break
        return outcome

    def _part(
        self,
        step: Step,
        action: ContainerRun,
        part: ContainerRun,
        image: str,
        context: StepContext,
        timeout: float | None,
    ) -> Outcome:
        """One container of a step cut at its pipes; what it shares is taken as it ends."""
        outcome = run_container(step, part, image, self.run.teardown.name(step.id), context, timeout)
        self._take_shared(step, action, outcome.container_id)
        return outcome

    def _segment(
        self,
        action: ContainerRun,
        image: str,
        segment: tuple[tuple[str, ...], PipeCall | None],
        shared: Mapping[str, object],
        env: Mapping[str, str],
        run_env: Mapping[str, str],
    ) -> tuple[ContainerRun, str]:
        """One part of a script cut at its pipes, as a container run of its own, with its image."""
        lines, pipe = segment
        if pipe is None:
            return action.model_copy(update={**shared, "script": lines, "env": dict(env)}), image
        pipe_env = pipe.env
        if pipe.expand_variables:
            known = {**env, **run_env}
            pipe_env = {key: expand(value, known) for key, value in pipe.env.items()}
        update = {
            **shared,
            "image": pipe.image,
            "script": (),
            "env": {**env, **pipe_env},
            "registry_auth": None,
        }
        return action.model_copy(update=update), self._pipe_image(pipe)

    def _pipe_image(self, pipe: PipeCall) -> str:
        try:
            return self.run.images.resolve(pipe.image)
        except ImageUnavailable as exc:
            raise ImageUnavailable(f"pipe '{pipe.name}': {exc.message}", exc.hint) from exc

    def _mounts(self, action: ContainerRun) -> tuple[Mount, ...]:
        mounts = list(self.run.workspace if action.source == "workspace" else ())
        for cache in action.caches:
            target = cache.path if cache.path.startswith("/") else f"{action.workdir or '/'}/{cache.path}"
            mounts.append(Mount(source=self._cache_volume(cache.name, cache.key), target=target))
        if action.docker_socket:
            # a path on the engine's host, so this works on a remote engine too
            host_socket = self.run.backend.info().host_socket
            mounts.append(Mount(source=host_socket, target=ENGINE_SOCKET_TARGET, bind=True))
        return tuple(mounts)

    def _cache_volume(self, name: str, key: str) -> str:
        """A named volume that outlives the run: caches are kept on purpose, and never swept."""
        digest = hashlib.sha256(f"{self.run.pipeline.source}\0{name}\0{key}".encode()).hexdigest()[:12]
        volume = f"runner-cache-{name}-{digest}"
        return self.run.backend.ensure_volume(
            volume, {CACHE_LABEL: name, PREFIX + "pipeline": self.run.pipeline.name}
        )

    def _take_shared(self, step: Step, action: ContainerRun, container_id: str) -> None:
        """The variables a finished container shares, read whatever its result: `final:` may need them."""
        outputs = action.shared_outputs
        if outputs is None or not outputs.names or not container_id:
            return
        shared = parse(read_file(self.run.backend, container_id), outputs.names)
        self.run.shared.add(step.id, shared.values)
        if shared.values:
            shown = ", ".join(
                f"{name}={'$SECRET' if self.run.shared.is_masked(value) else self.run.mask(value)}"
                for name, value in shared.values.items()
            )
            self.run.reporter.notice(f"{step.name}: shares {shown}")
        if shared.undeclared:
            self.run.reporter.notice(
                f"{step.name}: {', '.join(shared.undeclared)} written to ${outputs.path_variable} but not "
                "shared: add them to output-variables",
                warning=True,
            )
        for line in shared.malformed[:3]:
            self.run.reporter.notice(
                f"{step.name}: ignored a line of ${outputs.path_variable} that is not KEY=VALUE: "
                f"{self.run.mask(line)!r}",
                warning=True,
            )

    def _stop(self, action: StopAction) -> Outcome:
        if action.by == "step":
            records = self.run.teardown.containers_of(action.target)
            if not records:
                return Outcome(StepStatus.SUCCESS, None, f"nothing of '{action.target}' is running")
            report = self.run.teardown.stop_step(action.target)
            names = ", ".join(r.name for r in records)
        else:
            ident = action.target.strip()
            if not ident:
                return Outcome(StepStatus.FAILED, None, "no container id to stop")
            if not action.remove:
                self.run.backend.kill(ident) if action.kill else self.run.backend.stop(ident, STOP_GRACE)
                return Outcome(StepStatus.SUCCESS, None, f"stopped {ident[:12]}")
            if action.kill:
                self.run.backend.kill(ident)
            report = self.run.teardown.remove_container(ident)
            if not report.removed and not report.failed and not self.run.backend.remove("container", ident):
                return Outcome(StepStatus.FAILED, None, f"no such container: {ident}")
            names = ident[:12]
        if report.failed:
            resource, error = report.failed[0]
            return Outcome(StepStatus.FAILED, None, f"could not remove {resource.name}: {error}")
        return Outcome(StepStatus.SUCCESS, None, f"stopped and removed {names}")

    def _image(self, action: ContainerRun) -> tuple[str, str | None]:
        """The step's image, pulled if need be, and the run's image of it that holds the tree, if any."""
        auth = action.registry_auth
        image = self.run.images.resolve(
            action.image, (auth.username, auth.password) if auth else None, action.pull
        )
        key = tree_key(action)
        return image, self.run.trees.image_for(key, image) if key is not None else None

    def _step_context(
        self, step: Step, action: ContainerRun, block: Block, should_stop: StopCheck, tree_in_image: bool
    ) -> StepContext:
        lane = LANE.get()
        return StepContext(
            backend=self.run.backend,
            reporter=self.run.reporter,
            network=self.run.network,
            join=lane.namespace() if lane is not None and joins_lane(action) else None,
            mounts=self._mounts(action),
            env=self.run.env(block, action),
            log_dir=self.run.log_dir,
            create=self.run.teardown.create_container,
            prepare=lambda container_id: self._prepare_container(container_id, action, tree_in_image),
            should_stop=should_stop,
            mask=self.run.mask,
            started=lambda: self.run.ahead.start_after(step.id, self._make_ahead),
        )

    def _make_ahead(self, step: Step, block: Block) -> Made | None:
        """The step's container, made while the step before it runs, its script waiting at its gate."""
        action = step.action
        if not isinstance(action, ContainerRun) or self.run.stopping(block):
            return None
        image, with_tree = self._image(action)
        context = self._step_context(step, action, block, lambda: False, with_tree is not None)
        spec = container_spec(
            step, action, with_tree or image, self.run.teardown.name(step.id), context, True
        )
        try:
            container_id = self.run.teardown.create_container(spec, step.id, False)
            self._own_files(container_id, action, with_tree is not None)
            self.run.backend.start(container_id)
        except BaseException:
            # by its name, which the ledger holds even when the engine never answered with an id
            self.run.teardown.remove_container(spec.name)
            raise
        return Made(comparable(spec), container_id)

    def _prepare_container(self, container_id: str, action: ContainerRun, tree_in_image: bool) -> None:
        self._own_files(container_id, action, tree_in_image)
        self._late_files(container_id, action)

    def _own_files(self, container_id: str, action: ContainerRun, tree_in_image: bool) -> None:
        """The files a step's container gets whatever earlier steps did: the tree (or the workspace)."""
        if action.source == "workspace":
            self._seed_workspace(container_id)
        elif action.source == "copy" and action.clone and action.workdir and not tree_in_image:
            with self.run.source.copying(action.workdir, action.clone_paths) as stream:
                self.run.backend.put_archive(container_id, "/", stream)

    def _late_files(self, container_id: str, action: ContainerRun) -> None:
        """The files earlier steps left for this one: artifacts and stored files."""
        if action.source == "copy" and action.download_artifacts and action.workdir:
            restored = self.run.artifacts.archive(action.workdir, action.download_names)
            if restored is not None:
                self.run.backend.put_archive(container_id, "/", restored)
        if action.input_files and action.workdir:
            self.run.backend.put_archive(
                container_id, "/", self.run.storage.archive(action.input_files, action.workdir)
            )

    def _seed_workspace(self, container_id: str) -> None:
        if self.run.seeded:
            return
        with self.run.seed_lock:
            if not self.run.seeded:
                with self.run.source.copying() as stream:
                    self.run.backend.put_archive(container_id, WORKSPACE, stream)
                self.run.seeded = True

    def make_lane_holder(self) -> str | None:
        """The container whose network namespace a lane's steps join: the runner's own image, idle on
        the run's network. None where it cannot be made (no network, the image missing, the engine
        refused): the steps then get namespaces of their own, as they would anyway."""
        if self.run.network is None or not self.run.backend.has_image(TOOL_IMAGE):
            return None
        spec = ContainerSpec(
            name=self.run.teardown.name("lane"),
            image=TOOL_IMAGE,
            labels={},
            entrypoint=("sleep",),
            command=("infinity",),
            network=self.run.network,
            host_alias=True,
        )
        try:
            container_id = self.run.teardown.create_container(spec, "", False)
            self.run.backend.start(container_id)
        except RunnerError as exc:
            self.run.reporter.notice(f"steps get network namespaces of their own: {exc.message}")
            return None
        return container_id

    def remove_container_later(self, container_id: str) -> None:
        self.run.pending_removals.append(
            self.run.removals.submit(self.run.teardown.remove_container, container_id)
        )

    def remove_later(self, step_id: str) -> None:
        self.run.pending_removals.append(self.run.removals.submit(self.run.teardown.stop_step, step_id))
