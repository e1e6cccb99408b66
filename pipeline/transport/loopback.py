"""Whether a host is this machine: plain http is allowed there (the sandbox, emulators), and
nowhere else unless the user says so."""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=256)
def is_loopback_host(host: str | None) -> bool:
    """Remembered per host (bounded): every presigned URL is checked, nearly all name the same one."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
