"""Keep the cyclic garbage collector's full passes off the candle path of a long-running daemon."""
from __future__ import annotations

import gc


def settle() -> None:
    """Move every object alive now (config, orchestrators, history) out of the collected generations.

    With a thousand strategies loaded, a full collection walks every indicator, position and
    bound method and pauses the loop for tens of milliseconds at random candles; frozen objects
    are skipped. Freed by reference counting as usual; only their cycles wait for `release`.
    """
    gc.collect()
    gc.freeze()


def release() -> None:
    """After an unload: collect what is no longer referenced, frozen or not, then settle again."""
    gc.unfreeze()
    settle()
