"""The image map (`--image NAME=LOCAL`, `[images]` in runner.toml) and getting each image once."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from runner.backend.base import Backend
from runner.errors import ImageUnavailable
from runner.progress import activity


def repository(image: str) -> str:
    """`redis:7` -> `redis`; a registry port (`host:5000/x`) is not a tag."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return image.split("@", 1)[0]
    if ":" in last:
        return image[: image.rfind(":")]
    return image


def mapped_image(image_map: Mapping[str, str], image: str) -> str:
    """The local image `--image` or `[images]` maps `image` to (by its full name, then its repository),
    or `image` itself."""
    return image_map.get(image) or image_map.get(repository(image)) or image


class ImageResolver:
    def __init__(self, backend: Backend, image_map: Mapping[str, str]) -> None:
        self.backend = backend
        self.image_map = dict(image_map)
        self.ready: dict[str, str] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()

    def mapped(self, image: str) -> str:
        return mapped_image(self.image_map, image)

    def resolve(self, image: str, auth: tuple[str, str] | None = None, pull: str = "missing") -> str:
        """The local name to run for `image`, pulled if it is missing; raises ImageUnavailable.
        `pull` "always" tries a pull first and keeps a local image when that fails; "never" never pulls."""
        target = self.mapped(image)
        if pull == "never" and not self.backend.has_image(target):
            raise ImageUnavailable(
                f"image '{target}' is not on this machine and the pull policy is NEVER",
                f"build or load it, or map it: --image {repository(image)}=LOCAL_IMAGE",
            )
        if pull == "always" and target not in self.ready:
            try:
                with activity(f"pulling {target}", "bytes") as update:
                    self.backend.pull_image(target, auth, update)
            except ImageUnavailable:
                if not self.backend.has_image(target):
                    raise
        with self.lock:
            if target in self.ready:
                return target
            lock = self.locks.setdefault(target, threading.Lock())
        with lock:
            if target not in self.ready:
                if not self.backend.has_image(target):
                    self._pull(image, target, auth)
                self.ready[target] = target
        return target

    def _pull(self, image: str, target: str, auth: tuple[str, str] | None) -> None:
        try:
            with activity(f"pulling {target}", "bytes") as update:
                self.backend.pull_image(target, auth, update)
        except ImageUnavailable as exc:
            via = f" (mapped from '{image}')" if target != image else ""
            raise ImageUnavailable(
                f"image '{target}'{via} is not on this machine and cannot be pulled",
                f"build or load it, or map it to a local image: --image {repository(image)}=LOCAL_IMAGE "
                f"(or `[images]` in runner.toml); the engine said: {exc.message.split(': ', 1)[-1]}",
            ) from exc
