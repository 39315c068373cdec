"""The cluster connection on a thread of its own, for code that cannot await: the replay's candle loop is synchronous."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bot.cluster.connection import ClusterConnection

T = TypeVar("T")


class ClusterLinkError(RuntimeError):
    """The link's thread could not connect in time, or is not running."""


class ClusterLink:
    """A ClusterConnection whose asyncio loop runs on a daemon thread; coroutines are submitted to it from any thread."""

    def __init__(self, connection: Callable[[], ClusterConnection], logger: logging.Logger) -> None:
        # Built on the link's own loop: the connection's asyncio objects belong to it.
        self._make = connection
        self._log = logger
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cluster-link", daemon=True)
        self._connection: ClusterConnection | None = None

    @property
    def connection(self) -> ClusterConnection:
        """The connection (on the link's loop: use it only inside submitted coroutines)."""
        if self._connection is None:
            raise ClusterLinkError("the cluster link is not connected")
        return self._connection

    def start(self, timeout: float) -> None:
        """Start the thread and connect; ClusterLinkError naming the url and the last problem when not connected within `timeout` s."""
        self._thread.start()

        async def connect() -> ClusterConnection:
            connection = self._make()
            self._connection = connection
            await connection.connect()
            return connection

        future = asyncio.run_coroutine_threadsafe(connect(), self._loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            connection = self._connection
            detail = connection.health.detail if connection is not None else "not started"
            self.close()
            raise ClusterLinkError(f"no connection to the cluster's server within {timeout:g} s ({detail})") from None
        except BaseException:
            self.close()
            raise

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coroutine` on the link's loop; its future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the link's loop and wait for its result."""
        return self.submit(coroutine).result(timeout)

    def close(self) -> None:
        """Close the connection, stop the loop and its thread. Safe to call twice."""
        if not self._thread.is_alive():
            return
        connection = self._connection
        if connection is not None:
            try:
                self.run(connection.close(), timeout=5)
            except Exception as exc:  # noqa: BLE001  closing: a connection that cannot flush is dropped with the loop
                self._log.debug("cluster: closing the link: %s", exc)
            self._connection = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
