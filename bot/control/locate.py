"""Where `bot ctl` finds the daemon: --socket, $BOT_SOCKET, the config's control.socket, ./config.json's (--config against a different $BOT_SOCKET: refused)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import orjson

from bot.config.defaults import DEFAULT_CONTROL_SOCKET, MAX_CONFIG_BYTES
from bot.control.ctl_args import SOCKET_ENV
from bot.errors import BotError

DEFAULT_CONFIG: Final[str] = "config.json"
HOW_TO_POINT: Final[str] = (
    f"no daemon to talk to: give --socket PATH or --config FILE, set {SOCKET_ENV}, or run bot ctl in the folder of the daemon's {DEFAULT_CONFIG}"
)


class NoSocket(BotError):
    """`bot ctl` cannot tell where the daemon's control socket is (a usage problem, exit 2)."""


def find_socket(socket: Path | None, config: Path | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """The control socket to use, in this order: `socket`, $BOT_SOCKET, `config`'s control.socket, ./config.json's.

    An explicit `config` and $BOT_SOCKET that name different sockets are refused (NoSocket,
    naming both) rather than one silently winning: with two daemons running, `shutdown` or
    `unload --close` must never reach the other one. Only the `control.socket` field of the
    config is read (no strategy module is imported, so `bot ctl` stays fast and never runs
    strategy code); relative paths are relative to the config's folder, as the daemon resolves
    them, and $BOT_SOCKET's to `cwd`.
    """
    if socket is not None:
        return socket
    from_env = environ.get(SOCKET_ENV)
    if from_env:
        env_socket = Path(from_env)
        if config is None:
            return env_socket
        named = _socket_of(config)
        if _same_file(cwd / env_socket, named):
            return env_socket
        raise NoSocket(
            f"--config {config} names the control socket {named} but {SOCKET_ENV} names {cwd / env_socket}: "
            f"give only one of them (or --socket PATH)"
        )
    if config is not None:
        return _socket_of(config)
    default = cwd / DEFAULT_CONFIG
    if default.is_file():
        return _socket_of(default)
    raise NoSocket(HOW_TO_POINT)


def _same_file(one: Path, other: Path) -> bool:
    """Whether two socket paths name the same file: the same resolved path, or (both existing) the same inode."""
    if one.resolve() == other.resolve():
        return True
    try:
        return one.samefile(other)
    except OSError:
        return False


def _socket_of(config: Path) -> Path:
    """The socket path a config names (the control config's default when it names none)."""
    try:
        if not config.is_file():
            raise NoSocket(f"{config}: not found (--config names the daemon's config.json)")
        if config.stat().st_size > MAX_CONFIG_BYTES:
            raise NoSocket(f"{config}: larger than {MAX_CONFIG_BYTES} bytes: not a configuration file")
        data = orjson.loads(config.read_bytes())
    except OSError as exc:
        raise NoSocket(f"{config}: cannot read file: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise NoSocket(f"{config}: not valid JSON: {exc}") from None
    control = data.get("control", {}) if isinstance(data, dict) else None
    if not isinstance(control, dict):
        raise NoSocket(f"{config}: control: must be an object with the control socket's path (control.socket)")
    socket = control.get("socket", DEFAULT_CONTROL_SOCKET)
    if not isinstance(socket, str) or not socket:
        raise NoSocket(f"{config}: control.socket: must be the socket's path, a non-empty string")
    return (config.parent / socket).resolve()
