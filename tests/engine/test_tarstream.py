"""The tree as a tar stream: what tar itself would hold (links, modes, long and non-ASCII names), files
that change while they are read, and what the exclusions leave out."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from runner.engine.workspace import DEFAULT_EXCLUDES, Exclusions, SourceTree
from runner.tarstream import CHUNK, TarWriter, coalesced, stream_files


def unpack(chunks: list[bytes], target: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        archive.extractall(target, filter="tar")
        return archive.getnames()


def test_a_stream_holds_what_tar_would(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "deep" / "er").mkdir(parents=True)
    (source / "deep" / "er" / "file.txt").write_text("text\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    (source / "empty").write_bytes(b"")
    long_name = "n" * 150 + ".txt"
    (source / long_name).write_text("long\n")
    (source / "café.txt").write_text("accent\n")
    (source / "link").symlink_to("deep/er/file.txt")
    os.link(source / "run.sh", source / "hard.sh")
    (source / "big.bin").write_bytes(os.urandom(CHUNK * 2 + 123))
    chunks = list(stream_files([(source, "top")]))
    assert max(len(chunk) for chunk in chunks) <= CHUNK * 2  # never the whole tree in one piece
    target = tmp_path / "target"
    unpack(chunks, target)
    top = target / "top"
    assert (top / "deep" / "er" / "file.txt").read_text() == "text\n"
    assert os.access(top / "run.sh", os.X_OK)
    assert (top / "empty").read_bytes() == b""
    assert (top / long_name).read_text() == "long\n"
    assert (top / "café.txt").read_text() == "accent\n"
    assert os.readlink(top / "link") == "deep/er/file.txt"
    assert os.stat(top / "hard.sh").st_ino == os.stat(top / "run.sh").st_ino
    assert (top / "big.bin").read_bytes() == (source / "big.bin").read_bytes()


def test_a_file_that_changes_while_it_is_read_keeps_the_size_its_header_gave(tmp_path: Path) -> None:
    grows, shrinks = tmp_path / "grows", tmp_path / "shrinks"
    grows.write_bytes(b"a" * 10)
    shrinks.write_bytes(b"b" * 10)
    writer = TarWriter()
    pieces = []
    for path in (grows, shrinks):
        info = writer.describe(path, path.name)
        assert info is not None
        path.write_bytes(b"a" * 20 if path is grows else b"b" * 4)
        pieces += list(writer.member(path, info))
    target = tmp_path / "out"
    unpack(list(coalesced(pieces)), target)
    assert (target / "grows").read_bytes() == b"a" * 10
    assert (target / "shrinks").read_bytes() == b"b" * 4 + b"\0" * 6


def test_exclusions_match_names_anywhere_and_paths_from_the_top(tmp_path: Path) -> None:
    for name in (
        "src/app.py",
        "src/node_modules/x/index.js",
        "logs/a.log",
        "data/raw/big.csv",
        "raw/keep.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("x")
    exclusions = Exclusions((*DEFAULT_EXCLUDES, "node_modules", "*.log", "data/raw"))
    tree = SourceTree(tmp_path, None, exclusions)
    kept = {relative for _, relative in tree.entries() if (tmp_path / relative).is_file()}
    assert kept == {"src/app.py", "raw/keep.txt"}
    assert tree.excluded() == [".venv", "data/raw", "logs/a.log", "src/node_modules"]
    names = unpack(list(tree.stream("work")), tmp_path / "out")
    assert "work/src/app.py" in names and not any("node_modules" in name for name in names)


def test_a_git_listing_decides_what_is_copied_and_git_itself_comes_along(tmp_path: Path) -> None:
    for name in ("listed.txt", "ignored.txt", ".git/HEAD"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    tree = SourceTree(tmp_path, ("listed.txt", "gone-since.txt"))
    names = unpack(list(tree.stream()), tmp_path / "out")
    assert sorted(names) == [".git", ".git/HEAD", "listed.txt"]
