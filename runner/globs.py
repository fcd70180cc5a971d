"""Path globs as CI files write them: `**` crosses directories, `*` and `?` do not, `{a,b}` is either."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=512)
def compile_glob(glob: str, *, contents: bool = False) -> re.Pattern[str]:
    """With `contents`, a glob that names a directory also matches everything below it."""
    glob = glob.strip().removeprefix("./")
    if contents:
        glob = glob.rstrip("/")
    out: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if glob.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        char = glob[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{" and "}" in glob[index:]:
            end = glob.index("}", index)
            out.append("(?:" + "|".join(re.escape(part) for part in glob[index + 1 : end].split(",")) + ")")
            index = end + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + ("(?:/.*)?" if contents else ""))


def matches(path: str, globs: tuple[str, ...] | list[str], *, contents: bool = False) -> bool:
    return any(compile_glob(glob, contents=contents).fullmatch(path) for glob in globs)
