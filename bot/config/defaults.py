"""Constants read without the config models (pydantic), so `bot ctl` can find the daemon quickly."""
from __future__ import annotations

from typing import Final

# A config or strategy file larger than this is refused unread: not a configuration file.
MAX_CONFIG_BYTES: Final = 1_048_576
# control.socket when a config names none, relative to the config's folder.
DEFAULT_CONTROL_SOCKET: Final = "run/bot.sock"
