"""Keeps one malformed websocket message from killing a ccxt.pro connection: report it and skip it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (the message as received, the exception it caused)
MalformedCallback = Callable[[Any, BaseException], None]


def install_message_guard(exchange: Any, on_malformed: MalformedCallback) -> None:
    """Wrap the exchange's message handling so an exception from one message is reported, not fatal.

    Without this, ccxt.pro raises inside the callback that schedules the next receive, and the
    connection silently stops delivering (until our stale-feed watchdog notices). Two places:
    JSON decoding in each websocket client, and the exchange's dispatch of decoded messages.
    Installed on this instance only; nothing global changes.
    """
    handle_message = exchange.handle_message

    def guarded_handle_message(client: Any, message: Any) -> None:
        try:
            handle_message(client, message)
        except Exception as exc:  # noqa: BLE001 - any error from one message is that message's fault
            on_malformed(message, exc)

    exchange.handle_message = guarded_handle_message
    make_client = exchange.client

    def guarded_client(url: str) -> Any:
        known = url in (exchange.clients or {})
        client = make_client(url)
        if not known:
            decode = client.handle_text_or_binary_message

            def guarded_decode(data: Any) -> None:
                try:
                    decode(data)
                except ValueError as exc:  # JSON that does not parse
                    on_malformed(data, exc)

            client.handle_text_or_binary_message = guarded_decode
        return client

    exchange.client = guarded_client
