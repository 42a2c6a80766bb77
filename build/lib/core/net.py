"""Whether anything listens at a URL's address — a TCP connect, no request: a refused connect is told
at once, where HTTP clients retry it or wait out a timeout (a service still starting)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def refused(url: str, *, timeout: float = 0.5) -> bool:
    """True when the connection is refused (nothing listens); a connect that is slow or fails
    otherwise is not called refused — the caller's own client and timeouts say what it is."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
