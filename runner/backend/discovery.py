"""Which Docker-API engine to talk to, chosen the way the Docker CLI and testcontainers choose it.

First match wins:

1. `--engine` (an address, an absolute socket path, or a docker context name);
2. `engine = ...` in runner.toml (same syntax);
3. `DOCKER_HOST`, with `DOCKER_TLS_VERIFY`, `DOCKER_TLS` and `DOCKER_CERT_PATH`;
4. `DOCKER_CONTEXT`, else `currentContext` in the Docker CLI's config.json;
5. the first local socket that answers: Docker, rootless Docker, Docker Desktop, Colima, Rancher Desktop,
   Podman, rootless Podman.

Only step 5 probes anything: a value the user chose is taken as is, so a wrong one fails loudly when the
engine is first called instead of silently falling back to another engine.

Pure standard library, so `runner doctor` and the tests need neither the Docker SDK nor an engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from runner.errors import EngineUnavailable, InputError

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_CONTEXT = "default"  # the Docker CLI's name for "no context: DOCKER_HOST or the default socket"
PLAIN_PORT = 2375
TLS_PORT = 2376
PROBE_TIMEOUT = 0.5  # seconds; a local socket that is alive accepts at once

# The Docker CLI refuses to create contexts with other names, so anything else cannot be one.
CONTEXT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.+-]+")
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
ADDRESS_FORMS = (
    "give unix:///path/to/docker.sock, an absolute socket path, tcp://host[:port], ssh://user@host[:port], "
    "npipe:////./pipe/docker_engine, or the name of a docker context (`docker context ls`)"
)
START_ENGINE = (
    "start Docker (`sudo systemctl start docker` or `sudo dockerd &`), or Podman's API "
    "(`systemctl --user start podman.socket`), or point DOCKER_HOST / --engine at a running engine"
)


@dataclass(frozen=True)
class TLSSettings:
    verify: bool
    cert_path: str | None  # directory with ca.pem, cert.pem, key.pem


@dataclass(frozen=True)
class Endpoint:
    address: str  # unix:///path, tcp://host:port, ssh://user@host[:port], npipe://...
    source: str  # for people: where the address came from
    tls: TLSSettings | None = None
    context: str | None = None  # the docker context name when it came from one

    @property
    def scheme(self) -> str:
        return self.address.partition("://")[0]

    @property
    def is_local_socket(self) -> bool:
        return self.scheme in ("unix", "npipe")

    @property
    def hostname(self) -> str | None:
        if self.scheme not in ("tcp", "ssh"):
            return None
        return urlsplit(self.address).hostname


class EngineNotFound(EngineUnavailable):
    """Nothing chose an engine and none of the local sockets answers."""

    def __init__(self, tried: Sequence[tuple[Endpoint, str]]) -> None:
        lines = [f"  - {endpoint.source}: {reason}" for endpoint, reason in tried]
        super().__init__(
            "no container engine found: none is configured (--engine, runner.toml `engine`, DOCKER_HOST, "
            "DOCKER_CONTEXT, docker context) and no local socket answers; tried:\n" + "\n".join(lines),
            _start_hint(reason for _, reason in tried),
        )
        self.tried = tuple(endpoint for endpoint, _ in tried)


@dataclass(frozen=True)
class _Origin:
    """Where a value came from, and how the user fixes it when it is wrong."""

    label: str
    fix: str


def socket_answers(path: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether something accepts connections on the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def candidates(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Endpoint]:
    """The local sockets tried, in order, when nothing names an engine."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    runtime_dir = env.get("XDG_RUNTIME_DIR") or _fallback_runtime_dir()
    places: list[tuple[str, str | None]] = [
        ("default socket", DEFAULT_SOCKET),
        ("rootless Docker socket", runtime_dir and f"{runtime_dir}/docker.sock"),
        ("Docker Desktop socket", str(home / ".docker" / "run" / "docker.sock")),
        ("Docker Desktop socket", str(home / ".docker" / "desktop" / "docker.sock")),
        ("Colima socket", str(home / ".colima" / "default" / "docker.sock")),
        ("Rancher Desktop socket", str(home / ".rd" / "docker.sock")),
        ("Podman socket", "/run/podman/podman.sock"),
        ("rootless Podman socket", runtime_dir and f"{runtime_dir}/podman/podman.sock"),
    ]
    found: list[Endpoint] = []
    seen: set[str] = set()
    for label, path in places:
        if path and path not in seen:
            seen.add(path)
            found.append(Endpoint(f"unix://{path}", f"{label} {path}"))
    return found


def resolve_endpoint(
    explicit: str | None = None,
    configured: str | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    answers: Callable[[str], bool] | None = None,
) -> Endpoint:
    """The engine to use; see the module docstring for the order."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    config_dir = _config_dir(env, home)

    use_contexts = True
    listing = "`docker context ls` lists the contexts"
    explicit, configured = (explicit or "").strip(), (configured or "").strip()
    choices = (
        (explicit, "--engine", _Origin("--engine", f"correct --engine; {listing}")),
        (
            configured,
            f'runner.toml (engine = "{configured}")',
            _Origin("runner.toml", f"correct `engine` in runner.toml; {listing}"),
        ),
    )
    for value, source, origin in choices:
        if not value:
            continue
        if value == DEFAULT_CONTEXT:
            # As `docker --context default`: skip the contexts and any weaker choice, keep DOCKER_HOST.
            use_contexts = False
            break
        return _from_choice(value, origin, source, env, home, config_dir)

    docker_host = env.get("DOCKER_HOST", "").strip()
    if docker_host:
        address = _docker_host_address(docker_host, env)
        return Endpoint(address, "DOCKER_HOST", _env_tls(address, env, config_dir))

    if use_contexts:
        current = _current_context(env, config_dir)
        if current is not None:
            name, origin = current
            return _context_endpoint(name, origin, config_dir)

    return _first_answering(candidates(env, home), answers or socket_answers)


# choices the user made


def _from_choice(
    value: str, origin: _Origin, source: str, env: Mapping[str, str], home: Path, config_dir: Path
) -> Endpoint:
    if "://" in value:
        address = _parse_address(value, _tls_wanted(env), lambda: _not_an_address(value, origin))
        return Endpoint(address, source, _env_tls(address, env, config_dir))
    if value.startswith("/"):
        return Endpoint(f"unix://{value}", source)
    if value == "~" or value.startswith("~/"):
        return Endpoint(f"unix://{home}{value[1:]}", source)
    if CONTEXT_NAME.fullmatch(value):
        return _context_endpoint(value, origin, config_dir)
    raise _not_an_address(value, origin)


def _not_an_address(value: str, origin: _Origin) -> InputError:
    looks_like_host_port = re.fullmatch(r"[\w.-]+:\d+", value) is not None
    suggestion = f"write tcp://{value} for a TCP engine, or " if looks_like_host_port else ""
    return InputError(
        f"{origin.label}: {value!r} is neither an engine address nor a docker context name",
        f"{suggestion}{ADDRESS_FORMS}",
    )


def _docker_host_address(value: str, env: Mapping[str, str]) -> str:
    def invalid() -> InputError:
        return InputError(
            f"DOCKER_HOST={value!r} is not an engine address", f"fix or unset DOCKER_HOST: {ADDRESS_FORMS}"
        )

    if value.startswith("/"):
        return f"unix://{value}"
    # The Docker CLI reads a DOCKER_HOST without a scheme as host:port over TCP.
    with_scheme = value if "://" in value else f"tcp://{value}"
    return _parse_address(with_scheme, _tls_wanted(env), invalid)


# addresses


def _parse_address(value: str, tls_on: bool, invalid: Callable[[], InputError]) -> str:
    """`value` in the form the Docker SDK accepts; `invalid` builds the error naming where it came from."""
    scheme, _, rest = value.partition("://")
    scheme = scheme.lower()
    if scheme == "unix":
        path = rest or DEFAULT_SOCKET  # as the Docker CLI: `unix://` alone is the default socket
        if not path.startswith("/"):
            raise invalid()
        return f"unix://{path}"
    if scheme == "npipe":
        if not rest:
            raise invalid()
        return f"npipe://{rest}"
    if scheme not in ("tcp", "ssh"):
        raise invalid()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise invalid() from exc
    if parts.query or parts.fragment or parts.password is not None or port == 0:
        raise invalid()
    if scheme == "ssh":
        if not parts.hostname:
            raise invalid()
        return f"ssh://{parts.netloc}{parts.path}"
    return _tcp_address(parts, port, tls_on, invalid)


def _tcp_address(
    parts: SplitResult, port: int | None, tls_on: bool, invalid: Callable[[], InputError]
) -> str:
    if parts.username is not None:
        raise invalid()
    host = parts.hostname or "localhost"  # as the Docker CLI: `tcp://:2375` is this machine
    if ":" in host:
        host = f"[{host}]"
    # As the Docker CLI: the port follows TLS when left out, since engines listen for TLS on 2376.
    port = port or (TLS_PORT if tls_on else PLAIN_PORT)
    return f"tcp://{host}:{port}{parts.path.rstrip('/')}"


# TLS from the environment, as the Docker CLI reads it


def _tls_wanted(env: Mapping[str, str]) -> bool:
    # Any non-empty value turns it on, even "0": that is how the Docker CLI reads both variables.
    return bool(env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_TLS"))


def _env_tls(address: str, env: Mapping[str, str], config_dir: Path) -> TLSSettings | None:
    if not address.startswith("tcp://") or not _tls_wanted(env):
        return None
    cert_path = env.get("DOCKER_CERT_PATH") or str(config_dir)
    return TLSSettings(verify=bool(env.get("DOCKER_TLS_VERIFY")), cert_path=cert_path)


# docker contexts


def _config_dir(env: Mapping[str, str], home: Path) -> Path:
    configured = env.get("DOCKER_CONFIG")
    return Path(configured) if configured else home / ".docker"


def _current_context(env: Mapping[str, str], config_dir: Path) -> tuple[str, _Origin] | None:
    from_env = env.get("DOCKER_CONTEXT", "").strip()
    if from_env:
        if from_env == DEFAULT_CONTEXT:
            return None
        return from_env, _Origin(
            "DOCKER_CONTEXT", "unset DOCKER_CONTEXT or set it to a context `docker context ls` lists"
        )
    config_path = config_dir / "config.json"
    config = _read_json(config_path, "the Docker CLI's config")
    if config is None:
        return None
    name = _field(config, "currentContext")
    if not name or name == DEFAULT_CONTEXT:
        return None
    if not isinstance(name, str):
        raise InputError(
            f"{config_path}: currentContext must be a string", "run `docker context use default`"
        )
    fix = f"run `docker context use default`, or correct currentContext in {config_path}"
    return name, _Origin(f"currentContext in {config_path}", fix)


def _context_endpoint(name: str, origin: _Origin, config_dir: Path) -> Endpoint:
    # The Docker CLI stores each context under the SHA-256 of its name, which may hold characters that a
    # directory name cannot.
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    meta_path = config_dir / "contexts" / "meta" / digest / "meta.json"
    meta = _read_json(meta_path, f"docker context '{name}'")
    if meta is None:
        raise InputError(
            f"docker context '{name}' ({origin.label}) does not exist: {meta_path} is missing", origin.fix
        )
    endpoints = _field(meta, "Endpoints")
    docker = _field(endpoints, "docker") if isinstance(endpoints, dict) else None
    if not isinstance(docker, dict):
        raise InputError(
            f"docker context '{name}' has no docker endpoint in {meta_path}",
            f"recreate it with `docker context create {name} --docker host=...`",
        )
    host = _field(docker, "Host") or ""
    skip_verify = _field(docker, "SkipTLSVerify") is True
    if not isinstance(host, str):
        raise InputError(
            f"{meta_path}: Endpoints.docker.Host must be a string", "run `docker context inspect`"
        )

    tls_dir = config_dir / "contexts" / "tls" / digest / "docker"
    has_tls_files = any((tls_dir / file).is_file() for file in TLS_FILES)
    tls_on = has_tls_files or skip_verify

    def invalid() -> InputError:
        return InputError(
            f"docker context '{name}' has an invalid host {host!r} in {meta_path}",
            f"update it with `docker context update {name} --docker host=...`: {ADDRESS_FORMS}",
        )

    # An empty host is what the Docker client treats as its default socket.
    address = _parse_address(host or f"unix://{DEFAULT_SOCKET}", tls_on, invalid)
    tls = None
    if tls_on and address.startswith("tcp://"):
        tls = TLSSettings(verify=not skip_verify, cert_path=str(tls_dir) if has_tls_files else None)
    return Endpoint(address, f"docker context '{name}' ({origin.label})", tls, context=name)


def _read_json(path: Path, what: str) -> dict[str, object] | None:
    """The JSON object in `path`, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {what} at {path}: {exc}", "check the file and its permissions"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} ({what}) is not valid JSON: {exc}", "fix or remove the file") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} ({what}) is not a JSON object", "fix or remove the file")
    return data


def _field(record: Mapping[str, object], key: str) -> object:
    # Go's JSON decoder, which wrote and reads these files, matches keys regardless of case.
    if key in record:
        return record[key]
    folded = key.casefold()
    return next((value for name, value in record.items() if name.casefold() == folded), None)


# local sockets


def _fallback_runtime_dir() -> str | None:
    # XDG_RUNTIME_DIR is often lost under sudo, cron or a bare ssh session while the rootless engine still
    # listens in the user's runtime directory.
    getuid = getattr(os, "getuid", None)
    return f"/run/user/{getuid()}" if getuid is not None else None


def _first_answering(sockets: list[Endpoint], answers: Callable[[str], bool]) -> Endpoint:
    tried: list[tuple[Endpoint, str]] = []
    for endpoint in sockets:
        path = endpoint.address.removeprefix("unix://")
        if answers(path):
            return endpoint
        tried.append((endpoint, _why_silent(path)))
    raise EngineNotFound(tried)


def _why_silent(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "absent"
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    if not stat.S_ISSOCK(mode):
        return "not a socket"
    if not os.access(path, os.R_OK | os.W_OK):
        return "permission denied"
    return "nothing listening"


def _start_hint(reasons: Iterable[str]) -> str:
    if "permission denied" in reasons:
        return (
            "an engine socket exists but you may not use it: add yourself to its group "
            "(`sudo usermod -aG docker $USER`, then log in again); or " + START_ENGINE
        )
    return START_ENGINE
