"""Variables a step hands to later steps: `KEY=VALUE` lines it appends to a file, kept when declared."""

from __future__ import annotations

import io
import re
import tarfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from runner.backend.base import Backend
from runner.engine.artifacts import ChunkReader
from runner.errors import ResourceGone

# In the container's own /tmp, which every image with a shell has and every user may write to:
# nothing has to be put into the container before it starts, so a step that shares nothing costs nothing.
SHARED_FILE = "/tmp/runner-shared-variables"
MAX_FILE_BYTES = 1024 * 1024  # a runaway `yes >> $FILE` must not fill the runner's memory
REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced by the variable's value, or by nothing when it is unset, as a shell
    does; `$$` and a `$` before anything else stay as they are."""
    return REFERENCE.sub(lambda found: env.get(found.group(1) or found.group(2), ""), text)


@dataclass(frozen=True)
class Shared:
    """What one step's file held, sorted out."""

    values: dict[str, str] = field(default_factory=dict)  # declared names with their last written value
    undeclared: tuple[str, ...] = ()  # written but not declared: not shared
    malformed: tuple[str, ...] = ()  # lines that are not KEY=VALUE


def parse(text: str, declared: tuple[str, ...]) -> Shared:
    """The last value written for each declared name wins, as when the file is read by a shell."""
    values: dict[str, str] = {}
    undeclared: list[str] = []
    malformed: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if not equals or not name.replace("_", "a").isalnum() or name[0].isdigit():
            malformed.append(line)
        elif name in declared:
            values[name] = value
        elif name not in undeclared:
            undeclared.append(name)
    return Shared(values, tuple(undeclared), tuple(malformed))


def read_file(backend: Backend, container_id: str) -> str:
    """The shared-variables file of a stopped container; "" when the step wrote none."""
    try:
        reader = io.BufferedReader(ChunkReader(backend.get_archive(container_id, SHARED_FILE)))
        with tarfile.open(fileobj=reader, mode="r|") as stream:
            for member in stream:
                extracted = stream.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    return extracted.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except ResourceGone:
        pass
    return ""


class SharedVariables:
    """The run's shared variables. A step of a parallel group does not see what its siblings share: the
    group's variables reach the steps after it, all at once, when the whole group has ended."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = secrets  # name -> value of every secret of the run
        self.visible: dict[str, str] = {}
        self.by_step: dict[str, dict[str, str]] = {}
        self.masked: set[str] = set()
        self.masked_names: dict[str, set[str]] = {}  # step id -> the names whose values are masked
        self.held: list[tuple[frozenset[str], dict[str, str]]] = []
        self.lock = threading.Lock()

    def current(self) -> dict[str, str]:
        with self.lock:
            return dict(self.visible)

    def masked_values(self) -> tuple[str, ...]:
        with self.lock:
            return tuple(self.masked)

    def produced(self, step_id: str) -> tuple[dict[str, str], tuple[str, ...]]:
        """What a step shared, and the names among them whose values are masked."""
        with self.lock:
            return dict(self.by_step.get(step_id, {})), tuple(sorted(self.masked_names.get(step_id, ())))

    def add(self, step_id: str, values: Mapping[str, str], masked: tuple[str, ...] = ()) -> None:
        """A step's variables: now, or when its parallel group ends. `masked` names values that must never
        be shown, besides those that carry a secret."""
        with self.lock:
            self.by_step.setdefault(step_id, {}).update(values)
            for name, value in values.items():
                if value and (name in masked or self._from_secret(name, value)):
                    self.masked.add(value)
                    self.masked_names.setdefault(step_id, set()).add(name)
            for members, pending in self.held:
                if step_id in members:
                    pending.update(values)
                    return
            self.visible.update(values)

    def is_masked(self, value: str) -> bool:
        with self.lock:
            return value in self.masked

    def _from_secret(self, name: str, value: str) -> bool:
        return name in self.secrets or any(secret and secret in value for secret in self.secrets.values())

    @contextmanager
    def group(self, step_ids: frozenset[str]) -> Iterator[None]:
        """Hold what these steps share until they have all ended."""
        pending: dict[str, str] = {}
        with self.lock:
            self.held.append((step_ids, pending))
        try:
            yield
        finally:
            with self.lock:
                self.held.remove((step_ids, pending))
                self.visible.update(pending)
