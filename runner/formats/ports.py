"""Port mappings as `docker run -p` writes them; without an address, the backend chooses one (loopback
when the engine runs on this machine)."""

from __future__ import annotations

import re

from runner.model import PortBinding

PORT = re.compile(
    r"^(?:(?:(?P<ip>[0-9.]+|\[[0-9a-fA-F:]+\]):)?(?P<host>\d*):)?(?P<container>\d+)(?:/(?P<proto>tcp|udp))?$"
)


def parse_port(text: str) -> PortBinding:
    """CONTAINER, HOST:CONTAINER or IP:HOST:CONTAINER, with an optional /tcp or /udp.
    Raises ValueError with a message for a person."""
    match = PORT.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a port mapping")
    host = match.group("host")
    numbers = [int(match.group("container"))] + ([int(host)] if host else [])
    if any(not 0 < number < 65536 for number in numbers):
        raise ValueError(f"'{text}' has a port outside 1-65535")
    return PortBinding(
        container_port=int(match.group("container")),
        protocol="udp" if match.group("proto") == "udp" else "tcp",
        host_ip=(match.group("ip") or "").strip("[]"),
        host_port=int(host) if host else None,
    )
