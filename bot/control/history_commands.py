"""The commands that read what a strategy did: its closed trades (paged), its equity over time, its candles with its indicators."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bot.config.currency import quote_currency
from bot.control.protocol import ControlError
from bot.daemon.chart_series import MAX_CANDLES
from bot.journal import JournalError
from bot.ohlcv import timeframe_ms

if TYPE_CHECKING:
    from bot.control.commands import Control

_ID = 128
_DAY_MS: Final[int] = 86_400_000
# Trades a page holds at most.
MAX_TRADES: Final[int] = 1_000


def _not_bool(value: object) -> object:
    # JSON's true would pass for 1: a count or a trade number is a number.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TradesArgs(_Args):
    """trades: closed trades newest first, of one strategy or all, `limit` a page; `before` the `next` of the page before."""

    id: str | None = Field(default=None, min_length=1, max_length=_ID)
    limit: Count = Field(default=100, ge=0, le=MAX_TRADES)
    before: Count | None = Field(default=None, ge=1)


class EquityArgs(_Args):
    """equity: the equity curve of one strategy or all."""

    id: str | None = Field(default=None, min_length=1, max_length=_ID)


class CandlesArgs(_Args):
    """candles: a strategy's stream (its trading stream unless named) with its indicators."""

    id: str = Field(min_length=1, max_length=_ID)
    symbol: str | None = Field(default=None, min_length=1, max_length=64)
    timeframe: str | None = Field(default=None, min_length=1, max_length=8)
    limit: Count = Field(default=500, ge=1, le=MAX_CANDLES)


def _ids(control: Control, strategy_id: str | None) -> list[str]:
    manager = control.daemon.manager
    if strategy_id is None:
        return manager.ids()
    manager.get(strategy_id)  # UnknownStrategyError: the command's unknown_strategy
    return [strategy_id]


def trades(control: Control, args: TradesArgs) -> dict[str, Any]:
    """A page of closed trades, newest first, with `next` to ask for the page after it; every strategy's count, all and today (UTC, by the daemon's clock)."""
    daemon = control.daemon
    ids = _ids(control, args.id)
    reader = daemon.history
    if reader is None:
        return {"trades": [], "next": None, "counts": {sid: {"total": 0, "today": 0} for sid in ids}}
    now = daemon.services.clock.now_ms()
    try:
        # One more than asked says whether there is a page after this one.
        rows = reader.trades(ids, args.limit + 1, args.before)
        counts = reader.trade_counts(ids, now - now % _DAY_MS)
    except JournalError as exc:
        raise ControlError("internal", f"the journal cannot be read: {exc}") from None
    page = rows[: args.limit]
    for row in page:
        row["currency"] = quote_currency(row["symbol"]) if isinstance(row["symbol"], str) else None
    more = len(rows) > args.limit and bool(page)
    return {
        "trades": page,
        "next": page[-1]["n"] if more else None,
        "counts": {sid: {"total": total, "today": today} for sid, (total, today) in counts.items()},
    }


def equity(control: Control, args: EquityArgs) -> dict[str, Any]:
    """Each strategy's equity curve, oldest first: its journalled end-of-day equity before this run, then its equity at the candles it handled (thinned as it grows)."""
    daemon = control.daemon
    result = {}
    for sid in _ids(control, args.id):
        orchestrator = daemon.manager.get(sid)
        result[sid] = {
            "currency": quote_currency(orchestrator.symbol),
            "start": orchestrator.portfolio.start,
            "points": [list(point) for point in daemon.equity_curves.points(sid)],
        }
    return {"strategies": result}


def candles(control: Control, args: CandlesArgs) -> dict[str, Any]:
    """The newest candles of one of the strategy's streams with its indicators over them, each series aligned with the candles."""
    daemon = control.daemon
    orchestrator = daemon.manager.get(args.id)
    symbol = args.symbol if args.symbol is not None else orchestrator.symbol
    timeframe = args.timeframe if args.timeframe is not None else orchestrator.timeframe
    streams = orchestrator.subscriptions()
    registry = orchestrator.indicators.get((symbol, timeframe))
    if (symbol, timeframe) not in streams or registry is None:
        watched = ", ".join(f"{s} {t}" for s, t in streams)
        raise ControlError("bad_args", f"strategy {args.id!r} does not watch {symbol} {timeframe} (its streams: {watched})")
    daemon.charts.forget_except(set(daemon.manager.ids()))
    chart = daemon.charts.read(args.id, registry, symbol, timeframe, args.limit)
    return {"id": args.id, "symbol": symbol, "timeframe": timeframe, "timeframe_ms": timeframe_ms(timeframe), **chart}
