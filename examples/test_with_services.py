"""A test module to copy: real Redis and PostgreSQL for the tests, and nothing left afterwards.

Run it with `pytest examples/test_with_services.py` (the plugin comes with runner). Without a registry,
map the images to local ones, here through IMAGES; a runner.toml `[images]` table works too.
"""

from __future__ import annotations

import pg8000.native
import redis

from runner.pytest_plugin import ServicesFactory

IMAGES = {"redis": "runner/redis:bookworm", "postgres": "runner/postgres:bookworm"}


def test_redis_keeps_a_value(runner_services_module: ServicesFactory) -> None:
    env = runner_services_module("examples/services.yml", images=IMAGES)
    client = redis.Redis(host=env["redis"].host, port=env["redis"].port(6379))
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"


def test_postgres_answers_a_query(runner_services_module: ServicesFactory) -> None:
    env = runner_services_module("examples/services.yml", images=IMAGES)  # the same services as above
    database = env["postgres"]
    connection = pg8000.native.Connection(
        "postgres", host=database.host, port=database.port(5432), password="secret"
    )
    try:
        assert connection.run("select 40 + 2") == [[42]]
    finally:
        connection.close()
