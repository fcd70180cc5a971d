"""Choosing the engine and where its published ports are: runner.toml, --engine and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.backend.base import EngineInfo
from runner.config import engine_settings
from runner.errors import InputError


def test_runner_toml_names_the_engine_host_and_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runner.toml").write_text(
        'engine = "tcp://build-box:2375"\nhost = "build-box.lan"\nengine_socket = "/run/docker.sock"\n',
        encoding="utf-8",
    )
    settings = engine_settings(None, env={})
    assert settings.engine is None and settings.configured_engine == "tcp://build-box:2375"
    assert (settings.host_override, settings.host_socket) == ("build-box.lan", "/run/docker.sock")
    assert "runner.toml" in settings.host_override_source


def test_the_option_and_the_environment_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runner.toml").write_text('engine = "ctx"\nhost = "from-file"\n', encoding="utf-8")
    env = {"RUNNER_ENGINE": "unix:///env.sock", "TESTCONTAINERS_HOST_OVERRIDE": "tc-host"}
    assert engine_settings(None, env=env).engine == "unix:///env.sock"
    assert engine_settings(None, explicit="tcp://opt:2375", env=env).engine == "tcp://opt:2375"
    assert engine_settings(None, env=env).host_override == "tc-host"
    both = {**env, "RUNNER_HOST_OVERRIDE": "runner-host"}
    assert engine_settings(None, env=both).host_override == "runner-host"


def test_the_file_beside_the_pipeline_wins_over_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runner.toml").write_text('host = "cwd"\n', encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    (project / "runner.toml").write_text('host = "project"\n', encoding="utf-8")
    assert engine_settings(project / "runner.yml", env={}).host_override == "project"


def test_a_wrong_value_in_the_file_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runner.toml").write_text("engine = 5\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        engine_settings(None, env={})
    assert "engine" in caught.value.message and caught.value.hint


def _engine(published_host: str, remote: bool) -> EngineInfo:
    return EngineInfo(
        id="e", name="n", address="a", source="s", product="Docker Engine", version="v", api_version="1.41",
        os="linux", arch="x86_64", rootless=False, remote=remote, published_host=published_host,
        published_host_source="test", host_socket="/var/run/docker.sock",
    )  # fmt: skip


def test_a_port_bound_to_one_local_address_is_reached_there() -> None:
    local, remote = _engine("127.0.0.1", remote=False), _engine("10.88.0.4", remote=True)
    assert local.reach("127.0.0.1") == local.reach("") == "127.0.0.1"
    assert local.reach("192.0.2.7") == "192.0.2.7"
    assert remote.reach("0.0.0.0") == "10.88.0.4"  # a remote engine's host
    assert remote.reach("192.0.2.7") == "10.88.0.4"
