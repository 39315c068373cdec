"""The kernel: the one place a bot is assembled, for a replay, a paper daemon or a live one."""
from bot.kernel.assembly import (
    Bot,
    DeliveryFactory,
    JournalHook,
    Mode,
    Seams,
    build_bot,
    build_services,
)

__all__ = ["Bot", "DeliveryFactory", "JournalHook", "Mode", "Seams", "build_bot", "build_services"]
