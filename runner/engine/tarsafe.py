"""Extracting a member of a tar stream as Python's "data" filter does (absolute names made relative,
nothing that leaves the target folder, no device files, no owner or setuid bits), also on Pythons before
3.11.4, which lack the filters (Debian 12's Python, which a cluster run's container has, is 3.11.2)."""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path


class Refused(Exception):
    """The member would leave the folder, or is not a plain file, folder or link."""


def extract(stream: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        try:
            stream.extract(member, target, filter="data")
        except tarfile.FilterError as exc:
            raise Refused(str(exc)) from exc
        return
    _check(member)
    member.mode = (member.mode or 0o644) & 0o755 if not member.isdir() else 0o755
    member.uid, member.gid = os.getuid(), os.getgid()
    member.uname = member.gname = ""
    stream.extract(member, target, numeric_owner=True)


def _check(member: tarfile.TarInfo) -> None:
    member.name = name = member.name.lstrip("/")  # as the filter does: an absolute name lands inside
    if ".." in name.split("/"):
        raise Refused(f"{name} leaves the folder")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise Refused(f"{name} is not a plain file")
    if member.issym():
        pointed = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or pointed == ".." or pointed.startswith("../"):
            raise Refused(f"{name} links outside the folder")
    if member.islnk():
        pointed = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or pointed == ".." or pointed.startswith("../"):
            raise Refused(f"{name} links outside the folder")
