"""The floor: N trivial containers created, started, waited and removed with the Docker SDK directly,
on one user-defined network with one named volume, as a pipeline of N steps needs them."""

from __future__ import annotations

import sys
import uuid

import docker


def main(image: str, count: int) -> None:
    client = docker.from_env()
    api = client.api
    tag = uuid.uuid4().hex[:10]
    labels = {"dev.runner.bench": tag}
    network = api.create_network(f"bench-{tag}", driver="bridge", labels=labels)["Id"]
    volume = api.create_volume(f"bench-{tag}", labels=labels)["Name"]
    try:
        for index in range(count):
            host_config = api.create_host_config(
                init=True, network_mode=network, binds={volume: {"bind": "/workspace", "mode": "rw"}}
            )
            container = api.create_container(
                image,
                command=["sh", "-c", "true"],
                name=f"bench-{tag}-{index}",
                labels=labels,
                host_config=host_config,
                working_dir="/workspace",
            )["Id"]
            api.start(container)
            api.wait(container)
            api.remove_container(container, force=True, v=True)
    finally:
        api.remove_network(network)
        api.remove_volume(volume)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
