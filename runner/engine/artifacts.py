"""Artifacts: files a step declares, collected from its container when it ends, restored into later steps."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runner.backend.base import Backend
from runner.engine import tarsafe
from runner.globs import matches
from runner.model import Artifacts
from runner.tarstream import stream_files


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks, so a tar stream is read without holding it whole."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


@dataclass(frozen=True)
class Bundle:
    """What a step keeps under one name ("" for its unnamed artifacts), and whether later steps get it."""

    name: str
    globs: tuple[str, ...]
    ignore: tuple[str, ...] = ()
    depth: int | None = None
    shared: bool = True

    @property
    def folder(self) -> str:
        # a name is free text ("Test Results"): the folder is a digest of it, the name kept in a file beside
        return "files" if not self.name else "named-" + hashlib.sha256(self.name.encode()).hexdigest()[:16]

    def wants(self, relative: str) -> bool:
        if self.depth is not None and relative.count("/") >= self.depth:
            return False
        if self.ignore and matches(relative, self.ignore, contents=True):
            return False
        return matches(relative, self.globs, contents=True)


def bundles(artifacts: Artifacts) -> tuple[Bundle, ...]:
    found = [Bundle("", artifacts.paths)] if artifacts.paths else []
    for named in artifacts.named:
        found.append(Bundle(named.name, named.paths, named.ignore, named.depth, named.shared))
    return tuple(found)


NAME_FILE = ".name"  # in a named bundle's folder: the name, and whether it is shared


class ArtifactStore:
    """The run's artifacts on disk, a folder per step and name, so a later run can take one step's files.
    Restored in the order they were collected: a later declaration of a path replaces the earlier file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.order: list[Path] = []  # bundle folders, the latest collected last

    def of_step(self, step_id: str) -> Path:
        return self.directory / step_id

    def _collected(self, folder: Path) -> None:
        if folder in self.order:
            self.order.remove(folder)
        self.order.append(folder)

    def collect(
        self, backend: Backend, container_id: str, workdir: str, wanted: tuple[Bundle, ...], step_id: str
    ) -> tuple[list[str], list[str]]:
        """Copy the files under `workdir` that each bundle wants out of the container, in one pass: the
        paths kept, and those refused (links that point outside the directory, special files)."""
        refused: list[str] = []
        collected: list[str] = []
        reader = io.BufferedReader(ChunkReader(backend.get_archive(container_id, workdir)))
        with self.lock, tarfile.open(fileobj=reader, mode="r|") as stream:
            folders = {bundle: self._prepare(step_id, bundle) for bundle in wanted}
            for member in stream:
                relative = PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()
                if relative in ("", ".") or member.isdir():
                    continue
                targets = [folders[bundle] for bundle in wanted if bundle.wants(relative)]
                if not targets:
                    continue
                member.name = relative
                first, *others = targets
                self._clear(first / relative)
                try:
                    tarsafe.extract(stream, member, first)  # streamed: an artifact may be large
                except tarsafe.Refused:
                    refused.append(relative)
                    continue
                for folder in others:  # the same file under a second name: copied from the first
                    self._clear(folder / relative)
                    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(first / relative, folder / relative, follow_symlinks=False)
                collected.append(relative)
        return collected, refused

    @staticmethod
    def _clear(target: Path) -> None:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)

    def _prepare(self, step_id: str, bundle: Bundle) -> Path:
        folder = self.of_step(step_id) / bundle.folder
        folder.mkdir(parents=True, exist_ok=True)
        if bundle.name:
            (self.of_step(step_id) / f"{bundle.folder}{NAME_FILE}").write_text(
                f"{'shared' if bundle.shared else 'scoped'}\n{bundle.name}", encoding="utf-8"
            )
        self._collected(folder)
        return folder

    def adopt(self, step_id: str, source: Path) -> bool:
        """A step's artifacts from an earlier run, as if it had just collected them; False when that run
        kept none (or they have been pruned since)."""
        if not source.is_dir():
            return False
        with self.lock:
            target = self.of_step(step_id)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, symlinks=True)
            for folder in sorted(path for path in target.iterdir() if path.is_dir()):
                self._collected(folder)
        return True

    def archive(self, prefix: str, names: tuple[str, ...] | None = None) -> Iterator[bytes] | None:
        """A tar stream of the artifacts later steps get, under `prefix`, read from disk as it is sent:
        every shared one, or with `names` only the shared named ones with those names; None when there is
        none."""
        with self.lock:
            files: dict[str, Path] = {}
            for folder in self.order:
                if not self._restored(folder, names):
                    continue
                for path in sorted(folder.rglob("*")):
                    if not path.is_dir() or path.is_symlink():
                        files[path.relative_to(folder).as_posix()] = path
            if not files:
                return None
            # kept files are never changed once collected: the stream may read them after the lock
            return stream_files(
                (path, f"{prefix.strip('/')}/{relative}") for relative, path in sorted(files.items())
            )

    @staticmethod
    def _restored(folder: Path, names: tuple[str, ...] | None) -> bool:
        label = folder.parent / f"{folder.name}{NAME_FILE}"
        if not label.is_file():
            return names is None  # the unnamed ones: not when only some names are asked for
        kind, _, name = label.read_text(encoding="utf-8").partition("\n")
        return kind == "shared" and (names is None or name in names)


def prune(root: Path, keep: set[str], older_than: float) -> None:
    """Remove the artifact folders of runs not in `keep` that were last written before `older_than`."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.name in keep or not folder.is_dir():
            continue
        try:
            if folder.stat().st_mtime < older_than:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
