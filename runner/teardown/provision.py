"""The runner's own image on every engine: built from files inside the package when it is missing or
out of date, so a pip-installed runner gets the reaper that the README promises, and says so.

    python -m runner.teardown.provision    # build it now on the current engine (scripts/images.sh does)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tarfile
import time
from collections.abc import Callable
from importlib import resources

from runner.backend.base import TOOL_IMAGE, Backend
from runner.errors import RunnerError
from runner.progress import activity

SOURCE_LABEL = "dev.runner.source-hash"
LOCAL_BASE = "runner/base:bookworm"  # the Debian base scripts/images.sh builds without a registry
REGISTRY_BASE = "debian:bookworm-slim"
STOCK_RYUK = "testcontainers/ryuk:0.11.0"  # speaks the same protocol; for engines where no build works
IMAGE_FILES = ("Dockerfile", "listen.c")

Notice = Callable[[str], None]


def tool_image() -> str:
    """The image name; RUNNER_TOOL_IMAGE lets a test or a mirror use another."""
    return os.environ.get("RUNNER_TOOL_IMAGE") or TOOL_IMAGE


def _sources() -> dict[str, bytes]:
    package = resources.files("runner.teardown")
    files = {name: (package / "image" / name).read_bytes() for name in IMAGE_FILES}
    files["ryuk.py"] = (package / "ryuk.py").read_bytes()
    return files


def source_hash() -> str:
    """The same digest scripts/images.sh used to compute: Dockerfile, listen.c, ryuk.py, in that order."""
    files = _sources()
    return hashlib.sha256(b"".join(files[name] for name in (*IMAGE_FILES, "ryuk.py"))).hexdigest()[:16]


def is_current(backend: Backend, image: str) -> bool:
    return backend.image_labels(image).get(SOURCE_LABEL) == source_hash()


def _context(digest: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        files = _sources()
        files["Dockerfile"] += f"\nLABEL {SOURCE_LABEL}={digest}\n".encode()
        for name, data in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            entry.mode = 0o644
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def build(backend: Backend, image: str, notice: Notice) -> None:
    """Build the image from the package's files; raises RunnerError when the engine cannot."""
    base = LOCAL_BASE if backend.has_image(LOCAL_BASE) else REGISTRY_BASE
    notice(f"building the runner's image {image} on this engine from {base} (once per engine)")
    started = time.monotonic()
    with activity(f"building the runner's image {image}", "steps") as update:
        backend.build_image(_context(source_hash()), image, {"BASE": base}, update)
    notice(f"built {image} in {time.monotonic() - started:.1f}s")


def ensure(backend: Backend, notice: Notice) -> str | None:
    """The image that guards runs on this engine: the runner's own, built if need be, else the stock Ryuk
    image when a registry has it; None when neither can be had (`runner doctor` says why)."""
    image = tool_image()
    if is_current(backend, image):
        return image
    if _in_registry(image):  # a cluster's node: the client pushed the image where every node pulls it
        with contextlib.suppress(RunnerError):
            backend.pull_image(image)
        if is_current(backend, image):
            return image
    try:
        build(backend, image, notice)
        return image
    except RunnerError as exc:
        notice(f"could not build {image}: {exc.message}")
    if backend.has_image(STOCK_RYUK):
        return STOCK_RYUK
    try:
        backend.pull_image(STOCK_RYUK)
    except RunnerError:
        return None
    notice(f"using {STOCK_RYUK} as the reaper on this engine")
    return STOCK_RYUK


def _in_registry(image: str) -> bool:
    """A name whose first part is a registry's host (`host:5000/…`, `registry.example/…`)."""
    first, slash, _ = image.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def main() -> int:
    from runner.backend import connect

    try:
        backend = connect()
        image = tool_image()
        if is_current(backend, image):
            print(f"images: {image:<24} present")
            return 0
        build(backend, image, lambda line: print(f"images: {line}", flush=True))
    except RunnerError as exc:
        print(f"images: error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
