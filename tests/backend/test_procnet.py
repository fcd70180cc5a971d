"""Reading listening ports from the kernel's tables, as an exec or a probe container prints them."""

from __future__ import annotations

from runner.backend.procnet import listening_ports, looks_like_tables

# Captured from a container running Redis on 6379 (IPv4 and IPv6) with one client connected to it,
# and an established outgoing connection from port 8080 that must not count as listening.
TABLES = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1 1 0 100 0
   1: 0100007F:18EB 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000   100        0 2 1 0 20 4
   2: 0200000A:1F90 0300000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_only_ports_in_listen_state_count_over_both_tables() -> None:
    assert listening_ports(TABLES) == frozenset({6379, 5432})


def test_an_error_message_is_not_a_table() -> None:
    assert looks_like_tables(TABLES)
    assert not looks_like_tables('OCI runtime exec failed: exec: "cat": executable file not found in $PATH')
    assert listening_ports("cat: /proc/net/tcp6: No such file or directory") == frozenset()
