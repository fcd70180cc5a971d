"""A chosen Bitbucket pipeline -> the model. Everything Bitbucket-specific ends here."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

from runner.errors import InputError
from runner.expressions import state
from runner.formats.bitbucket.schema import (
    ArtifactsSpec,
    ArtifactUploadSpec,
    CacheSpec,
    ConditionSpec,
    FileSpec,
    ImageSpec,
    ParallelSpec,
    PipeSpec,
    StageSpec,
    StepSpec,
    VariableSpec,
)
from runner.formats.bitbucket.select import Choice
from runner.formats.gitrepo import Checkout
from runner.formats.options import LoadOptions
from runner.formats.schema import MAX_REPORTED, validate
from runner.formats.source import Document, Loc
from runner.globs import matches
from runner.model import (
    Artifacts,
    Cache,
    ContainerRun,
    Group,
    LoadWarning,
    NamedArtifact,
    Node,
    PipeCall,
    Pipeline,
    RegistryAuth,
    SharedOutputs,
    Sidecar,
    Step,
)

CLONE_DIR = "/opt/atlassian/pipelines/agent/build"
DEFAULT_IMAGE = "atlassian/default-image:latest"
DEFAULT_MAX_TIME = 120  # minutes
HOME = "/root"
GIB = 1024**3
SIZE_MEMORY = {f"{n}x": 4 * n * GIB for n in (1, 2, 4, 8, 16, 32)}  # 4 GB per 1x, as on Bitbucket
SERVICE_MEMORY = 1024  # MB, Bitbucket's default
MAX_SERVICES = 5
PREDEFINED_CACHES = {
    "composer": "~/.composer/cache",
    "dotnetcore": "~/.nuget/packages",
    "gradle": "~/.gradle/caches",
    "ivy2": "~/.ivy2/cache",
    "maven": "~/.m2/repository",
    "node": "node_modules",
    "pip": "~/.cache/pip",
    "sbt": "~/.sbt",
}
ITEM_KINDS = ("step", "parallel", "stage", "final", "variables")
FINAL_FORBIDDEN = {
    "trigger": "The property 'trigger' is not supported for a final step",
    "deployment": "The property 'deployment' is not supported for a final step",
    "fail-fast": "The property 'fail-fast' is not supported for a final step",
}
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VARIABLES_PATH = "BITBUCKET_PIPELINES_VARIABLES_PATH"  # where a step writes the variables it shares


def pipe_image(pipe: str) -> str:
    """Bitbucket runs `atlassian/NAME:V` from `bitbucketpipelines/NAME:V`, `docker://IMAGE` as IMAGE, and any
    other `org/name:v` from Docker Hub under that name."""
    if pipe.startswith("docker://"):
        return pipe.removeprefix("docker://")
    if pipe.startswith("atlassian/"):
        return "bitbucketpipelines/" + pipe.removeprefix("atlassian/")
    return pipe


class Compiler:
    def __init__(
        self,
        document: Document,
        spec: FileSpec,
        path: Path,
        options: LoadOptions,
        checkout: Checkout,
        misspelt: list[tuple[str, str]] | None = None,
    ) -> None:
        self.misspelt = misspelt or []
        self.document = document
        self.spec = spec
        self.path = path
        self.options = options
        self.checkout = checkout
        self.warnings: list[LoadWarning] = []
        self.ids: set[str] = set()
        self.count = 0
        self.variables: dict[str, str] = {}
        self.pipeline_uuid = "{" + str(uuid.uuid4()) + "}"
        definitions = spec.definitions
        self.services = definitions.services if definitions else {}
        self.caches = definitions.caches if definitions else {}

    def warn(self, loc: Loc, message: str, *, key: bool = False) -> None:
        if self.options.strict:
            raise self.document.error(loc, message, "remove it, or run without --strict", key=key)
        self.warnings.append(LoadWarning(where=str(self.document.position(loc, key=key)), message=message))

    def note(self, loc: Loc, message: str) -> None:
        """What runs differently on this machine than on Bitbucket: never an error, even under --strict."""
        where = str(self.document.position(loc))
        self.warnings.append(LoadWarning(where=where, message=message, about="machine"))

    # the pipeline

    def compile(self, choice: Choice) -> Pipeline:
        for key, known in self.misspelt:
            self.warn((key,), f"unknown top-level key '{key}' is ignored: did you mean '{known}'?", key=True)
        items = choice.items
        loc = choice.loc
        if not isinstance(items, list) or not items:
            raise self.document.error(loc, "a pipeline is a non-empty list of steps", "add `- step:` items")
        kinds = [self._item_kind(item, (*loc, index)) for index, item in enumerate(items)]
        start = 0
        if kinds[0] == "variables":
            if choice.kind != "custom":
                raise self.document.error((*loc, 0), "only custom pipelines declare `variables`", None)
            self._resolve_variables(items[0]["variables"], (*loc, 0, "variables"))
            start = 1
        self._check_final(kinds, loc)
        nodes: list[Node] = []
        final: list[Node] = []
        problems: list[InputError] = []
        for index in range(start, len(items)):
            # every item is checked, so a file's problems are all reported at once
            try:
                self._item(kinds[index], items[index][kinds[index]], (*loc, index), nodes, final)
            except InputError as problem:
                problems.extend([problem, *problem.others])
        if problems:
            raise InputError.collect(problems[:MAX_REPORTED])
        return Pipeline(
            name=f"{self._repo_slug()} {choice.label}",
            source=self.path,
            context=self.path.parent,
            source_files=self.checkout.files,
            steps=tuple(nodes),
            finally_=tuple(final),
            workspace=False,
            warnings=tuple(self.warnings),
        )

    def _item(self, kind: str, body: Any, item_loc: Loc, nodes: list[Node], final: list[Node]) -> None:
        if kind == "variables":
            raise self.document.error(
                item_loc, "`variables` must be the first item of a custom pipeline", None
            )
        if kind == "step":
            nodes.append(self._step(body, (*item_loc, "step")))
        elif kind == "parallel":
            nodes.append(self._parallel(body, (*item_loc, "parallel")))
        elif kind == "stage":
            nodes.extend(self._stage(body, (*item_loc, "stage")))
        else:
            final.append(self._step(body, (*item_loc, "final"), final=True))

    def _item_kind(self, item: Any, loc: Loc) -> str:
        if isinstance(item, dict) and len(item) > 1:
            kinds = [key for key in item if key in ITEM_KINDS]
            beside = [str(key) for key in item if key not in ITEM_KINDS]
            if len(kinds) == 1 and beside:
                # `- step:` with `script:` on the next line at the same indentation: YAML reads both keys
                # as siblings in the list item, not `script` inside `step`
                raise self.document.error(
                    (*loc, beside[0]),
                    f"`{beside[0]}` is beside `{kinds[0]}:` in this item, not inside it",
                    f"indent `{beside[0]}:` (and the step's other keys) under `{kinds[0]}:`, two spaces "
                    f"further than `{kinds[0]}:`",
                    key=True,
                )
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in ITEM_KINDS:
            raise self.document.error(
                loc,
                "each pipeline item is one of `step`, `parallel`, `stage`, `final` (or `variables` first)",
                "start the item with `- step:`",
            )
        return str(next(iter(item)))

    def _check_final(self, kinds: list[str], loc: Loc) -> None:
        finals = [index for index, kind in enumerate(kinds) if kind == "final"]
        if len(finals) > 1:
            raise self.document.error(
                (*loc, finals[1]),
                "Only one final step is allowed per pipeline",
                "merge the two final steps into one",
            )
        if finals and finals[0] != len(kinds) - 1:
            raise self.document.error(
                (*loc, finals[0]),
                "The final step must be the last item in the pipeline",
                "move the `- final:` item to the end of the list",
            )
        if finals and not any(kind in ("step", "parallel", "stage") for kind in kinds):
            raise self.document.error(
                (*loc, finals[0]),
                "A pipeline must contain at least one step in addition to the final step",
                "add a `- step:` before the final step",
            )

    def _resolve_variables(self, declared: Any, loc: Loc) -> None:
        if not isinstance(declared, list):
            raise self.document.error(loc, "`variables` is a list of {name, default, allowed-values}", None)
        for index, raw in enumerate(declared):
            spec = validate(self.document, VariableSpec, raw, (*loc, index))
            allowed = tuple(_text(value) for value in spec.allowed_values or ())
            default = None if spec.default is None else _text(spec.default)
            value = self.options.variables.get(spec.name)
            if value is None and self.options.prompt is not None:
                value = self.options.prompt(spec.name, default, allowed)
            if value is None or value == "":
                value = default
            if value is None:
                raise self.document.error(
                    (*loc, index),
                    f"the custom pipeline's variable '{spec.name}' has no value",
                    f"give it with --var {spec.name}=VALUE, or add a `default`",
                )
            if allowed and value not in allowed:
                raise self.document.error(
                    (*loc, index),
                    f"variable '{spec.name}' is '{value}', which is not one of its allowed values",
                    "allowed values: " + ", ".join(allowed),
                )
            self.variables[spec.name] = value

    # groups

    def _parallel(self, body: Any, loc: Loc) -> Group:
        steps_loc = loc if isinstance(body, list) else (*loc, "steps")  # the legacy form is a bare list
        if isinstance(body, list):
            body = {"steps": body}
        spec = validate(self.document, ParallelSpec, body, loc)
        self.count += 1
        index_of_group = self.count
        members = self._member_steps(spec.steps, steps_loc, "parallel")
        steps = tuple(
            self._step(raw, item_loc, parallel=(position, len(members)))
            for position, (raw, item_loc) in enumerate(members)
        )
        return Group(
            id=f"parallel-{index_of_group}",
            name=f"parallel {index_of_group}",
            steps=steps,
            fail_fast=spec.fail_fast,
        )

    def _stage(self, body: Any, loc: Loc) -> list[Step]:
        spec = validate(self.document, StageSpec, body, loc)
        members = self._member_steps(spec.steps, (*loc, "steps"), "stage")
        steps = []
        for position, (raw, item_loc) in enumerate(members):
            if isinstance(raw, dict) and raw.get("trigger") == "manual":
                raise self.document.error(
                    (*item_loc, "trigger"),
                    "A step within a stage can't have a manual trigger",
                    "put `trigger: manual` on the stage instead",
                )
            steps.append(
                self._step(
                    raw,
                    item_loc,
                    stage=spec,
                    stage_loc=loc,
                    manual=spec.trigger == "manual" and position == 0,
                )
            )
        return steps

    def _member_steps(self, items: list[dict[str, Any]], loc: Loc, group: str) -> list[tuple[Any, Loc]]:
        members = []
        for index, item in enumerate(items):
            item_loc = (*loc, index)
            if isinstance(item, dict) and "final" in item:
                raise self.document.error(
                    item_loc,
                    f"A final step cannot be defined inside {group}",
                    "move the `- final:` item to the end of the pipeline, outside the group",
                )
            if not isinstance(item, dict) or list(item) != ["step"]:
                raise self.document.error(item_loc, f"a {group} holds `- step:` items only", None)
            members.append((item["step"], (*item_loc, "step")))
        return members

    # steps

    def _step(
        self,
        raw: Any,
        loc: Loc,
        *,
        final: bool = False,
        parallel: tuple[int, int] | None = None,
        stage: StageSpec | None = None,
        stage_loc: Loc = (),
        manual: bool = False,
    ) -> Step:
        if final and isinstance(raw, dict):
            for key, message in FINAL_FORBIDDEN.items():
                if key in raw:
                    raise self.document.error(
                        (*loc, key), message, f"remove `{key}` from the final step", key=True
                    )
            if raw.get("type") == "pipeline":
                raise self.document.error(
                    (*loc, "type"),
                    "A final step cannot trigger a child pipeline",
                    "run the child pipeline in a step",
                )
        spec = validate(self.document, StepSpec, raw, loc)
        if spec.type == "pipeline":
            raise self.document.error(
                (*loc, "type"),
                "child pipelines (`type: pipeline`) are not supported locally",
                f"run the custom pipeline on its own: runner run --pipeline custom:{spec.custom or 'NAME'}",
            )
        if spec.script is None:
            raise self.document.error(
                loc, "a step needs a `script`", "add `script:` with at least one command"
            )
        self.count += 1
        name = spec.name or f"step {self.count}"
        deployment = spec.deployment or (stage.deployment if stage else None)
        condition = spec.condition or (stage.condition if stage else None)
        condition_loc = (*loc, "condition") if spec.condition else (*stage_loc, "condition")
        self._notices(spec, loc)
        script, pipes = self._script(spec.script)
        after_script, after_pipes = self._script(spec.after_script)
        action = ContainerRun(
            image=self._image_name(spec.image, loc),
            registry_auth=self._auth(
                spec.image or self.spec.image, (*loc, "image") if spec.image else ("image",)
            ),
            user=self._user(spec.image),
            script=script,
            pipes=pipes,
            after_script=after_script,
            after_pipes=after_pipes,
            shell="bash",
            exit_code_variable="BITBUCKET_EXIT_CODE",
            shared_outputs=SharedOutputs(
                path_variable=VARIABLES_PATH,
                names=self._output_variables(spec.output_variables, (*loc, "output-variables")),
            ),
            env=self._env(deployment, parallel),
            workdir=CLONE_DIR,
            source="copy",
            clone=self._clone_enabled(spec),
            clone_paths=self._clone_paths(spec),
            download_artifacts=self._downloads(spec.artifacts),
            download_names=self._download_names(spec.artifacts),
            artifacts=self._artifacts(spec.artifacts, (*loc, "artifacts")),
            caches=self._caches(spec.caches, (*loc, "caches")),
            sidecars=self._sidecars(spec.services, (*loc, "services")),
            docker_socket="docker" in spec.services or bool(self.spec.options and self.spec.options.docker),
            memory=SIZE_MEMORY[spec.size or (self.spec.options.size if self.spec.options else None) or "1x"],
        )
        max_time = (
            spec.max_time or (self.spec.options.max_time if self.spec.options else None) or DEFAULT_MAX_TIME
        )
        return Step(
            id=self._id(name),
            name=f"{name} [{deployment}]" if deployment else name,
            action=action,
            timeout=max_time * 60.0,
            allow_failure=bool(spec.on_fail and spec.on_fail.strategy == "ignore"),
            manual=manual or spec.trigger == "manual",
            skip_reason=self._condition(condition, condition_loc),
            condition_state=self._state(condition, condition_loc),
            fail_fast=bool(spec.fail_fast),
        )

    def _notices(self, spec: StepSpec, loc: Loc) -> None:
        if spec.oidc:
            self.note((*loc, "oidc"), "oidc is not supported locally: BITBUCKET_STEP_OIDC_TOKEN is not set")
        if spec.runs_on is not None:
            self.note((*loc, "runs-on"), "runs-on is ignored locally: the step runs on this machine's engine")
        if spec.concurrency_group is not None:
            self.note(
                (*loc, "concurrency-group"),
                "concurrency-group has no effect locally: a run never waits for another one",
            )
        if spec.environment is not None:
            self.note(
                (*loc, "environment"),
                "environment: its variables come from --env and --env-file here, and no permission applies",
            )

    def _output_variables(self, names: list[str] | None, loc: Loc) -> tuple[str, ...]:
        for index, name in enumerate(names or []):
            if not VARIABLE_NAME.fullmatch(name):
                raise self.document.error(
                    (*loc, index),
                    f"'{name}' is not a variable name",
                    "use letters, digits and underscores, not starting with a digit",
                )
        return tuple(dict.fromkeys(names or []))

    def _id(self, name: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or f"step-{self.count}"
        candidate, suffix = base, 2
        while candidate in self.ids:
            candidate, suffix = f"{base}-{suffix}", suffix + 1
        self.ids.add(candidate)
        return candidate

    def _image_name(self, image: ImageSpec | None, loc: Loc) -> str:
        chosen = image or self.spec.image
        return chosen.name if chosen else DEFAULT_IMAGE

    def _auth(self, image: ImageSpec | None, loc: Loc) -> RegistryAuth | None:
        if image is None or image.username is None or image.password is None:
            return None
        return RegistryAuth(
            username=self._expand(image.username, (*loc, "username")),
            password=self._expand(image.password, (*loc, "password")),
        )

    def _user(self, image: ImageSpec | None) -> str | None:
        chosen = image or self.spec.image
        return str(chosen.run_as_user) if chosen and chosen.run_as_user is not None else None

    def _expand(self, text: str, loc: Loc) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in self.options.env:
                raise self.document.error(
                    loc,
                    f"the variable ${name} is not set",
                    f"pass it with --env {name}=VALUE (or --env-file), or export it before running",
                )
            return self.options.env[name]

        return VARIABLE.sub(value, text)

    def _script(
        self, items: list[str | PipeSpec]
    ) -> tuple[tuple[str, ...], tuple[tuple[int, PipeCall], ...]]:
        """Shell lines, each echoed before it runs as Bitbucket does, and the pipes between them."""
        lines: list[str] = []
        pipes: list[tuple[int, PipeCall]] = []
        for item in items:
            if isinstance(item, PipeSpec):
                env = pipe_variables(item.variables)
                call = PipeCall(name=item.pipe, image=pipe_image(item.pipe), env=env, expand_variables=True)
                pipes.append((len(lines), call))
                continue
            lines.append(f"printf '+ %s\\n' {shlex.quote(item)}")
            lines.append(item)
        return tuple(lines), tuple(pipes)

    def _env(self, deployment: str | None, parallel: tuple[int, int] | None) -> dict[str, str]:
        env = {
            "CI": "true",
            "BITBUCKET_BUILD_NUMBER": str(self.options.build_number),
            "BITBUCKET_CLONE_DIR": CLONE_DIR,
            "BITBUCKET_COMMIT": self.checkout.commit or "0" * 40,
            "BITBUCKET_REPO_SLUG": self._repo_slug(),
            "BITBUCKET_REPO_FULL_NAME": f"{self._workspace()}/{self._repo_slug()}",
            "BITBUCKET_WORKSPACE": self._workspace(),
            "BITBUCKET_REPO_OWNER": self._workspace(),
            "BITBUCKET_REPO_UUID": "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, str(self.path.parent))) + "}",
            "BITBUCKET_PIPELINE_UUID": self.pipeline_uuid,
            "BITBUCKET_STEP_UUID": "{" + str(uuid.uuid4()) + "}",
            "BITBUCKET_PROJECT_KEY": "LOCAL",
        }
        if self.options.tag:
            env["BITBUCKET_TAG"] = self.options.tag
        elif self.options.branch or self.checkout.branch:
            env["BITBUCKET_BRANCH"] = self.options.branch or self.checkout.branch or ""
        if self.checkout.origin:
            env["BITBUCKET_GIT_HTTP_ORIGIN"] = self.checkout.origin
        if deployment:
            env["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] = deployment
            env["BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID"] = (
                "{" + str(uuid.uuid5(uuid.NAMESPACE_DNS, deployment)) + "}"
            )
        if parallel is not None:
            env["BITBUCKET_PARALLEL_STEP"] = str(parallel[0])
            env["BITBUCKET_PARALLEL_STEP_COUNT"] = str(parallel[1])
        env.update(self.variables)
        return env

    def _repo_slug(self) -> str:
        root = self.checkout.root or self.path.parent
        return re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()) or "repository"

    def _workspace(self) -> str:
        origin = self.checkout.origin or ""
        match = re.search(r"[:/]([^/:]+)/[^/]+?(?:\.git)?$", origin)
        return match.group(1).lower() if match else "local"

    def _clone_enabled(self, spec: StepSpec) -> bool:
        for clone in (spec.clone, self.spec.clone):
            if clone is not None:
                return clone.enabled
        return True

    def _clone_paths(self, spec: StepSpec) -> tuple[str, ...]:
        """`clone.sparse-checkout`: only these paths of the tree are copied into the step (the step's own
        setting wins over the file's)."""
        for clone in (spec.clone, self.spec.clone):
            if clone is not None and clone.sparse_checkout is not None:
                sparse = clone.sparse_checkout
                return tuple(pattern.strip("/") for pattern in sparse.patterns) if sparse.enabled else ()
        return ()

    def _artifacts(
        self, artifacts: list[str | ArtifactUploadSpec] | ArtifactsSpec | None, loc: Loc
    ) -> Artifacts | None:
        """The three shapes Bitbucket takes: a list of globs (and named artifacts), `paths` with
        `download`, and `upload` with named artifacts."""
        if artifacts is None:
            return None
        globs: list[tuple[str, Loc]] = []
        named: list[NamedArtifact] = []
        if isinstance(artifacts, list):
            items: list[tuple[str | ArtifactUploadSpec, Loc]] = [
                (item, (*loc, index)) for index, item in enumerate(artifacts)
            ]
        else:
            items = [(path, (*loc, "paths", index)) for index, path in enumerate(artifacts.paths)]
            items += [(upload, (*loc, "upload", index)) for index, upload in enumerate(artifacts.upload)]
        for item, where in items:
            if isinstance(item, str):
                globs.append((item, where))
                continue
            for index, path in enumerate([*item.paths, *item.ignore_paths]):
                key = "paths" if index < len(item.paths) else "ignore-paths"
                position = index if key == "paths" else index - len(item.paths)
                self._artifact_path(path, (*where, key, position))
            named.append(
                NamedArtifact(
                    name=item.name,
                    paths=tuple(item.paths),
                    ignore=tuple(item.ignore_paths),
                    depth=item.depth,
                    shared=item.type == "shared",
                )
            )
        for path, where in globs:
            self._artifact_path(path, where)
        if not globs and not named:
            return None
        return Artifacts(paths=tuple(path for path, _ in globs), named=tuple(named))

    def _artifact_path(self, path: str, loc: Loc) -> None:
        if path.startswith("/") or ".." in Path(path).parts:
            raise self.document.error(
                loc,
                f"artifact path '{path}' leaves the clone directory",
                "write artifact paths relative to the clone directory, without '..'",
            )

    def _downloads(self, artifacts: list[str | ArtifactUploadSpec] | ArtifactsSpec | None) -> bool:
        return not (isinstance(artifacts, ArtifactsSpec) and artifacts.download is False)

    def _download_names(
        self, artifacts: list[str | ArtifactUploadSpec] | ArtifactsSpec | None
    ) -> tuple[str, ...] | None:
        if isinstance(artifacts, ArtifactsSpec) and isinstance(artifacts.download, list):
            return tuple(artifacts.download)
        return None

    def _caches(self, names: list[str], loc: Loc) -> tuple[Cache, ...]:
        caches: list[Cache] = []
        for index, name in enumerate(names):
            custom = self.caches.get(name)
            if custom is not None:
                path = custom if isinstance(custom, str) else custom.path
                key = self._cache_key(custom) if isinstance(custom, CacheSpec) else ""
            elif name in PREDEFINED_CACHES:
                path, key = PREDEFINED_CACHES[name], ""
            elif name == "docker":
                self.note(
                    (*loc, index), "the docker cache has no meaning locally: the host engine keeps its images"
                )
                continue
            else:
                known = sorted({*PREDEFINED_CACHES, *self.caches})
                raise self.document.error(
                    (*loc, index),
                    f"unknown cache '{name}'",
                    f"define it under definitions.caches, or use one of: {', '.join(known)}",
                )
            if ".." in Path(path).parts:
                raise self.document.error(
                    (*loc, index),
                    f"cache '{name}' has the path '{path}', which leaves its directory",
                    "write the cache path without '..'",
                )
            caches.append(Cache(name=name, path=HOME + path[1:] if path.startswith("~") else path, key=key))
        return tuple(caches)

    def _cache_key(self, cache: CacheSpec) -> str:
        if cache.key is None:
            return ""
        digest = hashlib.sha256()
        base = self.path.parent
        for pattern in cache.key.files:
            for file in sorted(base.glob(pattern)):
                if file.is_file():
                    digest.update(file.relative_to(base).as_posix().encode() + b"\0" + file.read_bytes())
        return digest.hexdigest()[:16]

    def _sidecars(self, names: list[str], loc: Loc) -> tuple[Sidecar, ...]:
        if len(names) > MAX_SERVICES:
            raise self.document.error(loc, f"a step can have at most {MAX_SERVICES} services", None)
        sidecars = []
        for index, name in enumerate(names):
            if name == "docker" and (name not in self.services or self.services[name].image is None):
                continue  # the docker service: the step talks to this machine's engine
            service = self.services.get(name)
            if service is None:
                known = ", ".join(sorted(self.services)) or "none defined"
                raise self.document.error(
                    (*loc, index),
                    f"unknown service '{name}'",
                    f"define it under definitions.services (defined: {known})",
                )
            if service.image is None:
                raise self.document.error(
                    ("definitions", "services", name), f"service '{name}' has no image", None
                )
            env = {key: _text(value) for key, value in {**service.environment, **service.variables}.items()}
            sidecars.append(
                Sidecar(
                    name=name,
                    image=service.image.name,
                    env=env,
                    memory=(service.memory or SERVICE_MEMORY) * 1024 * 1024,
                    expand_variables=True,
                )
            )
        return tuple(sidecars)

    def _state(self, condition: ConditionSpec | None, loc: Loc) -> str | None:
        """`condition.state`, checked now and evaluated just before the step runs, over its variables."""
        if condition is None or condition.state is None:
            return None
        try:
            state.parse(condition.state)
        except state.StateError as exc:
            raise self.document.error(
                (*loc, "state"),
                f"condition.state: {exc.message} at character {exc.column + 1} of {condition.state!r}",
                'write a comparison such as `DEPLOY == true && glob(BITBUCKET_BRANCH, "release/*")`',
            ) from None
        return condition.state

    def _condition(self, condition: ConditionSpec | None, loc: Loc) -> str | None:
        if condition is None or condition.changesets is None:
            return None
        changed = self.checkout.changed
        if changed is None:
            self.note(loc, "condition.changesets cannot be evaluated outside a git checkout: the step runs")
            return None
        include = condition.changesets.include_paths
        exclude = condition.changesets.exclude_paths
        relevant = [path for path in changed if not (exclude and matches(path, exclude))]
        if include:
            relevant = [path for path in relevant if matches(path, include)]
        if relevant:
            return None
        return "condition.changesets: no changed file matches"


def pipe_variables(variables: dict[str, object]) -> dict[str, str]:
    """A pipe's variables as its environment. A list `NAME: [a, b]` reaches it as `NAME_COUNT=2`, `NAME_0=a`,
    `NAME_1=b`, as Bitbucket passes array variables (and as NAME, JSON, for pipes that read it whole); a
    mapping as JSON."""
    env: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, list):
            env[f"{name}_COUNT"] = str(len(value))
            for index, item in enumerate(value):
                env[f"{name}_{index}"] = (
                    _text(item) if not isinstance(item, list | dict) else json.dumps(item)
                )
        env[name] = json.dumps(value) if isinstance(value, list | dict) else _text(value)
    return env


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
