"""A registry's HTTP API, for what the engine API cannot do: deleting an image a run pushed. Reached as
the engine that pushed reaches it (from a cluster run's own container, on its node's network)."""

from __future__ import annotations

import httpx

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
TIMEOUT = 10.0


def delete_image(image: str) -> str:
    """Deletes `host:port/repository:tag` from its registry: "" when done, else why not. The registry
    frees the layers at its next garbage collection, as registries do."""
    host, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    problems: list[str] = []
    for scheme in ("https", "http"):  # an insecure registry, as test clusters run theirs, answers http
        base = f"{scheme}://{host}/v2/{repository}/manifests"
        try:
            with httpx.Client(timeout=TIMEOUT, verify=scheme == "https") as client:
                found = client.head(f"{base}/{tag}", headers={"Accept": MANIFEST_TYPES})
                digest = found.headers.get("Docker-Content-Digest")
                if found.status_code == 404:
                    return ""  # already gone
                if not digest:
                    problems.append(f"{scheme}: {found.status_code} without a digest")
                    continue
                deleted = client.delete(f"{base}/{digest}")
                if deleted.status_code in (202, 404):
                    return ""
                problems.append(f"{scheme}: DELETE answered {deleted.status_code} (is deletion enabled?)")
                return "; ".join(problems)
        except httpx.HTTPError as exc:
            problems.append(f"{scheme}: {exc}")
    return "; ".join(problems)
