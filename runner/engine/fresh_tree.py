"""A fresh copy of the source tree for every step that clones it, at a cost that does not grow with the
tree after the first step: the tree goes to the engine once per image that steps run it in, as a layer of a
per-run image above that image, and each step's container is a copy-on-write copy of that image. A step
never sees another's changes, since each writes to its own container's layer; the images are the run's
resources, recorded and removed as its containers are."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from runner.backend.base import Backend, ContainerSpec
from runner.engine.workspace import SourceTree
from runner.errors import RunnerError
from runner.model import ContainerRun, Group, Node, Pipeline, Step
from runner.teardown.manager import TeardownManager

# Committing a layer writes the tree a second time: against one copy into each step's own container, it
# pays for itself from the third step on the same image.
SHARED_FROM = 3

TreeKey = tuple[str, str, tuple[str, ...]]  # (the step's image as written, where the tree goes, which files)


def tree_key(action: ContainerRun) -> TreeKey | None:
    """What a step's fresh tree depends on; None for a step that copies no tree."""
    if action.source != "copy" or not action.clone or not action.workdir or action.on_host:
        return None
    if action.pipes or action.after_pipes:
        return None  # its pipes run in their own images: each part gets what it needs as it runs
    return action.image, action.workdir, action.clone_paths


def _steps(nodes: tuple[Node, ...]) -> Iterator[Step]:
    for node in nodes:
        if isinstance(node, Group):
            for children in (node.children(), node.errors, node.finally_):
                yield from _steps(children)
        else:
            yield node


def clone_uses(pipeline: Pipeline) -> Counter[TreeKey]:
    """How many steps of the pipeline copy the tree, by what their copy depends on."""
    uses: Counter[TreeKey] = Counter()
    for nodes in (pipeline.steps, pipeline.errors, pipeline.finally_, pipeline.after):
        for step in _steps(nodes):
            key = tree_key(step.action) if isinstance(step.action, ContainerRun) else None
            if key is not None:
                uses[key] += 1
    return uses


class TreeImages:
    """The run's images that hold the tree, each made once, the first time a step needs it."""

    def __init__(
        self, backend: Backend, teardown: TeardownManager, source: SourceTree, uses: Counter[TreeKey]
    ):
        self.backend = backend
        self.teardown = teardown
        self.source = source
        self.uses = uses
        self.made: dict[tuple[TreeKey, str], str | None] = {}
        self.locks: dict[tuple[TreeKey, str], threading.Lock] = {}
        self.lock = threading.Lock()

    def image_for(self, key: TreeKey, image: str) -> str | None:
        """The run's image that is `image` with the tree in it; None where a copy into the step's own
        container is better (too few steps share it) or the only way (the image declares a volume over
        the working directory, which a committed layer would not hold)."""
        if self.uses[key] < SHARED_FROM:
            return None
        with self.lock:
            lock = self.locks.setdefault((key, image), threading.Lock())
        with lock:  # a parallel step of the same image waits for the one image instead of making its own
            if (key, image) not in self.made:
                self.made[(key, image)] = self._make(key, image)
            return self.made[(key, image)]

    def _make(self, key: TreeKey, image: str) -> str | None:
        _, workdir, only = key
        volumes = self.backend.image_volumes(image)
        if any(workdir == v or workdir.startswith(v.rstrip("/") + "/") for v in volumes):
            return None
        spec = ContainerSpec(name=self.teardown.name("tree"), image=image, labels={}, network_mode="none")
        try:
            container_id = self.teardown.create_container(spec, "", False)
        except RunnerError:
            return None  # an image with no command to create a container of: each step gets its own copy
        try:
            with self.source.copying(workdir, only) as stream:
                self.backend.put_archive(container_id, "/", stream)
            return self.teardown.commit_image(container_id, f"{spec.name}:tree")
        finally:
            self.teardown.remove_container(container_id)
