"""Configuration of the daemon's HTTP server (the `http` section): the API, the web view and /metrics; off without it, loopback when on."""
from __future__ import annotations

import ipaddress
import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from bot.config.cluster import is_loopback
from bot.config.strict import Strict

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A DNS name or an IPv4/IPv6 address, as a Host header names it (without the port).
_HOST_NAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]+)$")
DEFAULT_HTTP_LISTEN = "127.0.0.1:8080"


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) as (host, port); ValueError naming what is wrong."""
    host, colon, port = listen.rpartition(":")
    if not colon or not host or not (port.isascii() and port.isdigit()):
        raise ValueError(f"{listen!r} is not host:port, such as {DEFAULT_HTTP_LISTEN}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 <= number <= 65_535:
        raise ValueError(f"{listen!r}: port {number} is not between 0 (any free port) and 65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{listen!r}: {host!r} is not an IP address (or localhost): the server listens on an address, not a name") from None
    return host, number


class HttpConfig(Strict):
    """The daemon's HTTP server: `/api/v1` (what `bot ctl` has), the live web view at `/`, Prometheus's `/metrics`.

    On loopback by default. Another address needs `allow_remote` and a token (and TLS in front: a
    reverse proxy; the server itself speaks plain HTTP). Every `/api/v1` route needs the bearer
    token unless `public_read` opens the reads; a change always needs it.
    """

    listen: str = Field(default=DEFAULT_HTTP_LISTEN, description="host:port to listen on (loopback unless allow_remote; port 0: any free one, logged)")
    token_env: str | None = Field(default=None, description="environment variable holding the API's bearer token (no token: no change can be made)")
    allow_remote: bool = Field(default=False, description="listen on a non-loopback address (needs token_env; put TLS in front)")
    public_read: bool = Field(default=False, description="let reads of /api/v1 through without the token (changes still need it)")
    max_body_bytes: int = Field(default=65_536, ge=1_024, le=16 * 1024 * 1024, description="largest request body taken (413 beyond)")
    allowed_hosts: tuple[str, ...] = Field(
        default=(), max_length=32,
        description="names (or addresses) clients reach the server by, besides the listen address: the Host header must be one "
        "(a DNS-rebinding guard); required with allow_remote on 0.0.0.0 or ::",
    )

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not a token")
        return value

    @model_validator(mode="after")
    def _remote_needs_token(self) -> Self:
        host, _ = split_listen(self.listen)
        if not is_loopback(host):
            if not self.allow_remote:
                raise ValueError(f"listen {self.listen}: not a loopback address; set allow_remote (with token_env, and TLS in front) to serve a network")
            if self.token_env is None:
                raise ValueError(f"listen {self.listen}: a server off loopback needs token_env (a bearer token for every /api/v1 route)")
            if host != "localhost" and ipaddress.ip_address(host).is_unspecified and not self.allowed_hosts:
                raise ValueError(f"listen {self.listen}: on every address, name in allowed_hosts the hosts clients reach it by (its Host header is checked)")
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _HOST_NAME.match(name):
                raise ValueError(f"{name!r} is not a host name or address (no port, no scheme)")
        return tuple(name.lower() for name in value)

    @property
    def host(self) -> str:
        """The address it listens on."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port it listens on."""
        return split_listen(self.listen)[1]
