"""The runner's own image for a cluster: this very runner (the package and the installed distributions it
needs) on the reaper's image, which already has Debian's Python, so that a run placed on any node of a
cluster is driven by the same code the user runs. Built from files on this machine: no package index is
needed on the engine side."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

import runner
from runner.tarstream import TarWriter, data_member, directory_member, stream_files

SITE = "/opt/runner/site"  # where the package and its distributions go in the image
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(root: str = "runner") -> list[metadata.Distribution]:
    """The installed distributions the runner needs at run time, its extras' included (`docker[ssh]`):
    what `dev` and the other optional groups bring is left out."""
    wanted: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, set[str]]] = [(root, set())]
    while pending:
        name, extras = pending.pop()
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker excludes this platform
        key = _normal(distribution.metadata["Name"])
        if key in wanted and not extras:
            continue
        wanted[key] = distribution
        for requirement in distribution.requires or []:
            text, _, marker = requirement.partition(";")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if extra and extra.group(1) not in extras:
                continue
            match = _NAME.match(text)
            if match is None:
                continue
            inner = {part.strip() for part in (match.group(2) or "").strip("[]").split(",") if part.strip()}
            if _normal(match.group(1)) not in wanted or inner:
                pending.append((match.group(1), inner))
    wanted.pop(_normal(root), None)  # the package itself is copied from where it is imported
    return sorted(wanted.values(), key=lambda d: _normal(d.metadata["Name"]))


def _files() -> Iterator[tuple[str, Path]]:
    """(path in the image, file on this machine) for the package and every distribution of its closure."""
    package = Path(runner.__file__).parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield f"runner/{path.relative_to(package).as_posix()}", path
    for distribution in _closure():
        for entry in distribution.files or []:
            if entry.parts and entry.parts[0] == "..":
                continue  # scripts and data outside site-packages
            if "__pycache__" in entry.parts:
                continue
            located = Path(str(distribution.locate_file(entry)))
            if located.is_file():
                yield entry.as_posix(), located


def content_hash() -> str:
    """Names and sizes of every file, and the package's own files in full: a new image when the runner or
    a dependency changed."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for name, path in _files():
        digest.update(name.encode())
        if name.startswith("runner/"):
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:16]


def build_context(base: str) -> Iterator[bytes]:
    """A tar with a Dockerfile FROM `base` and every file under site/."""
    dockerfile = (
        f"FROM {base}\n"
        # the reaper image's labels would spare the runner's containers from every reaper
        'LABEL org.testcontainers.ryuk="false" dev.runner.reaper="false" dev.runner.image="1"\n'
        f"COPY site/ {SITE}/\n"
        f"ENV PYTHONPATH={SITE} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1\n"
        "WORKDIR /workspace\n"
        'ENTRYPOINT ["python3", "-m", "runner"]\n'
    )
    return _context(dockerfile, [(f"site/{name}", path) for name, path in _files()])


def workspace_context(
    base: str, entries: Iterable[tuple[Path, str]], labels: dict[str, str]
) -> Iterator[bytes]:
    """A tar stream with a Dockerfile that puts the entries (a file or folder here, its path in the
    workspace; folders are not walked) at /workspace of an image FROM `base`."""
    label_lines = "".join(f'LABEL {key}="{value}"\n' for key, value in labels.items())
    dockerfile = f"FROM {base}\n{label_lines}COPY workspace/ /workspace/\n"
    folder = directory_member("workspace", 0o755)
    named = ((path, f"workspace/{relative}") for path, relative in entries)
    return stream_files(
        named,
        recursive=False,
        first=(data_member("Dockerfile", dockerfile.encode()), TarWriter.header(folder)),
    )


def _context(dockerfile: str, files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """A build context: the Dockerfile, then each (name in the context, file or folder here)."""
    return stream_files(
        ((path, name) for name, path in files),
        recursive=False,
        first=(data_member("Dockerfile", dockerfile.encode()),),
    )
