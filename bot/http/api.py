"""`/api/v1`: the control commands over HTTP, each route one command of bot.control.commands (one implementation serves the socket and HTTP).

A route's body is the command's `result`, as `bot ctl --json` shows it inside its envelope; an error is
`{"error": {"code", "message"}}` with the socket's codes and an HTTP status that fits. Every route needs
the bearer token, reads too unless `public_read`; a change without a valid token is refused before its
body is read. A Host header that is not the listen address (or localhost) is refused: a page elsewhere
must not reach the API through DNS rebinding.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import orjson
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.config.cluster import is_loopback
from bot.config.http import HttpConfig
from bot.control.commands import Control, call_command
from bot.control.protocol import MAX_ARGS_DEPTH, ControlError, too_deep
from bot.daemon.read_slices import ReadSlices
from bot.http.events import EventStreamResponse, events_args
from bot.http.prometheus import DaemonMetrics

# HTTP status per error code (the socket's codes, and the HTTP layer's own).
STATUS = {
    "bad_json": 400,
    "bad_request": 400,
    "bad_args": 400,
    "invalid_config": 400,
    "unauthorized": 401,
    "forbidden_host": 403,
    "unknown_strategy": 404,
    "unknown_command": 404,
    "invalid_state": 409,
    "timeout": 408,
    "too_large": 413,
    "internal": 500,
}
# Strategy commands taken by POST /api/v1/strategies/{id}/{command}, the id put in their arguments.
STRATEGY_COMMANDS = ("activate", "deactivate", "set", "reload", "unload", "move")
Handler = Callable[[Request], Awaitable[Response]]
# Where StrategiesFirst keeps a request's ReadSlices in its scope's state.
_READ_SLICES = "bot.read_slices"
# Entries a reply's mapping must have before its encoding is sliced (sliced_json).
SLICED_ENTRIES = 64
# Seconds a request's body may take to arrive.
BODY_TIMEOUT_S = 10.0


class HttpError(Exception):
    """A request refused before (or instead of) a command: its code, message and HTTP status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def json_response(body: Any, status: int = 200) -> Response:
    """`body` as JSON (orjson: the same encoding as the control socket's replies)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def sliced_json(body: Any, slices: ReadSlices, depth: int = 2) -> bytes:
    """The bytes of orjson.dumps(`body`); a mapping of more than SLICED_ENTRIES entries, `depth` levels down at most, encoded an entry at a time, in slices of the loop.

    A reply over a thousand strategies is megabytes of JSON: encoded in one piece it would hold the
    strategies' candles up for milliseconds. A small reply never pauses.
    """
    if depth > 0 and isinstance(body, dict) and all(isinstance(key, str) for key in body):
        big = len(body) > SLICED_ENTRIES
        parts = []
        for key, value in body.items():
            if big:
                await slices.pause()
            parts.append(orjson.dumps(key) + b":" + await sliced_json(value, slices, depth - 1))
        return b"{" + b",".join(parts) + b"}"
    return orjson.dumps(body)


def error_response(code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The error body, with the status its code fits (a 401 names its Bearer challenge, as RFC 9110 and 6750 ask)."""
    response = json_response({"error": {"code": code, "message": message}}, STATUS.get(code, 400))
    if code == "unauthorized":
        response.headers["WWW-Authenticate"] = 'Bearer realm="bot"'
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class Api:
    """The `/api/v1` routes over a daemon's Control, guarded by the `http` config's host check and token."""

    def __init__(self, control: Control, config: HttpConfig, port: int, token: str | None, logger: logging.Logger) -> None:
        self._control = control
        self._config = config
        self._token = token
        self._log = logger
        # What a client that reached this server by its own address puts in Host (the port may be omitted only for 80):
        # on loopback any loopback name, else the listen address and the names allowed_hosts gives (a wildcard listen has no name).
        names = {config.host, *config.allowed_hosts}
        if is_loopback(config.host):
            names |= {"localhost", "127.0.0.1", "::1"}
        self._hosts = names | {f"[{name}]" for name in names if ":" in name}
        # The port it listens on (the one bound, for a listen port of 0).
        self._port = port

    def routes(self) -> list[Route]:
        """The routes, each bound to its command."""
        read, write = self._read, self._write
        return [
            Route("/api/v1/status", read(lambda _: ("status", {})), methods=["GET"]),
            Route("/api/v1/strategies", read(lambda _: ("strategies", {})), methods=["GET"]),
            Route("/api/v1/strategies", write(lambda _, body: ("load", body)), methods=["POST"]),
            Route("/api/v1/strategies/{id}", self._guarded(self._strategy, change=False), methods=["GET"]),
            Route("/api/v1/strategies/{id}/positions", read(lambda r: ("positions", {"id": r.path_params["id"]})), methods=["GET"]),
            Route("/api/v1/positions", read(lambda _: ("positions", {})), methods=["GET"]),
            Route("/api/v1/metrics", read(lambda _: ("metrics", {})), methods=["GET"]),
            Route("/api/v1/trades", read(lambda r: ("trades", query_args(r))), methods=["GET"]),
            Route("/api/v1/strategies/{id}/trades", read(lambda r: ("trades", query_args(r, r.path_params["id"]))), methods=["GET"]),
            Route("/api/v1/equity", read(lambda r: ("equity", query_args(r))), methods=["GET"]),
            Route("/api/v1/strategies/{id}/equity", read(lambda r: ("equity", query_args(r, r.path_params["id"]))), methods=["GET"]),
            Route("/api/v1/strategies/{id}/candles", read(lambda r: ("candles", query_args(r, r.path_params["id"]))), methods=["GET"]),
            Route("/api/v1/events", self._events, methods=["GET"]),
            Route("/api/v1/strategies/{id}/switch", write(lambda r, body: ("switch", {**body, "from": r.path_params["id"]})), methods=["POST"]),
            Route("/api/v1/strategies/{id}/{command}", self._guarded(self._strategy_command, change=True), methods=["POST"]),
        ]

    # -- guards ---------------------------------------------------------------------------------
    def _guarded(self, handler: Callable[[Request, Control], Awaitable[Any]], *, change: bool) -> Handler:
        async def endpoint(request: Request) -> Response:
            # One request: its command and its reply's encoding share one ReadSlices (one patience), begun by StrategiesFirst.
            control = self._control.for_request(request_slices(request))
            try:
                self.check(request, change=change)
                result = await handler(request, control)
                # A change's reply is small and the change is made: no reason to wait for the strategies.
                body = orjson.dumps(result) if change else await sliced_json(result, control.slices())
                return Response(body, media_type="application/json")
            except HttpError as exc:
                return error_response(exc.code, exc.message)
            except ControlError as exc:
                return error_response(exc.code, exc.message)
            except Exception:  # noqa: BLE001  a bug in a route must not take the daemon down
                self._log.exception("http: %s %s failed", request.method, request.url.path)
                # Its text may name files: the log has it, the client gets the fact.
                return error_response("internal", "the request failed inside the daemon (its log says why)")

        return endpoint

    def check(self, request: Request, *, change: bool) -> None:
        """HttpError unless the request names this server as its host and carries the token a change (or a closed read) needs."""
        self.check_host(request)
        if change or not self._config.public_read:
            self.check_token(request, change=change)

    def check_open_read(self, request: Request) -> None:
        """The check of what is open on loopback (the page, /metrics): the host, and the token off loopback unless public_read."""
        self.check_host(request)
        if not (self._config.public_read or is_loopback(self._config.host)):
            self.check_token(request, change=False)

    def check_host(self, request: Request) -> None:
        """HttpError unless the Host header is the listen address or localhost, on the listen port."""
        host = request.headers.get("host", "")
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not colon:
            name, port = host, ""
        if name.lower() not in self._hosts or (port and port != str(self._port)) or (not port and self._port != 80):
            raise HttpError("forbidden_host", f"Host {host!r} is not this server ({self._config.host}:{self._port} or localhost)")

    def check_token(self, request: Request, *, change: bool) -> None:
        """HttpError unless `Authorization: Bearer <token>` carries the configured token (compared in constant time)."""
        if self._token is None:
            why = "changes are refused" if change else "this read needs a token (or http.public_read)"
            raise HttpError("unauthorized", f"no API token is configured (http.token_env): {why}")
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token.encode()):
            raise HttpError("unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)")

    # -- routes ---------------------------------------------------------------------------------
    def _read(self, command: Callable[[Request], tuple[str, dict[str, Any]]]) -> Handler:
        async def run(request: Request, control: Control) -> Any:
            cmd, args = command(request)
            return await call_command(control, cmd, args)

        return self._guarded(run, change=False)

    def _write(self, command: Callable[[Request, dict[str, Any]], tuple[str, dict[str, Any]]]) -> Handler:
        async def run(request: Request, control: Control) -> Any:
            cmd, args = command(request, await self.body(request))
            return await call_command(control, cmd, args)

        return self._guarded(run, change=True)

    async def _events(self, request: Request) -> Response:
        """The live event stream (server-sent events), filtered by `strategy` and `type` as the socket's `events`."""
        try:
            self.check(request, change=False)
            args = events_args(self._control, request)
        except HttpError as exc:
            return error_response(exc.code, exc.message)
        except ControlError as exc:
            return error_response(exc.code, exc.message)
        return EventStreamResponse(self._control, args, self._control.daemon.loaded.bot.control.event_buffer)

    async def _strategy(self, request: Request, control: Control) -> Any:
        """A strategy's status row, its config and file."""
        return await call_command(control, "strategy", {"id": request.path_params["id"]})

    async def _strategy_command(self, request: Request, control: Control) -> Any:
        command = request.path_params["command"]
        if command not in STRATEGY_COMMANDS:
            raise ControlError("unknown_command", f"unknown strategy command {command!r} (known: {', '.join(STRATEGY_COMMANDS)}, switch)")
        body = await self.body(request)
        return await call_command(control, command, {**body, "id": request.path_params["id"]})

    async def body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object body ({} when empty); HttpError beyond max_body_bytes, ControlError when not a JSON object."""
        limit = self._config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError("too_large", f"request body of {declared} bytes: at most {limit} are taken (http.max_body_bytes)")
        data = bytearray()
        # A body sent slowly, or never finished, is not waited for beyond BODY_TIMEOUT_S.
        with anyio.move_on_after(BODY_TIMEOUT_S) as waited:
            async for chunk in request.stream():
                data += chunk
                if len(data) > limit:
                    raise HttpError("too_large", f"request body over {limit} bytes (http.max_body_bytes)")
        if waited.cancelled_caught:
            raise HttpError("timeout", f"the request body did not arrive within {BODY_TIMEOUT_S:g} s")
        if not data.strip():
            return {}
        try:
            body = orjson.loads(bytes(data))
        except orjson.JSONDecodeError as exc:
            raise ControlError("bad_json", f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ControlError("bad_request", "request body must be a JSON object")
        if too_deep(body):
            raise ControlError("bad_args", f"request body nested more than {MAX_ARGS_DEPTH} levels deep")
        return body


def query_args(request: Request, strategy_id: str | None = None) -> dict[str, Any]:
    """A read's query parameters as its command's arguments (the strategy id from the path); ControlError for one given twice, or an id in the query."""
    args: dict[str, Any] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise ControlError("bad_args", f"query parameter {name!r} given {len(values)} times")
        if name == "id":
            raise ControlError("bad_args", "a strategy is named in the path (/api/v1/strategies/{id}/...), not by an id parameter")
        args[name] = values[0]
    if strategy_id is not None:
        args["id"] = strategy_id
    return args


def metrics_route(api: Api, control: Control, metrics: DaemonMetrics) -> Route:
    """`GET /metrics`: the text exposition format 0.0.4 (what Prometheus 2 reads); open on loopback (or with public_read), the token needed elsewhere."""

    async def endpoint(request: Request) -> Response:
        try:
            api.check_open_read(request)
        except HttpError as exc:
            return error_response(exc.code, exc.message)
        # Read and written out on the loop (the daemon's state is the loop's), in slices between the strategies' candles.
        return Response(await metrics.scrape(control.for_request(request_slices(request))), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return Route("/metrics", endpoint, methods=["GET"])


class StrategiesFirst:
    """Each read (GET, HEAD) begins once no strategy has a candle queued or in hand: the first slice of the request's ReadSlices.

    Static files, the page and the journal's reads (a worker thread holding the GIL) as much as the
    long reads; a change is not held back.
    """

    def __init__(self, app: ASGIApp, control: Control) -> None:
        self._app = app
        self._control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            slices = ReadSlices(self._control.daemon.candle_work)
            scope.setdefault("state", {})[_READ_SLICES] = slices
            await slices.pause()
        await self._app(scope, receive, send)


def request_slices(request: Request) -> ReadSlices | None:
    """The request's ReadSlices, begun by StrategiesFirst (None for a change)."""
    slices: ReadSlices | None = request.scope.get("state", {}).get(_READ_SLICES)
    return slices


def api_app(control: Control, config: HttpConfig, port: int, token: str | None, logger: logging.Logger, metrics: DaemonMetrics) -> ASGIApp:
    """The Starlette application of `/api/v1` and `/metrics` on `port`; unknown routes and methods get JSON errors too."""
    api = Api(control, config, port, token, logger)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response("unknown_command", f"no route {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        response = json_response({"error": {"code": "bad_request", "message": f"{request.method} is not allowed on {request.url.path}"}}, 405)
        # The methods the route takes (Starlette's exception names them): a 405 carries Allow (RFC 9110 15.5.6).
        for name, value in (getattr(exc, "headers", None) or {}).items():
            response.headers[name] = value
        return response

    from bot.http.page import page_routes  # here: the page's module builds on this one's Api

    app = Starlette(routes=[*api.routes(), metrics_route(api, control, metrics), *page_routes(api)], exception_handlers={404: not_found, 405: not_allowed})
    # A trailing slash gets the JSON 404, not a redirect to whatever host the request named (before any check).
    app.router.redirect_slashes = False
    return StrategiesFirst(app, control)
