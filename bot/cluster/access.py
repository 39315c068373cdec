"""What a process needs to be let onto the cluster's server: credentials from the environment, a TLS context from files."""
from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.config.cluster import ClusterConfig, ClusterTlsConfig
from bot.errors import BotError


class ClusterConnectError(BotError):
    """The cluster's server cannot be used as configured (credentials, certificates, settings): the operator must fix them."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A NATS user and password read from the environment, and the names of the variables they came from (for messages)."""

    user: str
    password: str = field(repr=False)
    source: str


def read_credentials(config: ClusterConfig, environ: Mapping[str, str]) -> Credentials | None:
    """The credentials the config names (None when it names none); ClusterConnectError naming the variable that is unset or empty."""
    if config.user_env is None or config.password_env is None:
        return None
    values = {}
    for setting, variable in (("user_env", config.user_env), ("password_env", config.password_env)):
        value = environ.get(variable, "")
        if not value:
            raise ClusterConnectError(f"cluster.{setting}: the environment variable {variable} is not set or empty")
        values[setting] = value
    return Credentials(values["user_env"], values["password_env"], f"{config.user_env}/{config.password_env}")


def _file(base_dir: Path, setting: str, name: str) -> Path:
    path = base_dir / name
    if not path.is_file():
        raise ClusterConnectError(f"cluster.tls.{setting}: {path} is not a file")
    return path


def tls_context(config: ClusterTlsConfig, base_dir: Path) -> ssl.SSLContext:
    """A client TLS context verifying the server (by `ca_file`, else the system's CAs) and presenting our certificate if configured.

    Paths are relative to `base_dir` (config.json's folder); a missing or unreadable file is a
    ClusterConnectError naming its setting.
    """
    ca = _file(base_dir, "ca_file", config.ca_file) if config.ca_file is not None else None
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (ssl.SSLError, OSError) as exc:
        raise ClusterConnectError(f"cluster.tls.ca_file: {ca} holds no usable CA certificate ({exc})") from None
    if config.cert_file is not None and config.key_file is not None:
        cert = _file(base_dir, "cert_file", config.cert_file)
        key = _file(base_dir, "key_file", config.key_file)
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise ClusterConnectError(f"cluster.tls.cert_file/key_file: {cert} and {key} are not a certificate and its key ({exc})") from None
    return context
