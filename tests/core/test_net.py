"""`core.net.refused`: nothing listening is told at once; a listening address is not refused."""

from __future__ import annotations

import socket

from core.net import refused


def test_a_listening_address_is_not_refused_and_a_closed_one_is() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not refused(f"http://127.0.0.1:{port}/api")
    assert refused(f"http://127.0.0.1:{port}/api")  # closed: nothing listens any more
