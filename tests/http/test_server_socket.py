"""The HTTP server's connections: no Nagle (a response is never held back for the ACK of its headers) and a bounded kernel send buffer."""
from __future__ import annotations

import logging
import socket

import anyio
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.config.http import HttpConfig
from bot.http.server import SEND_BUFFER, HttpServer


async def _ok(scope: object, receive: object, send: object) -> None:
    assert callable(send)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_connection_has_no_nagle_and_the_send_buffer_asked() -> None:
    options: list[tuple[int, int]] = []

    async def main() -> None:
        server = HttpServer(HttpConfig(listen="127.0.0.1:0"), lambda port: _ok, logging.getLogger("tests.http.socket"))
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            assert server.url is not None
            async with await anyio.connect_tcp("127.0.0.1", int(server.url.rsplit(":", 1)[1])) as client:
                await client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                data = b""
                while not data.endswith(b"ok"):
                    data += await client.receive()
                assert server._server is not None
                (protocol,) = server._server.server_state.connections
                assert isinstance(protocol, H11Protocol)
                sock = protocol.transport.get_extra_info("socket")
                options.append((sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)))
            server.stop()

    anyio.run(main)
    # Linux doubles the send buffer asked for (its bookkeeping), and reports the doubled figure.
    assert options == [(1, 2 * SEND_BUFFER)]
