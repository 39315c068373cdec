"""The fake's kline websockets (spot, USDT-M and COIN-M futures): subscriptions, and pushes of recorded candles as time advances."""
from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from tests.fake_exchange.markets import USDM, VENUES, Venue

if TYPE_CHECKING:
    from tests.fake_exchange.markets import FakeMarket
    from tests.fake_exchange.server import FakeBinance

# A text frame that is not JSON, and a kline whose prices are not numbers.
BROKEN_JSON = '{"e":"kline","E":17,"s":'


@dataclass(eq=False, slots=True)
class Connection:
    """One accepted websocket, the venue whose streams it carries, and the streams it subscribed to."""

    ws: web.WebSocketResponse
    venue: Venue
    combined: bool
    streams: set[str] = field(default_factory=set)


def kline_message(market: FakeMarket, index: int, step: int, event_ms: int) -> dict[str, object]:
    """Binance's `<symbol>@kline_<interval>` payload for push `step` (of updates_per_candle) of a candle."""
    series = market.series
    updates = market.fake.updates_per_candle
    final = step >= updates
    o, h, lo, c, recorded = series.values[index] if final else series.partial(index, step, updates)
    v, q = market.volumes(recorded, c)
    ts = series.stamps[index]
    return {
        "e": "kline",
        "E": event_ms,
        "s": market.id,
        "k": {
            "t": ts, "T": ts + series.tf_ms - 1, "s": market.id, "i": series.timeframe,
            "f": 0, "L": 0, "o": o, "c": c, "h": h, "l": lo, "v": v, "n": 0, "x": final,
            "q": q, "V": "0", "Q": "0", "B": "0",
        },
    }


def bad_kline(market: FakeMarket, index: int) -> str:
    """A well-formed JSON kline for candle `index` whose prices are garbage."""
    message = kline_message(market, index, market.fake.updates_per_candle, market.series.stamps[index])
    message["k"]["o"] = message["k"]["h"] = "not-a-number"  # type: ignore[index]
    return json.dumps(message)


class StreamServer:
    """Accepts websockets, answers SUBSCRIBE, and pushes klines, each venue on its own endpoints.

    Spot: /stream/ws, /stream/ws/<n> and /stream/stream (combined). USDT-M futures: the same
    under /fstream, and under /fstream/market (Binance's USDT-M routing for kline streams).
    COIN-M futures: the same under /dstream.
    A connection only ever carries its venue's markets: BTCUSDT spot and BTCUSDT perpetual
    share a stream name, not a websocket.
    """

    def __init__(self, fake: FakeBinance) -> None:
        self._fake = fake
        self.connections: list[Connection] = []
        self.subscriptions = 0
        self.connects = 0
        # Accepted websockets per venue name (spot, usdm, coinm).
        self.connects_by_venue: dict[str, int] = {}
        # Set (and replaced) whenever a subscription is made, so waiters need not poll.
        self._subscribed = asyncio.Event()
        # Per market: (candle index, push number) of the next push.
        self._cursor: dict[str, tuple[int, int]] = {}
        # Per market: a closing push held back by the `late` fault.
        self._held: dict[str, str] = {}

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes of every venue's raw and combined stream endpoints."""
        routes: list[web.RouteDef] = []
        for venue in VENUES:
            roots = [f"/{venue.ws_host}", *([f"/{venue.ws_host}/market"] if venue is USDM else [])]
            handler = self._handler(venue)
            for root in roots:
                routes += [web.get(f"{root}/ws", handler), web.get(f"{root}/ws/{{tail:.*}}", handler), web.get(f"{root}/stream", handler)]
        return routes

    async def wait_subscribed(self, count: int, timeout: float) -> None:
        """Wait until `count` stream subscriptions have been made in total (since start)."""
        try:
            async with asyncio.timeout(timeout):
                while self.subscriptions < count:
                    await self._subscribed.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.subscriptions} subscriptions, expected {count}") from None

    def _handler(self, venue: Venue) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, venue)

        return handle

    async def handle(self, request: web.Request, venue: Venue) -> web.StreamResponse:
        """Serve one websocket of `venue` until it closes."""
        faults = self._fake.faults
        if faults.reject_ws > 0:
            faults.reject_ws -= 1
            return web.Response(status=503, text="Service Unavailable")
        if faults.handshakes is not None:
            await faults.handshakes.wait()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connects += 1
        self.connects_by_venue[venue.name] = self.connects_by_venue.get(venue.name, 0) + 1
        conn = Connection(ws, venue, combined=request.path.endswith("/stream"))
        tail = request.match_info.get("tail", "")
        if "@" in tail:
            conn.streams.add(tail)
        if "streams" in request.query:
            conn.streams.update(request.query["streams"].split("/"))
        self.connections.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._command(conn, msg.data)
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
        return ws

    async def _command(self, conn: Connection, text: str) -> None:
        try:
            request = json.loads(text)
            method, params, rid = request["method"], request.get("params", []), request.get("id")
        except (ValueError, KeyError, TypeError):
            await conn.ws.send_str(json.dumps({"code": 2, "msg": "Invalid request"}))
            return
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            self.subscriptions += len(params)
            self._subscribed.set()
            self._subscribed = asyncio.Event()
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
        await conn.ws.send_str(json.dumps({"result": None, "id": rid}))

    async def disconnect_all(self) -> None:
        """Close every websocket, as a server restart or a network cut would."""
        for conn in list(self.connections):
            self.connections.remove(conn)
            await conn.ws.close(code=1001, message=b"going away")

    async def send(self, market: FakeMarket, text: str) -> None:
        """Push one frame to every connection of the market's venue subscribed to its stream."""
        stream = market.stream
        for conn in list(self.connections):
            if conn.venue is market.venue and stream in conn.streams and not conn.ws.closed:
                frame = f'{{"stream":"{stream}","data":{text}}}' if conn.combined else text
                try:
                    await conn.ws.send_str(frame)
                except ConnectionError:
                    pass

    def _pushes(self, market: FakeMarket) -> Iterator[tuple[int, str, int, int]]:
        """(event time, symbol, candle index, push number) of the market's pushes after its cursor."""
        series = market.series
        updates = self._fake.updates_per_candle
        index, step = self._cursor.get(market.symbol) or (series.index_at_or_after(self._fake.now_ms), 1)
        while index < len(series):
            ts = series.stamps[index]
            for push in range(step, updates + 1):
                yield ts + push * series.tf_ms // updates, market.symbol, index, push
            index, step = index + 1, 1

    async def advance(self, until_ms: int, pause: float) -> None:
        """Push every update due up to `until_ms`, moving the fake's clock along, with scheduled faults."""
        faults = self._fake.faults
        markets = self._fake.markets
        merged = heapq.merge(*(self._pushes(m) for m in markets.values()))
        for event_ms, symbol, index, step in merged:
            if event_ms > until_ms:
                break
            market = markets[symbol]
            self._fake.now_ms = event_ms
            self._cursor[symbol] = (index + 1, 1) if step == market.fake.updates_per_candle else (index, step + 1)
            self._fake.on_push(market, index, step)
            if faults.disconnect.get(index) == step - 1:
                del faults.disconnect[index]
                await self.disconnect_all()
            if index in faults.skip or symbol in faults.muted:
                continue
            final = step == self._fake.updates_per_candle
            if final:
                for text in faults.malformed.pop(index, []):
                    await self.send(market, text)
            text = json.dumps(kline_message(market, index, step, event_ms))
            if final and index in faults.late:
                # Held back: sent after the next candle's first push, out of order.
                self._held[symbol] = text
            else:
                await self.send(market, text)
            if final and index in faults.duplicate:
                await self.send(market, text)
            if step == 1 and symbol in self._held:
                await self.send(market, self._held.pop(symbol))
            await asyncio.sleep(pause)
        self._fake.now_ms = max(self._fake.now_ms, until_ms)
