"""Ports for the processes the tests start: below the OS's ephemeral range (so no socket that
binds port 0, such as a worker's recall process, can take one first), distinct, never handed
out twice, and free."""

from __future__ import annotations

import socket

from infra.ports import HOST, ephemeral_range, free_port, free_ports


def test_ports_are_below_the_ephemeral_range_distinct_and_free() -> None:
    low, high = ephemeral_range()
    assert 1024 < low <= high
    ports = free_ports(20, exclude={low - 1})
    assert len(set(ports)) == 20 and low - 1 not in ports
    assert all(1024 < p < low for p in ports)
    for p in ports:
        with socket.socket() as s:
            s.bind((HOST, p))  # nothing holds it
    again = free_ports(20) + [free_port()]
    assert not set(again) & set(ports)  # never handed out twice


def test_a_port_in_use_is_never_given() -> None:
    low, _ = ephemeral_range()
    held = []
    try:
        for p in range(low - 300, low):  # hold part of the range: others are picked
            s = socket.socket()
            try:
                s.bind((HOST, p))
                s.listen()
                held.append(s)
            except OSError:
                s.close()
        taken = {s.getsockname()[1] for s in held}
        assert not set(free_ports(30)) & taken
    finally:
        for s in held:
            s.close()
