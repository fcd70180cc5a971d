"""Artifacts: files a step declares, collected from its container when it ends, restored into later steps."""

from __future__ import annotations

import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from runner.backend.base import Backend
from runner.globs import matches


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


class ArtifactStore:
    """The run's artifacts, on disk; a later declaration of the same path replaces the earlier file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()

    def collect(
        self, backend: Backend, container_id: str, workdir: str, globs: tuple[str, ...]
    ) -> tuple[list[str], list[str]]:
        """Copy the files under `workdir` that match `globs` out of the container: the paths kept, and
        those refused (links that point outside the directory, special files)."""
        refused: list[str] = []
        reader = io.BufferedReader(ChunkReader(backend.get_archive(container_id, workdir)))
        collected: list[str] = []
        with self.lock, tarfile.open(fileobj=reader, mode="r|") as stream:
            self.directory.mkdir(parents=True, exist_ok=True)
            for member in stream:
                relative = PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()
                if relative in ("", ".") or not matches(relative, globs, contents=True) or member.isdir():
                    continue
                member.name = relative
                target = self.directory / relative
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                try:
                    stream.extract(member, self.directory, filter="data")
                except tarfile.FilterError:
                    refused.append(relative)
                    continue
                collected.append(relative)
        return collected, refused

    def archive(self, prefix: str) -> bytes | None:
        """A tar of every artifact under `prefix`, or None when there is none."""
        with self.lock:
            if not self.directory.is_dir() or not any(self.directory.iterdir()):
                return None
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for path in sorted(self.directory.rglob("*")):
                    if path.is_dir() and not path.is_symlink():
                        continue
                    tar.add(
                        path,
                        arcname=f"{prefix.strip('/')}/{path.relative_to(self.directory).as_posix()}",
                        recursive=False,
                    )
            return buffer.getvalue()
