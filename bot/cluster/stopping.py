"""Work that a stop cuts short: a worker's start-up steps (connecting, opening its bucket) end when SIGTERM comes first."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


async def unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run `work` until done (True; what it raises propagates) or until `stop` is set first (False: it is cancelled)."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopped.cancel()
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False
