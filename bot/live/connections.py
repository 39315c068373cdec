"""Which ccxt.pro websocket a watch call rides on, and when that websocket is open."""
from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakKeyDictionary


class WatchConnections:
    """Records the websocket client each task asks an exchange for, so a watch's connection can be awaited.

    A ccxt.pro watch call asks `exchange.client(url)` for its connection in its first step and
    sends its subscription as soon as that connection opens, but the future it returns resolves
    only with the first message. Knowing the client lets the feed act once the subscription is
    on its way, however quiet the stream. Installed on this exchange instance only.
    """

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange
        self._by_task: WeakKeyDictionary[asyncio.Task[Any], Any] = WeakKeyDictionary()
        # Set, then replaced, each time a task asks for a client: waiters need not poll.
        self._asked = asyncio.Event()
        make_client = exchange.client

        def client(url: str) -> Any:
            connection = make_client(url)
            try:
                task = asyncio.current_task()
            except RuntimeError:  # called outside the event loop: no watch to tell about
                task = None
            if task is not None:
                self._by_task[task] = connection
                self._asked.set()
                self._asked = asyncio.Event()
            return connection

        exchange.client = client

    def client_of(self, task: asyncio.Task[Any]) -> Any | None:
        """The websocket client `task` last asked the exchange for, if any."""
        return self._by_task.get(task)

    def is_current(self, connection: Any) -> bool:
        """Whether `connection` is still the exchange's client for its url.

        ccxt drops a client whose connection closed or failed, and its next watch call quietly
        opens a new one: a cut noticed only that way would otherwise go unnoticed.
        """
        clients = getattr(self._exchange, "clients", None) or {}
        return clients.get(getattr(connection, "url", None)) is connection

    async def opened(self, task: asyncio.Task[Any]) -> bool:
        """Wait until the websocket `task` (a running watch call) asked for is open, or `task` ends; whether it opened."""
        while task not in self._by_task and not task.done():
            asked = asyncio.ensure_future(self._asked.wait())
            try:
                await asyncio.wait((task, asked), return_when=asyncio.FIRST_COMPLETED)
            finally:
                asked.cancel()
        connection = self._by_task.get(task)
        connected = getattr(connection, "connected", None)
        if not isinstance(connected, asyncio.Future):
            return False
        if not connected.done() and not task.done():
            # A failed dial never resolves `connected`; the watch then fails, which ends this wait.
            await asyncio.wait((task, connected), return_when=asyncio.FIRST_COMPLETED)
        return connected.done() and not connected.cancelled()
