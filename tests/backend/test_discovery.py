"""Engine discovery, without an engine: temp dirs stand in for the home and Docker config directories."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.backend.discovery import (
    DEFAULT_SOCKET,
    Endpoint,
    EngineNotFound,
    TLSSettings,
    candidates,
    resolve_endpoint,
    socket_answers,
)
from runner.errors import ExitCode, InputError, RunnerError


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def never_probed(path: str) -> bool:
    raise AssertionError(f"{path} was probed although the user chose an engine")


def alive(*paths: str | Path) -> Callable[[str], bool]:
    answering = {str(path) for path in paths}
    return lambda path: path in answering


def context_digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def write_context(
    config_dir: Path,
    name: str,
    host: str,
    *,
    skip_tls_verify: bool = False,
    tls_files: tuple[str, ...] = (),
) -> Path:
    meta_dir = config_dir / "contexts" / "meta" / context_digest(name)
    meta_dir.mkdir(parents=True)
    meta = {
        "Name": name,
        "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_tls_verify}},
    }
    (meta_dir / "meta.json").write_text(json.dumps(meta))
    tls_dir = config_dir / "contexts" / "tls" / context_digest(name) / "docker"
    if tls_files:
        tls_dir.mkdir(parents=True)
        for file in tls_files:
            (tls_dir / file).write_text("-----BEGIN CERTIFICATE-----\n")
    return tls_dir


def write_current_context(config_dir: Path, name: str) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "config.json"
    path.write_text(json.dumps({"auths": {}, "currentContext": name}))
    return path


# precedence


def test_explicit_wins_over_everything_and_probes_nothing(home: Path) -> None:
    write_context(home / ".docker", "remote", "tcp://remote:2375")
    write_current_context(home / ".docker", "remote")
    env = {"DOCKER_HOST": "tcp://from-env:2375", "DOCKER_CONTEXT": "remote"}

    endpoint = resolve_endpoint(
        "unix:///srv/engine.sock", "tcp://configured:2375", env=env, home=home, answers=never_probed
    )

    assert endpoint == Endpoint("unix:///srv/engine.sock", "--engine")


def test_configured_wins_over_the_environment_and_contexts(home: Path) -> None:
    write_context(home / ".docker", "remote", "tcp://remote:2375")
    env = {"DOCKER_HOST": "tcp://from-env:2375", "DOCKER_CONTEXT": "remote"}

    endpoint = resolve_endpoint(None, "tcp://configured:2375", env=env, home=home, answers=never_probed)

    assert endpoint.address == "tcp://configured:2375"
    assert endpoint.source == 'runner.toml (engine = "tcp://configured:2375")'


def test_docker_host_wins_over_docker_context_and_current_context(home: Path) -> None:
    write_context(home / ".docker", "remote", "tcp://remote:2375")
    write_current_context(home / ".docker", "remote")
    env = {"DOCKER_HOST": "ssh://me@build-box", "DOCKER_CONTEXT": "remote"}

    endpoint = resolve_endpoint(env=env, home=home, answers=never_probed)

    assert endpoint == Endpoint("ssh://me@build-box", "DOCKER_HOST")


def test_docker_context_wins_over_current_context(home: Path) -> None:
    write_context(home / ".docker", "env-choice", "tcp://env-choice:2375")
    write_context(home / ".docker", "config-choice", "tcp://config-choice:2375")
    write_current_context(home / ".docker", "config-choice")

    endpoint = resolve_endpoint(env={"DOCKER_CONTEXT": "env-choice"}, home=home, answers=never_probed)

    assert endpoint.context == "env-choice"
    assert endpoint.source == "docker context 'env-choice' (DOCKER_CONTEXT)"


def test_empty_values_count_as_unset(home: Path) -> None:
    env = {"DOCKER_HOST": "", "DOCKER_CONTEXT": ""}

    endpoint = resolve_endpoint("", "  ", env=env, home=home, answers=alive(DEFAULT_SOCKET))

    assert endpoint.address == f"unix://{DEFAULT_SOCKET}"


# DOCKER_HOST and TLS from the environment


def test_docker_host_without_tls_variables_has_no_tls(home: Path) -> None:
    endpoint = resolve_endpoint(env={"DOCKER_HOST": "tcp://engine:2375"}, home=home, answers=never_probed)

    assert endpoint.tls is None


def test_tls_verify_reads_certificates_from_the_docker_directory_by_default(home: Path) -> None:
    env = {"DOCKER_HOST": "tcp://engine", "DOCKER_TLS_VERIFY": "1"}

    endpoint = resolve_endpoint(env=env, home=home, answers=never_probed)

    assert endpoint.address == "tcp://engine:2376"
    assert endpoint.tls == TLSSettings(verify=True, cert_path=str(home / ".docker"))


def test_tls_verify_follows_docker_config_then_docker_cert_path(home: Path, tmp_path: Path) -> None:
    env = {
        "DOCKER_HOST": "tcp://engine:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CONFIG": str(tmp_path / "cfg"),
    }
    assert resolve_endpoint(env=env, home=home).tls == TLSSettings(True, str(tmp_path / "cfg"))

    env["DOCKER_CERT_PATH"] = str(tmp_path / "certs")
    assert resolve_endpoint(env=env, home=home).tls == TLSSettings(True, str(tmp_path / "certs"))


def test_docker_tls_alone_encrypts_without_verifying(home: Path) -> None:
    env = {"DOCKER_HOST": "tcp://engine", "DOCKER_TLS": "1"}

    endpoint = resolve_endpoint(env=env, home=home)

    assert endpoint.address == "tcp://engine:2376"
    assert endpoint.tls == TLSSettings(verify=False, cert_path=str(home / ".docker"))


def test_tls_variables_apply_to_an_explicit_tcp_address_but_not_to_a_socket(home: Path) -> None:
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"}

    assert resolve_endpoint("tcp://engine", env=env, home=home).tls == TLSSettings(True, "/certs")
    assert resolve_endpoint("unix:///srv/engine.sock", env=env, home=home).tls is None


def test_docker_host_without_a_scheme_is_tcp_as_for_the_docker_cli(home: Path) -> None:
    assert resolve_endpoint(env={"DOCKER_HOST": "engine:2375"}, home=home).address == "tcp://engine:2375"
    assert resolve_endpoint(env={"DOCKER_HOST": "/srv/e.sock"}, home=home).address == "unix:///srv/e.sock"


@pytest.mark.parametrize(
    ("address", "tls_env", "expected"),
    [
        ("tcp://engine", {}, "tcp://engine:2375"),
        ("tcp://engine", {"DOCKER_TLS_VERIFY": "1"}, "tcp://engine:2376"),
        ("tcp://engine:", {}, "tcp://engine:2375"),
        ("tcp://engine:3000", {"DOCKER_TLS_VERIFY": "1"}, "tcp://engine:3000"),
        ("tcp://:2375", {}, "tcp://localhost:2375"),
        ("tcp://[::1]", {}, "tcp://[::1]:2375"),
        ("tcp://engine:2375/", {}, "tcp://engine:2375"),
    ],
)
def test_tcp_port_defaults_follow_tls_as_in_the_docker_cli(
    home: Path, address: str, tls_env: dict[str, str], expected: str
) -> None:
    assert resolve_endpoint(address, env=tls_env, home=home).address == expected
    assert resolve_endpoint(env={"DOCKER_HOST": address, **tls_env}, home=home).address == expected


# explicit and configured syntax


def test_a_bare_absolute_path_is_a_unix_socket(home: Path) -> None:
    endpoint = resolve_endpoint("/run/user/1000/docker.sock", env={}, home=home, answers=never_probed)

    assert endpoint.address == "unix:///run/user/1000/docker.sock"
    assert endpoint.is_local_socket
    assert endpoint.hostname is None


def test_a_home_relative_path_in_runner_toml_is_a_unix_socket(home: Path) -> None:
    endpoint = resolve_endpoint(None, "~/.colima/work/docker.sock", env={}, home=home, answers=never_probed)

    assert endpoint.address == f"unix://{home}/.colima/work/docker.sock"


def test_ssh_addresses_are_kept_with_user_and_port(home: Path) -> None:
    endpoint = resolve_endpoint(
        "ssh://deploy@build.example.com:2222", env={"DOCKER_TLS_VERIFY": "1"}, home=home
    )

    assert endpoint.address == "ssh://deploy@build.example.com:2222"
    assert endpoint.scheme == "ssh"
    assert endpoint.hostname == "build.example.com"
    assert endpoint.tls is None
    assert not endpoint.is_local_socket


def test_endpoint_properties() -> None:
    assert Endpoint("tcp://Engine.example:2376", "x").hostname == "engine.example"
    assert Endpoint("tcp://[fd00::2]:2375", "x").hostname == "fd00::2"
    assert Endpoint("npipe:////./pipe/docker_engine", "x").is_local_socket
    assert Endpoint("npipe:////./pipe/docker_engine", "x").scheme == "npipe"
    assert Endpoint("unix:///var/run/docker.sock", "x").hostname is None


@pytest.mark.parametrize(
    "value",
    [
        "http://engine:2375",
        "fd://",
        "tcp://engine:notaport",
        "tcp://engine:0",
        "tcp://engine:2375?x=1",
        "tcp://user@engine:2375",
        "ssh://",
        "ssh://me:secret@host",
        "unix://relative/docker.sock",
        "relative/docker.sock",
        "no spaces allowed",
        "x",
    ],
)
def test_unparseable_values_are_input_errors_showing_the_valid_forms(home: Path, value: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve_endpoint(value, env={}, home=home, answers=never_probed)

    assert "--engine" in caught.value.message
    assert repr(value) in caught.value.message
    assert caught.value.hint is not None
    assert "unix:///" in caught.value.hint
    assert "tcp://host" in caught.value.hint
    assert "docker context" in caught.value.hint


def test_host_and_port_without_a_scheme_suggests_tcp(home: Path) -> None:
    with pytest.raises(InputError) as caught:
        resolve_endpoint(None, "engine.local:2375", env={}, home=home)

    assert "runner.toml" in caught.value.message
    assert caught.value.hint is not None
    assert "tcp://engine.local:2375" in caught.value.hint


def test_an_unparseable_docker_host_names_the_variable(home: Path) -> None:
    with pytest.raises(InputError) as caught:
        resolve_endpoint(env={"DOCKER_HOST": "http://engine"}, home=home)

    assert "DOCKER_HOST" in caught.value.message
    assert caught.value.hint is not None
    assert "unset DOCKER_HOST" in caught.value.hint


# docker contexts


def test_a_context_from_current_context_in_the_docker_config(home: Path) -> None:
    write_context(home / ".docker", "desktop-linux", f"unix://{home}/.docker/desktop/docker.sock")
    config = write_current_context(home / ".docker", "desktop-linux")

    endpoint = resolve_endpoint(env={}, home=home, answers=never_probed)

    assert endpoint.address == f"unix://{home}/.docker/desktop/docker.sock"
    assert endpoint.context == "desktop-linux"
    assert endpoint.source == f"docker context 'desktop-linux' (currentContext in {config})"
    assert endpoint.tls is None


def test_contexts_are_read_from_docker_config(home: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "elsewhere"
    write_context(config_dir, "remote", "ssh://me@remote")
    write_current_context(config_dir, "remote")

    endpoint = resolve_endpoint(env={"DOCKER_CONFIG": str(config_dir)}, home=home, answers=never_probed)

    assert endpoint.address == "ssh://me@remote"


def test_an_explicit_context_name_is_looked_up_in_the_store(home: Path) -> None:
    write_context(home / ".docker", "prod.eu-1", "tcp://prod:2375")

    endpoint = resolve_endpoint("prod.eu-1", env={}, home=home, answers=never_probed)

    assert endpoint.address == "tcp://prod:2375"
    assert endpoint.context == "prod.eu-1"
    assert endpoint.source == "docker context 'prod.eu-1' (--engine)"


def test_a_configured_context_name_is_looked_up_in_the_store(home: Path) -> None:
    write_context(home / ".docker", "colima", f"unix://{home}/.colima/default/docker.sock")

    endpoint = resolve_endpoint(None, "colima", env={"DOCKER_HOST": "tcp://ignored"}, home=home)

    assert endpoint.context == "colima"
    assert endpoint.source == "docker context 'colima' (runner.toml)"


def test_context_tls_files_turn_on_verified_tls(home: Path) -> None:
    tls_dir = write_context(
        home / ".docker", "secure", "tcp://secure", tls_files=("ca.pem", "cert.pem", "key.pem")
    )

    endpoint = resolve_endpoint(env={"DOCKER_CONTEXT": "secure"}, home=home)

    assert endpoint.address == "tcp://secure:2376"
    assert endpoint.tls == TLSSettings(verify=True, cert_path=str(tls_dir))


def test_context_skip_tls_verify_keeps_the_client_certificate(home: Path) -> None:
    tls_dir = write_context(
        home / ".docker", "lab", "tcp://lab:2376", skip_tls_verify=True, tls_files=("cert.pem", "key.pem")
    )

    endpoint = resolve_endpoint(env={"DOCKER_CONTEXT": "lab"}, home=home)

    assert endpoint.tls == TLSSettings(verify=False, cert_path=str(tls_dir))


def test_context_skip_tls_verify_without_files_still_uses_tls(home: Path) -> None:
    write_context(home / ".docker", "lab", "tcp://lab", skip_tls_verify=True)

    endpoint = resolve_endpoint(env={"DOCKER_CONTEXT": "lab"}, home=home)

    assert endpoint.address == "tcp://lab:2376"
    assert endpoint.tls == TLSSettings(verify=False, cert_path=None)


def test_context_without_tls_files_is_plain_and_ignores_tls_variables(home: Path) -> None:
    write_context(home / ".docker", "plain", "tcp://plain")

    endpoint = resolve_endpoint(env={"DOCKER_CONTEXT": "plain", "DOCKER_TLS_VERIFY": "1"}, home=home)

    assert endpoint.address == "tcp://plain:2375"
    assert endpoint.tls is None


def test_context_metadata_keys_are_read_regardless_of_case(home: Path) -> None:
    meta_dir = home / ".docker" / "contexts" / "meta" / context_digest("hand-written")
    meta_dir.mkdir(parents=True)
    (meta_dir / "meta.json").write_text('{"endpoints": {"docker": {"host": "tcp://hand:2375"}}}')

    assert resolve_endpoint("hand-written", env={}, home=home).address == "tcp://hand:2375"


def test_the_default_context_means_no_context(home: Path) -> None:
    write_current_context(home / ".docker", "default")
    socket_path = str(home / ".docker" / "run" / "docker.sock")

    endpoint = resolve_endpoint(env={}, home=home, answers=alive(socket_path))

    assert endpoint.address == f"unix://{socket_path}"
    assert endpoint.context is None


def test_docker_context_default_overrides_current_context(home: Path) -> None:
    write_context(home / ".docker", "remote", "tcp://remote:2375")
    write_current_context(home / ".docker", "remote")

    endpoint = resolve_endpoint(env={"DOCKER_CONTEXT": "default"}, home=home, answers=alive(DEFAULT_SOCKET))

    assert endpoint.source == f"default socket {DEFAULT_SOCKET}"


def test_explicit_default_skips_runner_toml_and_contexts_but_keeps_docker_host(home: Path) -> None:
    write_context(home / ".docker", "remote", "tcp://remote:2375")
    write_current_context(home / ".docker", "remote")

    via_sockets = resolve_endpoint(
        "default", "tcp://configured", env={}, home=home, answers=alive(DEFAULT_SOCKET)
    )
    via_env = resolve_endpoint(
        "default", "tcp://configured", env={"DOCKER_HOST": "tcp://env:2375"}, home=home
    )

    assert via_sockets.address == f"unix://{DEFAULT_SOCKET}"
    assert via_env.address == "tcp://env:2375"


def test_a_missing_docker_context_is_an_error_naming_it_and_the_file(home: Path) -> None:
    with pytest.raises(InputError) as caught:
        resolve_endpoint(env={"DOCKER_CONTEXT": "gone"}, home=home, answers=never_probed)

    meta = home / ".docker" / "contexts" / "meta" / context_digest("gone") / "meta.json"
    assert caught.value.message == f"docker context 'gone' (DOCKER_CONTEXT) does not exist: {meta} is missing"
    assert caught.value.hint is not None
    assert "DOCKER_CONTEXT" in caught.value.hint


def test_a_missing_current_context_names_the_config_file(home: Path) -> None:
    config = write_current_context(home / ".docker", "gone")

    with pytest.raises(InputError) as caught:
        resolve_endpoint(env={}, home=home, answers=never_probed)

    assert "'gone'" in caught.value.message
    assert str(config) in caught.value.message
    assert caught.value.hint is not None
    assert "docker context use default" in caught.value.hint


def test_a_missing_explicit_context_is_an_error_not_a_fallback(home: Path) -> None:
    with pytest.raises(InputError, match="docker context 'staging' \\(--engine\\) does not exist"):
        resolve_endpoint(
            "staging", env={"DOCKER_HOST": "tcp://env:2375"}, home=home, answers=alive(DEFAULT_SOCKET)
        )


def test_a_broken_docker_config_is_an_error_naming_the_file(home: Path) -> None:
    config = home / ".docker" / "config.json"
    config.parent.mkdir()
    config.write_text("{not json")

    with pytest.raises(InputError, match=r"config\.json"):
        resolve_endpoint(env={}, home=home, answers=never_probed)


def test_a_context_without_a_docker_endpoint_is_an_error(home: Path) -> None:
    meta_dir = home / ".docker" / "contexts" / "meta" / context_digest("k8s-only")
    meta_dir.mkdir(parents=True)
    (meta_dir / "meta.json").write_text('{"Name": "k8s-only", "Endpoints": {}}')

    with pytest.raises(InputError, match="no docker endpoint"):
        resolve_endpoint("k8s-only", env={}, home=home)


def test_a_context_with_an_invalid_host_names_the_file(home: Path) -> None:
    write_context(home / ".docker", "odd", "gopher://odd")

    with pytest.raises(InputError, match="invalid host 'gopher://odd'"):
        resolve_endpoint("odd", env={}, home=home)


# local sockets


def test_candidates_in_order(home: Path) -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}

    tried = candidates(env=env, home=home)

    assert [endpoint.address.removeprefix("unix://") for endpoint in tried] == [
        "/var/run/docker.sock",
        "/run/user/1000/docker.sock",
        f"{home}/.docker/run/docker.sock",
        f"{home}/.docker/desktop/docker.sock",
        f"{home}/.colima/default/docker.sock",
        f"{home}/.rd/docker.sock",
        "/run/podman/podman.sock",
        "/run/user/1000/podman/podman.sock",
    ]
    assert tried[0].source == "default socket /var/run/docker.sock"
    assert tried[-2].source == "Podman socket /run/podman/podman.sock"
    assert all(endpoint.is_local_socket and endpoint.context is None for endpoint in tried)


def test_candidates_fall_back_to_the_user_runtime_dir_without_xdg_runtime_dir(home: Path) -> None:
    runtime_dir = f"/run/user/{os.getuid()}"

    addresses = [endpoint.address for endpoint in candidates(env={}, home=home)]

    assert f"unix://{runtime_dir}/docker.sock" in addresses
    assert f"unix://{runtime_dir}/podman/podman.sock" in addresses


def test_candidates_are_not_repeated(home: Path) -> None:
    addresses = [endpoint.address for endpoint in candidates(env={"XDG_RUNTIME_DIR": "/var/run"}, home=home)]

    assert len(addresses) == len(set(addresses))


def test_the_first_answering_socket_wins(home: Path) -> None:
    colima = home / ".colima" / "default" / "docker.sock"
    podman = "/run/podman/podman.sock"
    probed: list[str] = []

    def answers(path: str) -> bool:
        probed.append(path)
        return path in (str(colima), podman)

    endpoint = resolve_endpoint(env={"XDG_RUNTIME_DIR": "/run/user/1000"}, home=home, answers=answers)

    assert endpoint == Endpoint(f"unix://{colima}", f"Colima socket {colima}")
    assert probed[-1] == str(colima)
    assert podman not in probed


def test_rootless_podman_is_found_last(home: Path) -> None:
    endpoint = resolve_endpoint(
        env={"XDG_RUNTIME_DIR": "/run/user/1000"},
        home=home,
        answers=alive("/run/user/1000/podman/podman.sock"),
    )

    assert endpoint.source == "rootless Podman socket /run/user/1000/podman/podman.sock"


def test_no_answering_socket_names_every_place_tried(home: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(home / "runtime")}

    with pytest.raises(EngineNotFound) as caught:
        resolve_endpoint(env=env, home=home, answers=alive())

    error = caught.value
    tried = candidates(env=env, home=home)
    assert error.tried == tuple(tried)
    for endpoint in tried:
        assert endpoint.source in error.message
    assert f"Docker Desktop socket {home}/.docker/run/docker.sock: absent" in error.message
    assert "DOCKER_HOST" in error.message
    assert error.hint is not None
    assert "sudo systemctl start docker" in error.hint
    assert "sudo dockerd &" in error.hint
    assert "systemctl --user start podman.socket" in error.hint
    assert "DOCKER_HOST / --engine" in error.hint
    assert isinstance(error, RunnerError)
    assert error.exit_code == ExitCode.ENGINE_UNAVAILABLE


def test_the_error_tells_a_dead_socket_from_a_missing_one(home: Path) -> None:
    runtime = home / "rt"
    runtime.mkdir()
    (runtime / "podman").mkdir()
    (runtime / "podman" / "podman.sock").write_text("")
    with short_socket_dir() as directory:
        dead = os.path.join(directory, "docker.sock")
        with socket.socket(socket.AF_UNIX) as bound_only:
            bound_only.bind(dead)
            env = {"XDG_RUNTIME_DIR": str(runtime)}
            (runtime / "docker.sock").symlink_to(dead)

            with pytest.raises(EngineNotFound) as caught:
                resolve_endpoint(env=env, home=home, answers=alive())

    assert f"rootless Docker socket {runtime}/docker.sock: nothing listening" in caught.value.message
    assert f"rootless Podman socket {runtime}/podman/podman.sock: not a socket" in caught.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may use any socket")
def test_the_error_explains_a_socket_this_user_may_not_use(home: Path) -> None:
    with short_socket_dir() as directory:
        path = os.path.join(directory, "docker.sock")
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path)
            os.chmod(path, 0)
            with pytest.raises(EngineNotFound) as caught:
                resolve_endpoint(env={"XDG_RUNTIME_DIR": directory}, home=home, answers=alive())

    assert f"{path}: permission denied" in caught.value.message
    assert caught.value.hint is not None
    assert "usermod -aG docker" in caught.value.hint


# the default probe, against a real socket


@pytest.fixture
def listening_socket() -> Iterator[str]:
    with short_socket_dir() as directory:
        path = os.path.join(directory, "docker.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(4)
            yield path


def short_socket_dir() -> tempfile.TemporaryDirectory[str]:
    # AF_UNIX paths are limited to about 100 bytes, which pytest's tmp_path can exceed.
    return tempfile.TemporaryDirectory(prefix="rd-", dir="/tmp" if os.path.isdir("/tmp") else None)


def test_socket_answers_only_when_something_listens(listening_socket: str) -> None:
    assert socket_answers(listening_socket)
    assert not socket_answers(listening_socket + ".missing")
    with short_socket_dir() as directory:
        bound_only = os.path.join(directory, "docker.sock")
        with socket.socket(socket.AF_UNIX) as unlistened:
            unlistened.bind(bound_only)
            assert not socket_answers(bound_only)


def test_the_default_probe_finds_a_listening_socket(listening_socket: str, home: Path) -> None:
    runtime_dir = os.path.dirname(listening_socket)
    # A Docker engine on this machine legitimately comes first; the test needs none.
    expected = DEFAULT_SOCKET if socket_answers(DEFAULT_SOCKET) else listening_socket

    endpoint = resolve_endpoint(env={"XDG_RUNTIME_DIR": runtime_dir}, home=home)

    assert endpoint.address == f"unix://{expected}"
