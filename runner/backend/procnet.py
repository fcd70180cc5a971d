"""Reading which TCP ports listen from a Linux network namespace's /proc/net/tcp and tcp6.

Seen from inside the namespace, a port is ready only when the service itself listens: an engine's port
proxy on the host accepts connections earlier, and a container address may not be routable from here.
"""

from __future__ import annotations

LISTEN = "0A"  # the kernel's TCP_LISTEN state, in hex
# Prints both tables with whatever the image has: no shell needed, only `cat`.
READ_COMMAND = ("cat", "/proc/net/tcp", "/proc/net/tcp6")
# For a probe container from the runner's own image, which has python3 but no guarantee of `cat`.
PYTHON_READ_COMMAND = (
    "python3",
    "-c",
    "import sys\n"
    "for name in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
    "    try: sys.stdout.write(open(name).read())\n"
    "    except OSError: pass\n",
)


def listening_ports(table: str) -> frozenset[int]:
    """The local ports in LISTEN state in the text of /proc/net/tcp and /proc/net/tcp6 (concatenated)."""
    ports: set[int] = set()
    for line in table.splitlines():
        fields = line.split()
        # sl local_address rem_address st ...; the header line has "local_address" in the second field
        if len(fields) < 4 or ":" not in fields[1] or fields[3] != LISTEN:
            continue
        try:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return frozenset(ports)


def looks_like_tables(text: str) -> bool:
    """True when the output is the kernel's tables, not an error message from a missing tool."""
    return "local_address" in text
