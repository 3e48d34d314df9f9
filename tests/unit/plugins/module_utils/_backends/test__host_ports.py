"""A published port that the host already uses is found, with the process that holds it."""

from __future__ import annotations

import os
import socket

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _host_ports


def test_a_listening_tcp_port_and_a_bound_udp_port_are_taken_and_named():
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("::1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        problems = _host_ports.taken([f"{tcp_port}:80", f"{udp_port}:53/udp", f"{udp_port}:53"])
        assert len(problems) == 2, problems  # the UDP port is free for TCP
        assert problems[0].startswith(f"host port {tcp_port}/tcp is already in use by ")
        assert f"(pid {os.getpid()})" in problems[0]
        assert problems[1].startswith(f"host port {udp_port}/udp is already in use")
    finally:
        tcp.close()
        udp.close()
    assert _host_ports.taken([f"{tcp_port}:80"]) == []
