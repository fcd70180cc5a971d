"""The workspace: the pipeline's directory, copied into a volume that every step mounts."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

SKIPPED_NAMES = frozenset({".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"})


def archive(directory: Path) -> bytes:
    """A tar of `directory`'s contents; symlinks stay links, nothing outside the tree is followed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.iterdir()):
            if path.name in SKIPPED_NAMES:
                continue
            tar.add(path, arcname=path.name, recursive=True, filter=_skip_caches)
    return buffer.getvalue()


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    if any(part in SKIPPED_NAMES for part in parts):
        return None
    return info
