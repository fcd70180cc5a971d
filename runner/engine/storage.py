"""The run's file storage, as Kestra's internal storage is to a flow: files a task outputs, under a URI a
later task can name as an input file (`kestra:///RUN/TASK/PATH`). Kept with the run's artifacts."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from runner.backend.base import Backend
from runner.engine import tarsafe
from runner.engine.artifacts import ChunkReader
from runner.errors import RunnerError
from runner.globs import matches

SCHEME = "kestra://"


class RunStorage:
    def __init__(self, root: Path, run_id: str) -> None:
        self.root = root  # the state directory's storage folder: every run's files, so URIs outlive runs
        self.run_id = run_id

    def uri(self, task_id: str, path: str) -> str:
        return f"{SCHEME}/{self.run_id}/{task_id}/{path}"

    def store(self, task_id: str, name: str, content: bytes) -> str:
        target = self.root / self.run_id / task_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return self.uri(task_id, name)

    def purge(self) -> list[str]:
        """Removes the run's stored files: the URIs they had."""
        folder = self.root / self.run_id
        removed = [
            f"{SCHEME}/{path.relative_to(self.root).as_posix()}"
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        ]
        if folder.is_dir():
            shutil.rmtree(folder)
        return removed

    def path_of(self, uri: str) -> Path | None:
        """The file a URI names, or None when it names none of the stored files."""
        if not uri.startswith(SCHEME + "/"):
            return None
        relative = PurePosixPath(uri.removeprefix(SCHEME + "/"))
        if ".." in relative.parts:
            return None
        target = self.root / relative
        return target if target.is_file() else None

    def collect(
        self, backend: Backend, container_id: str, workdir: str, globs: tuple[str, ...], task_id: str
    ) -> dict[str, str]:
        """The files under `workdir` that match the globs, stored: their relative paths and URIs."""
        reader = io.BufferedReader(ChunkReader(backend.get_archive(container_id, workdir)))
        stored: dict[str, str] = {}
        target = self.root / self.run_id / task_id
        with tarfile.open(fileobj=reader, mode="r|") as stream:
            for member in stream:
                relative = PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()
                if relative in ("", ".") or not member.isfile() or not matches(relative, globs):
                    continue
                member.name = relative
                try:
                    tarsafe.extract(stream, member, target)
                except tarsafe.Refused:
                    continue
                stored[relative] = self.uri(task_id, relative)
        return stored

    def archive(self, files: Mapping[str, str], directory: str) -> bytes:
        """A tar that puts each file in `directory`: a value that is a stored file's URI brings that file,
        any other value is the file's content."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            prefix = directory.strip("/")
            folder = tarfile.TarInfo(prefix)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o777
            tar.addfile(folder)
            for name, value in files.items():
                relative = PurePosixPath(name)
                if relative.is_absolute() or ".." in relative.parts:
                    raise RunnerError(f"input file '{name}' leaves the working directory")
                stored = self.path_of(value.strip())
                data = stored.read_bytes() if stored is not None else value.encode("utf-8")
                info = tarfile.TarInfo(f"{prefix}/{relative.as_posix()}")
                info.size, info.mode = len(data), 0o666
                for depth in range(1, len(relative.parts)):
                    parent = tarfile.TarInfo(f"{prefix}/{PurePosixPath(*relative.parts[:depth]).as_posix()}")
                    parent.type, parent.mode = tarfile.DIRTYPE, 0o777
                    tar.addfile(parent)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()
