"""The HTTP server's connections: no Nagle (a response is never held back for the ACK of its headers) and a bounded kernel send buffer."""
from __future__ import annotations

import logging
import socket

import anyio
from starlette.types import Receive, Scope, Send
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


def test_a_pipelined_response_is_not_reset_for_the_one_before_it() -> None:
    # The reset of a response its app gave up on looks at that request's own cycle: the connection's newest
    # is the next, pipelined, request's once the first response is complete.
    first_returns = anyio.Event()
    second_started = anyio.Event()
    release = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/first":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            await second_started.wait()  # work after the response is complete (a stream's task group exiting)
            first_returns.set()
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"chunk\n", "more_body": True})
        second_started.set()
        await release.wait()
        await send({"type": "http.response.body", "body": b"end\n"})

    received: list[bytes] = []

    async def main() -> None:
        server = HttpServer(HttpConfig(listen="127.0.0.1:0"), lambda port: app, logging.getLogger("tests.http.socket"))
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            assert server.url is not None
            async with await anyio.connect_tcp("127.0.0.1", int(server.url.rsplit(":", 1)[1])) as client:
                await client.send(b"GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /second HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                # The first app has returned (and the check after it has run, in the same step) while the second streams.
                await first_returns.wait()
                release.set()
                data = b""
                with anyio.fail_after(30):  # a safety net: the reply ends long before
                    while not data.endswith(b"0\r\n\r\n"):
                        data += await client.receive()
                received.append(data)
            server.stop()

    anyio.run(main)
    assert received and received[0].count(b"chunk\n") == 1 and received[0].endswith(b"end\n\r\n0\r\n\r\n")
