"""The commands that read what a strategy did: its closed trades (paged), its equity over time, its candles with its indicators.

`trades` and `equity` read the journal in a worker thread (their handlers are coroutines, awaited by
the socket and HTTP alike); `candles` reads the hub's memory.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BeforeValidator, Field

from bot.config.currency import quote_currency
from bot.control.protocol import CommandArgs, ControlError
from bot.daemon.chart_series import MAX_CANDLES
from bot.daemon.equity_curves import MAX_POINTS
from bot.daemon.read_slices import each_strategy
from bot.errors import UnknownStrategyError
from bot.journal import JournalError
from bot.ohlcv import timeframe_ms

if TYPE_CHECKING:
    from bot.control.commands import Control
    from bot.daemon.state import DaemonState
    from bot.strategy.orchestrator import TradingOrchestrator

_ID = 128
# Trades a page holds at most.
MAX_TRADES: Final[int] = 1_000
# SQLite's integers: a trade number beyond them names no trade (and SQLite would not take it).
_MAX_NUMBER: Final[int] = 2**63 - 1


def _not_bool(value: object) -> object:
    # JSON's true would pass for 1: a count or a trade number is a number.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]


class TradesArgs(CommandArgs):
    """trades: closed trades newest first, of one strategy or all, `limit` a page (0: the counts only); `before` the `next` of the page before."""

    id: str | None = Field(default=None, min_length=1, max_length=_ID)
    limit: Count = Field(default=100, ge=0, le=MAX_TRADES)
    before: Count | None = Field(default=None, ge=1, le=_MAX_NUMBER)


class EquityArgs(CommandArgs):
    """equity: the equity curve of one strategy or all, each at most `points` long."""

    id: str | None = Field(default=None, min_length=1, max_length=_ID)
    points: Count = Field(default=1_000, ge=2, le=MAX_POINTS)


class CandlesArgs(CommandArgs):
    """candles: a strategy's stream (its trading stream unless named) with its indicators."""

    id: str = Field(min_length=1, max_length=_ID)
    symbol: str | None = Field(default=None, min_length=1, max_length=64)
    timeframe: str | None = Field(default=None, min_length=1, max_length=8)
    limit: Count = Field(default=500, ge=1, le=MAX_CANDLES)


def _loaded(daemon: DaemonState, strategy_id: str) -> bool:
    try:
        daemon.manager.get(strategy_id)
    except UnknownStrategyError:
        return False
    return True


def _ids(control: Control, strategy_id: str | None) -> list[str]:
    manager = control.daemon.manager
    if strategy_id is None:
        return manager.ids()
    manager.get(strategy_id)  # UnknownStrategyError: the command's unknown_strategy
    return [strategy_id]


async def trades(control: Control, args: TradesArgs) -> dict[str, Any]:
    """A page of closed trades, newest first, with `next` to ask for the page after it; every strategy's count, all and today (UTC, by the daemon's clock)."""
    daemon = control.daemon
    ids = _ids(control, args.id)
    reader, counter = daemon.history, daemon.trade_counts
    if reader is None or counter is None:
        return {"trades": [], "next": None, "counts": {sid: {"total": 0, "today": 0} for sid in ids}}
    try:
        # One more than asked says whether there is a page after this one.
        rows = await reader.trades(ids, args.limit + 1, args.before) if args.limit else []
        if args.id is None:
            # Back from the journal's thread: a round may have begun meanwhile. (One strategy's reply: the socket's `bot ctl trades --id` never waits.)
            await control.slices().pause()
        counts = await counter.counts(reader, ids, daemon.services.clock.now_ms())
    except JournalError as exc:
        raise ControlError("internal", f"the journal cannot be read: {exc}") from None
    if args.id is None:
        await control.slices().pause()  # the counts may have waited for their first load
    page = rows[: args.limit]
    for row in page:
        row["currency"] = quote_currency(row["symbol"]) if isinstance(row["symbol"], str) else None
    more = len(rows) > args.limit and bool(page)
    return {
        "trades": page,
        "next": page[-1]["n"] if more else None,
        "counts": {sid: {"total": total, "today": today} for sid, (total, today) in counts.items()},
    }


async def equity(control: Control, args: EquityArgs) -> dict[str, Any]:
    """Each strategy's equity curve, oldest first: its journalled end-of-day equity before this run, then its equity at the candles it handled (thinned as it grows)."""
    daemon = control.daemon
    curves = daemon.equity_curves
    if curves is None:
        raise ControlError("invalid_state", "this daemon keeps no equity curves")
    ids = _ids(control, args.id)
    unseeded = [sid for sid in ids if sid not in curves.seeded]
    if unseeded and daemon.history is not None:
        try:
            days = await daemon.history.daily_equity(unseeded)
        except JournalError as exc:
            raise ControlError("internal", f"the journal cannot be read: {exc}") from None
        slices = control.slices()
        for sid in unseeded:
            if args.id is None:
                # Back from the journal's thread, then a strategy at a time: a first call seeds a thousand curves.
                await slices.pause()
            if sid not in curves.seeded and _loaded(daemon, sid):
                curves.curve(sid).prepend(days[sid])
                curves.seeded.add(sid)
    curves.forget_unloaded(daemon.manager)
    if args.id is not None:
        # A named one unloaded while the journal was read is unknown_strategy.
        orchestrator = control.daemon.manager.get(args.id)
        curves.refresh_one(orchestrator)
        return {"strategies": {args.id: _equity_of(orchestrator, curves.curve(args.id).points(args.points))}}
    result = {}
    # The strategies whose journalled days were read: one loaded since is left for the next call, one unloaded meanwhile left out.
    listed = set(ids)
    # A thousand curves thinned in slices, between the strategies' candles.
    async for sid, orchestrator in each_strategy(daemon.manager, control.slices()):
        if sid in listed:
            curves.refresh_one(orchestrator)
            result[sid] = _equity_of(orchestrator, curves.curve(sid).points(args.points))
    return {"strategies": result}


def _equity_of(orchestrator: TradingOrchestrator, points: list[tuple[int, float]]) -> dict[str, Any]:
    return {"currency": quote_currency(orchestrator.symbol), "start": orchestrator.portfolio.start, "points": points}


def candles(control: Control, args: CandlesArgs) -> dict[str, Any]:
    """The newest candles of one of the strategy's streams with its indicators over them, each series aligned with the candles."""
    daemon = control.daemon
    charts = daemon.charts
    if charts is None:
        raise ControlError("invalid_state", "this daemon keeps no charts")
    manager = daemon.manager
    orchestrator = manager.get(args.id)
    symbol = args.symbol if args.symbol is not None else orchestrator.symbol
    timeframe = args.timeframe if args.timeframe is not None else orchestrator.timeframe
    streams = orchestrator.subscriptions()
    registry = orchestrator.indicators.get((symbol, timeframe))
    if (symbol, timeframe) not in streams or registry is None:
        watched = ", ".join(f"{s} {t}" for s, t in streams)
        raise ControlError("bad_args", f"strategy {args.id!r} does not watch {symbol} {timeframe} (its streams: {watched})")
    # Charts of strategies unloaded, or of streams this one no longer watches, go.
    charts.keep(set(manager.ids()), args.id, set(streams))
    chart = charts.read(args.id, registry, symbol, timeframe, args.limit)
    return {"id": args.id, "symbol": symbol, "timeframe": timeframe, "timeframe_ms": timeframe_ms(timeframe), **chart}
