"""The shape of `bitbucket-pipelines.yml`, as Atlassian documents it. Unknown keys are errors, as there."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from runner.formats.schema import Spec

Scalar = str | int | float | bool
Size = Literal["1x", "2x", "4x", "8x", "16x", "32x"]


class ImageSpec(Spec):
    name: str
    username: str | None = None
    password: str | None = None
    email: str | None = None
    run_as_user: int | None = Field(default=None, alias="run-as-user")
    aws: dict[str, Any] | None = None


def _image_name(cls: Any, value: Any) -> Any:
    """`image: python:3.12` is short for `image: {name: python:3.12}`."""
    return {"name": value} if isinstance(value, str) else value


class ServiceSpec(Spec):
    image: ImageSpec | None = None
    variables: dict[str, Scalar] = Field(default_factory=dict)
    environment: dict[str, Scalar] = Field(default_factory=dict)
    memory: int | None = None
    type: str | None = None

    _image = field_validator("image", mode="before")(_image_name)


class CacheKeySpec(Spec):
    files: list[str] = Field(min_length=1)


class CacheSpec(Spec):
    path: str
    key: CacheKeySpec | None = None


class Definitions(Spec):
    # anchors for shared steps and scripts may live under any key here
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    caches: dict[str, str | CacheSpec] = Field(default_factory=dict)


class PipeSpec(Spec):
    pipe: str
    variables: dict[str, Any] = Field(default_factory=dict)


class ArtifactUploadSpec(Spec):
    """A named artifact: `shared` ones reach later steps, `scoped` and `test-reports` ones stay with the
    step that made them."""

    name: str = Field(min_length=1)
    type: Literal["shared", "scoped", "test-reports"] = "shared"
    paths: list[str] = Field(min_length=1)
    ignore_paths: list[str] = Field(default_factory=list, alias="ignore-paths")
    depth: int | None = Field(default=None, ge=1)


class ArtifactsSpec(Spec):
    download: bool | list[str] = True  # a list: only the named artifacts with these names
    paths: list[str] = Field(default_factory=list)
    upload: list[ArtifactUploadSpec] = Field(default_factory=list)


class SparseCheckoutSpec(Spec):
    enabled: bool = True
    cone_mode: bool = Field(default=True, alias="cone-mode")
    patterns: list[str] = Field(default_factory=list)


class ChangesetsSpec(Spec):
    include_paths: list[str] = Field(default_factory=list, alias="includePaths")
    exclude_paths: list[str] = Field(default_factory=list, alias="excludePaths")


class ConditionSpec(Spec):
    changesets: ChangesetsSpec | None = None
    state: str | None = None  # an expression over the step's variables, evaluated just before it runs


class CloneSpec(Spec):
    enabled: bool = True
    depth: int | Literal["full"] | None = None
    lfs: bool | None = None
    skip_ssl_verify: bool | None = Field(default=None, alias="skip-ssl-verify")
    strategy: str | None = None
    filter: str | None = None
    tags: bool | None = None
    sparse_checkout: SparseCheckoutSpec | None = Field(default=None, alias="sparse-checkout")


class OnFailSpec(Spec):
    strategy: Literal["ignore", "fail"] = "fail"


class StepSpec(Spec):
    name: str | None = None
    image: ImageSpec | None = None
    script: list[str | PipeSpec] | None = None
    after_script: list[str | PipeSpec] = Field(default_factory=list, alias="after-script")
    services: list[str] = Field(default_factory=list)
    caches: list[str] = Field(default_factory=list)
    artifacts: list[str | ArtifactUploadSpec] | ArtifactsSpec | None = None
    max_time: int | None = Field(default=None, alias="max-time", ge=1)
    size: Size | None = None
    condition: ConditionSpec | None = None
    trigger: Literal["automatic", "manual"] = "automatic"
    deployment: str | None = None
    environment: str | None = None
    concurrency_group: str | None = Field(default=None, alias="concurrency-group")
    fail_fast: bool | None = Field(default=None, alias="fail-fast")
    oidc: bool = False
    runs_on: list[str] | str | None = Field(default=None, alias="runs-on")
    runtime: dict[str, Any] | None = None
    clone: CloneSpec | None = None
    output_variables: list[str] | None = Field(default=None, alias="output-variables")
    on_fail: OnFailSpec | None = Field(default=None, alias="on-fail")
    type: str | None = None
    custom: str | None = None

    _image = field_validator("image", mode="before")(_image_name)


class ParallelSpec(Spec):
    steps: list[dict[str, Any]] = Field(min_length=1)
    fail_fast: bool = Field(default=False, alias="fail-fast")


class StageSpec(Spec):
    name: str | None = None
    steps: list[dict[str, Any]] = Field(min_length=1)
    deployment: str | None = None
    environment: str | None = None
    concurrency_group: str | None = Field(default=None, alias="concurrency-group")
    condition: ConditionSpec | None = None
    trigger: Literal["automatic", "manual"] = "automatic"


class VariableSpec(Spec):
    name: str
    default: Scalar | None = None
    allowed_values: list[Scalar] | None = Field(default=None, alias="allowed-values")
    description: str | None = None


class OptionsSpec(Spec):
    max_time: int | None = Field(default=None, alias="max-time", ge=1, le=720)
    docker: bool = False
    size: Size | None = None
    runtime: dict[str, Any] | None = None


class PipelinesSpec(Spec):
    default: list[Any] | None = None
    branches: dict[str, list[Any]] = Field(default_factory=dict)
    tags: dict[str, list[Any]] = Field(default_factory=dict)
    bookmarks: dict[str, list[Any]] = Field(default_factory=dict)
    pull_requests: dict[str, list[Any]] = Field(default_factory=dict, alias="pull-requests")
    custom: dict[str, list[Any]] = Field(default_factory=dict)


class FileSpec(Spec):
    image: ImageSpec | None = None
    options: OptionsSpec | None = None
    clone: CloneSpec | None = None
    definitions: Definitions | None = None
    pipelines: PipelinesSpec
    labels: dict[str, Any] | None = None

    _image = field_validator("image", mode="before")(_image_name)
