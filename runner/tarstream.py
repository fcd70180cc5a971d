"""Tar archives written as a stream of chunks, so that a tree of any size passes through a bounded buffer
on its way to the engine instead of being built in memory first."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 1 << 20  # what one chunk of the stream holds at most, give or take a header
BLOCK = tarfile.BLOCKSIZE
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


class TarWriter:
    """Describes files as tar members the way `tarfile` does (hard links, owners, long names as PAX)."""

    def __init__(self) -> None:
        # `gettarinfo` is a method of an open archive because it remembers inodes, to write hard links
        # (and it writes nothing until it is closed, which this one never is)
        self._describer = tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT)

    def describe(self, path: Path, arcname: str) -> tarfile.TarInfo | None:
        """The member for `path`; None when it vanished or is a socket or other thing tar cannot hold."""
        try:
            info = self._describer.gettarinfo(str(path), arcname)
        except FileNotFoundError:
            return None
        if info is not None:
            info.mtime = int(info.mtime)  # a fraction of a second would cost every member a PAX header
        return info

    @staticmethod
    def header(info: tarfile.TarInfo) -> bytes:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def member(self, path: Path, info: tarfile.TarInfo) -> Iterator[bytes]:
        """The header and the content of one member, the content read a chunk at a time and held to the
        size the header announced, whether the file grew or shrank since."""
        yield self.header(info)
        if not info.isreg() or info.size == 0:
            return
        left = info.size
        try:
            with open(path, "rb") as file:
                while left:
                    data = file.read(min(CHUNK, left))
                    if not data:
                        break
                    left -= len(data)
                    yield data
        except OSError:
            pass  # it vanished or became unreadable mid-way: the member is completed with zeros
        if left:
            yield b"\0" * left
        remainder = info.size % BLOCK
        if remainder:
            yield b"\0" * (BLOCK - remainder)


def directory_member(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info


def file_member(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    return info


def coalesced(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Pieces gathered into chunks of about CHUNK bytes: thousands of small files make few HTTP chunks."""
    pending = bytearray()
    for piece in pieces:
        if len(piece) >= CHUNK // 2:  # a file's data: passed on as it is, not copied again
            if pending:
                yield bytes(pending)
                pending.clear()
            yield piece
            continue
        pending += piece
        if len(pending) >= CHUNK:
            yield bytes(pending)
            pending.clear()
    pending += END_OF_ARCHIVE
    yield bytes(pending)


def data_member(name: str, data: bytes) -> bytes:
    """A member holding `data` itself, padded to the block."""
    remainder = len(data) % BLOCK
    return TarWriter.header(file_member(name, len(data))) + data + b"\0" * ((BLOCK - remainder) % BLOCK)


def stream_files(
    entries: Iterable[tuple[Path, str]], *, recursive: bool = True, first: Iterable[bytes] = ()
) -> Iterator[bytes]:
    """A tar stream of (file or folder here, name in the archive), a folder with all it holds unless not
    `recursive`; `first`, members made beforehand (`data_member`), come before them."""
    writer = TarWriter()

    def pieces() -> Iterator[bytes]:
        yield from first
        for path, arcname in entries:
            for child, name in walk(path, arcname) if recursive else ((path, arcname),):
                info = writer.describe(child, name)
                if info is not None:
                    yield from writer.member(child, info)

    return coalesced(pieces())


def walk(path: Path, arcname: str) -> Iterator[tuple[Path, str]]:
    """`path` and, for a folder (not a link to one), everything under it, in name order."""
    yield path, arcname
    if path.is_dir() and not path.is_symlink():
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            yield from walk(path / name, f"{arcname}/{name}")
