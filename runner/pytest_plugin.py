"""A pytest plugin: throwaway services as fixtures.

    def test_cache(runner_services):
        env = runner_services("services.yml")           # started for this test, removed after it
        ...

`runner_services_module` and `runner_services_session` do the same for a module or the whole session,
starting each distinct set of services once. `--runner-keep` keeps everything for debugging.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from runner.api import Environment, Services

KEEP_OPTION = "--runner-keep"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runner", "throwaway services")
    group.addoption(KEEP_OPTION, action="store_true", help="keep the services started by runner fixtures")


class ServicesFactory:
    """Call it with a services file, a `services:` mapping or YAML text; the same source gives the same
    services for as long as the fixture's scope lasts."""

    def __init__(self, keep: bool, base: Path) -> None:
        self.keep = keep
        self.base = base
        self.started: dict[str, tuple[Services, Environment]] = {}

    def __call__(
        self,
        source: str | Path | Mapping[str, Any],
        *,
        images: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Environment:
        if isinstance(source, str | Path) and "\n" not in str(source) and not Path(source).is_absolute():
            source = self.base / source
        key = json.dumps(
            [str(source) if not isinstance(source, Mapping) else source, images, env],
            sort_keys=True,
            default=str,
        )
        if key not in self.started:
            handle = Services(source, images=images, env=env, keep=self.keep)
            self.started[key] = (handle, handle.start())
        return self.started[key][1]

    def close(self) -> None:
        for handle, environment in reversed(list(self.started.values())):
            result = handle.stop()
            if self.keep and result is not None:
                print(
                    f"\nrunner: kept the services of run {environment.run_id}; "
                    f"remove them with: runner cleanup --run {environment.run_id}"
                )
        self.started.clear()


def _factory(request: pytest.FixtureRequest) -> Iterator[ServicesFactory]:
    factory = ServicesFactory(bool(request.config.getoption(KEEP_OPTION)), Path(str(request.config.rootpath)))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def runner_services(request: pytest.FixtureRequest) -> Iterator[ServicesFactory]:
    """Services for one test."""
    yield from _factory(request)


@pytest.fixture(scope="module")
def runner_services_module(request: pytest.FixtureRequest) -> Iterator[ServicesFactory]:
    """Services shared by the tests of a module."""
    yield from _factory(request)


@pytest.fixture(scope="session")
def runner_services_session(request: pytest.FixtureRequest) -> Iterator[ServicesFactory]:
    """Services shared by the whole test session."""
    yield from _factory(request)
