"""Who may talk to the server: loopback by default, else a token; a CSRF token on every form.

* Bound to a loopback address, requests must name a loopback host (`Host:` header), which
  stops DNS rebinding (a web page whose name resolves to 127.0.0.1).
* Bound to anything else, every request carries the token printed at start: as `?token=`
  (then kept in an HttpOnly cookie), the cookie, or an `X-Plane-Token` header.
* Every POST carries the server's CSRF token (a hidden form field), so another site's page
  cannot submit a form to this server.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket

__all__ = ["COOKIE", "HEADER", "Guard", "is_loopback", "new_token"]

COOKIE = "plane_token"
HEADER = "X-Plane-Token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True when `host` (a name or address) only ever means this machine."""
    h = host.strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        pass
    try:
        addrs = {str(a[4][0]) for a in socket.getaddrinfo(h, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


class Guard:
    """The checks of one server: `token` is None on loopback (then `Host:` is checked)."""

    def __init__(self, token: str | None, csrf: str | None = None) -> None:
        self.token = token
        self.csrf = csrf or new_token()
        self.port: int | None = None  # set once bound: the Host header names it
        self.names = {"127.0.0.1", "localhost", "::1"}  # plus the address bound to

    def host_ok(self, host_header: str | None) -> bool:
        if self.token is not None:
            return True
        if not host_header:
            return False
        if host_header.startswith("["):
            host, _, rest = host_header[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = host_header.partition(":")
        if self.port is not None and port and port != str(self.port):
            return False
        return host.strip("[]") in self.names

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())
