"""Run on every node of a Swarm by a global job: sends SIGTERM to the containers of one cluster run on this
node, then removes this very container. Swarm stops no running job container when its service is
removed, so this is how a cluster run is cancelled: the runner in the run's container takes the signal
as a local run takes Ctrl-C (the running step stops, `finally` runs), and its node's reaper removes the
rest once it ends.

    python3 -m runner.backend.swarm_signal RUN_ID SIGNALLER_SERVICE_NAME
"""

from __future__ import annotations

import sys

import docker

CLUSTER_RUN = "dev.runner.cluster-run"
SERVICE_NAME = "com.docker.swarm.service.name"


def main(run_id: str, own_service: str) -> int:
    client = docker.APIClient(base_url="unix:///var/run/docker.sock", version="auto")
    signalled = 0
    for container in client.containers(filters={"label": f"{CLUSTER_RUN}={run_id}"}):
        if (container.get("Labels") or {}).get(SERVICE_NAME) == own_service:
            continue
        client.kill(container["Id"], signal="SIGTERM")
        signalled += 1
    print(f"signalled {signalled} container(s) of run {run_id}", flush=True)
    # a finished job's container would stay on this node: this one goes itself
    for container in client.containers(all=True, filters={"label": f"{SERVICE_NAME}={own_service}"}):
        client.remove_container(container["Id"], force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
