"""Configuration of the NATS server the hub and workers share (the `cluster` section): where, as whom, over what TLS."""
from __future__ import annotations

import ipaddress
import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.config.strict import Strict

DEFAULT_CLUSTER_URL = "nats://127.0.0.1:4222"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A NATS subject token: the name goes into stream, subject and bucket names.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SCHEMES = ("nats", "tls")


def _field_error(model: Strict, field: str, reason: str) -> ValidationError:
    """A cross-field problem reported at `field` (a plain ValueError in a model validator names only the section)."""
    details = InitErrorDetails(type=PydanticCustomError("cluster", reason), loc=(field,), input=getattr(model, field))
    return ValidationError.from_exception_data(type(model).__name__, [details])


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClusterTlsConfig(Strict):
    """TLS to the NATS server: the CA that signed its certificate, and this process's own certificate when the server asks for one.

    Paths are relative to config.json's folder. Without `ca_file` the system's CAs verify the server.
    """

    ca_file: str | None = Field(default=None, min_length=1, description="PEM file of the CA that signed the server's certificate")
    cert_file: str | None = Field(default=None, min_length=1, description="PEM client certificate, for a server that verifies clients (--tlsverify)")
    key_file: str | None = Field(default=None, min_length=1, description="PEM key of cert_file")
    server_name: str | None = Field(default=None, min_length=1, description="the name the server's certificate must carry, when not the url's host")

    @model_validator(mode="after")
    def _cert_with_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            missing, given = ("key_file", "cert_file") if self.key_file is None else ("cert_file", "key_file")
            raise _field_error(self, missing, f"required with {given}: a client certificate needs its key")
        return self


class ClusterConfig(Strict):
    """The NATS JetStream server of a cluster of hub and workers: its url, this cluster's name, credentials and TLS.

    Credentials never appear in a config file: only the names of the environment variables that
    hold them. The default is a server on this machine; one elsewhere needs TLS and credentials
    (or a client certificate).
    """

    url: str = Field(default=DEFAULT_CLUSTER_URL, description="nats://host:port, or tls://host:port with the tls settings")
    name: str = Field(default="main", description="this cluster's name on the server (letters, digits, '_', '-'): several may share one server")
    user_env: str | None = Field(default=None, description="environment variable holding the NATS user name")
    password_env: str | None = Field(default=None, description="environment variable holding the NATS password")
    tls: ClusterTlsConfig | None = None
    lease_ttl_s: float = Field(
        default=10.0, ge=2, le=600, description="seconds a worker keeps a strategy without renewing its lease (the server expires keys to the second)"
    )
    placement: Literal["hub", "workers"] = Field(
        default="hub",
        description="where `bot run`'s strategies decide: hub (in its own process, the cluster only publishes candles and events) "
        "or workers (each strategy's mind on a `bot worker`, its book on the hub)",
    )
    decision_timeout_s: float = Field(
        default=60.0, ge=5, le=3600,
        description="placement workers: seconds a strategy's decision may take (a worker gone, the server down, a slow strategy) before "
        "its candles go to its positions only (stops, take-profits, trailing) until a mind can decide again; above lease_ttl_s + 5 "
        "so that a worker's failover is waited for",
    )
    reconnect_min_s: float = Field(default=0.25, gt=0, le=60, description="first delay before reconnecting to a lost server; doubles up to reconnect_max_s")
    reconnect_max_s: float = Field(default=5.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        # First, and on any '@' (urlsplit misses userinfo in a malformed url; a token has no ':'):
        # the messages below quote the url, so none of them may ever see a secret.
        if "@" in value:
            raise ValueError("credentials never go in the url: name their environment variables in user_env and password_env")
        parts = urlsplit(value)
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"{value!r} is not a NATS url: nats://host:port or tls://host:port")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{value!r} has no valid port") from None
        if not parts.hostname or port is None:
            raise ValueError(f"{value!r} needs a host and a port, such as {DEFAULT_CLUSTER_URL}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{value!r}: a NATS url is scheme://host:port, nothing after")
        return value

    @field_validator("name")
    @classmethod
    def _name_token(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-32 letters, digits, '_' or '-' (it names subjects and streams on the server)")
        return value

    @field_validator("user_env", "password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not a credential")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.user_env is None) != (self.password_env is None):
            missing, given = ("password_env", "user_env") if self.password_env is None else ("user_env", "password_env")
            raise _field_error(self, missing, f"required with {given}: the server takes a user name and a password")
        if urlsplit(self.url).scheme == "tls" and self.tls is None:
            raise _field_error(self, "tls", "required by a tls:// url: at least ca_file, or {} to verify the server with the system's CAs")
        if not is_loopback(self.host):
            # Off this machine the link carries orders and strategy state: encrypted, and only for a known client.
            if self.tls is None:
                raise _field_error(self, "tls", f"required for a server off this machine ({self.host}): the link is encrypted (ca_file, and cert_file/key_file if the server verifies clients)")
            if self.user_env is None and self.tls.cert_file is None:
                raise _field_error(self, "user_env", f"a server off this machine ({self.host}) needs credentials: user_env and password_env, or tls.cert_file")
        if self.decision_timeout_s <= self.lease_ttl_s + 5:
            raise _field_error(self, "decision_timeout_s", f"must be above lease_ttl_s + 5 ({self.lease_ttl_s + 5:g}): a worker's failover takes up to that")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise _field_error(self, "reconnect_max_s", f"must be at least reconnect_min_s ({self.reconnect_min_s})")
        return self

    @property
    def host(self) -> str:
        """The server's host name or address."""
        return urlsplit(self.url).hostname or ""
