"""Extraction without Python's tar filters (before 3.11.4, as on Debian 12, which cluster runs use) keeps
what the "data" filter keeps and refuses what it refuses."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runner.engine import tarsafe


def archive() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode in (
            ("a/b.txt", b"kept", 0o4777),
            ("../evil", b"no", 0o644),
            ("/abs", b"no", 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for name, kind, target in (
            ("out", tarfile.SYMTYPE, "../../etc/passwd"),
            ("in", tarfile.SYMTYPE, "a/b.txt"),
        ):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = kind, target
            tar.addfile(link)
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("filters", [True, False], ids=["python-filters", "by-hand"])
def test_the_same_members_are_kept_and_refused_with_or_without_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filters: bool
) -> None:
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    kept, refused = [], []
    with tarfile.open(fileobj=archive()) as tar:
        for member in tar.getmembers():
            try:
                tarsafe.extract(tar, member, tmp_path)
                kept.append(member.name.lstrip("/"))
            except tarsafe.Refused:
                refused.append(member.name)
    assert kept == ["a/b.txt", "abs", "in"]  # an absolute name lands inside the folder
    assert refused == ["../evil", "out", "pipe"]
    assert (tmp_path / "a/b.txt").read_bytes() == b"kept"
    assert (tmp_path / "a/b.txt").stat().st_mode & 0o7000 == 0  # no setuid bit
    assert not (tmp_path.parent / "evil").exists()
