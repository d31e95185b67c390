"""Free local ports for the processes the demo, the tests and the benchmarks start.

A port picked by binding port 0 is one of the OS's ephemeral ports, and the OS may hand it to
the next socket that binds port 0 (a worker's recall process does, as may Milvus Lite or a
client) before the process it was picked for binds it: a worker then failed to start with
"address already in use" (once in a clean-clone CI run). These are picked below the ephemeral
range, where no bind to port 0 and no outgoing connection ever lands, and never twice in one
process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12_000  # how far below the ephemeral range to look
_given: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The OS's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        low, high = (int(x) for x in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_ports(count: int, exclude: set[int] | None = None) -> list[int]:
    """``count`` distinct local ports nothing listens on, below the ephemeral range."""
    low, _ = ephemeral_range()
    lo, hi = max(1025, low - _SPAN), low - 1
    if hi - lo < 100:  # an unusual range that leaves no room below it: the OS picks
        return _os_picked(count, exclude or set())
    rng = random.SystemRandom()
    ports: list[int] = []
    avoid = _given | set(exclude or ())
    for _ in range(count * 200):
        if len(ports) == count:
            break
        port = rng.randint(lo, hi)
        if port in avoid or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        ports.append(port)
    if len(ports) < count:
        ports += _os_picked(count - len(ports), avoid | set(ports))
    _given.update(ports)
    return ports


def free_port() -> int:
    return free_ports(1)[0]


def _os_picked(count: int, exclude: set[int]) -> list[int]:
    """Distinct ports the OS picks (kept bound until all are picked so they differ)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in exclude:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports
