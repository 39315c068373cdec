"""The replay report: per-strategy results and totals per quote currency, as report.json and a terminal table."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bot.config.currency import quote_currency
from bot.strategy.orchestrator import TradingOrchestrator


def strategy_report(orchestrator: TradingOrchestrator) -> dict[str, Any]:
    """One strategy's results: trades, win rate, PnL, fees, drawdown and equity, in its symbol's quote currency."""
    portfolio = orchestrator.portfolio
    positions = orchestrator.positions
    trades = positions.closed_trades
    wins = positions.winning_trades
    return {
        "state": orchestrator.state,
        "last_error": orchestrator.last_error,
        "symbol": orchestrator.symbol,
        "currency": quote_currency(orchestrator.symbol),
        "timeframe": orchestrator.timeframe,
        "trades": trades,
        "wins": wins,
        "win_rate": wins / trades if trades else 0.0,
        "realised_pnl": portfolio.realised,
        "fees": portfolio.fees,
        "net_pnl": portfolio.realised - portfolio.fees,
        "unrealised_pnl": portfolio.unrealised,
        "open_positions": len(positions.positions),
        "max_drawdown": portfolio.max_drawdown,
        "max_drawdown_pct": portfolio.max_drawdown_pct,
        "starting_balance": portfolio.start,
        "final_equity": portfolio.equity,
        "return_pct": 100.0 * (portfolio.equity - portfolio.start) / portfolio.start,
        "candles": orchestrator.metrics.candles,
    }


def currency_totals(strategies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals of the additive figures of strategy reports that share one currency."""
    trades = sum(s["trades"] for s in strategies)
    wins = sum(s["wins"] for s in strategies)
    start = sum(s["starting_balance"] for s in strategies)
    equity = sum(s["final_equity"] for s in strategies)
    return {
        "strategies": len(strategies),
        "failed": sum(1 for s in strategies if s["state"] == "failed"),
        "trades": trades,
        "wins": wins,
        "win_rate": wins / trades if trades else 0.0,
        "realised_pnl": sum(s["realised_pnl"] for s in strategies),
        "fees": sum(s["fees"] for s in strategies),
        "net_pnl": sum(s["net_pnl"] for s in strategies),
        "unrealised_pnl": sum(s["unrealised_pnl"] for s in strategies),
        "starting_balance": start,
        "final_equity": equity,
        "return_pct": 100.0 * (equity - start) / start if start else 0.0,
    }


def build_report(orchestrators: list[TradingOrchestrator], replay: dict[str, Any]) -> dict[str, Any]:
    """The whole report: replay facts, each strategy, and totals per quote currency.

    Money is never added across currencies: `totals` maps each currency (in the order the
    strategies first use it) to the totals of the strategies trading in it.
    """
    return assemble_report({o.strategy_id: strategy_report(o) for o in orchestrators}, replay)


def assemble_report(strategies: dict[str, dict[str, Any]], replay: dict[str, Any]) -> dict[str, Any]:
    """The whole report of strategy reports in order (see build_report): a replay run as parts merges theirs."""
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for report in strategies.values():
        by_currency.setdefault(report["currency"], []).append(report)
    totals = {currency: currency_totals(group) for currency, group in by_currency.items()}
    return {"replay": replay, "strategies": strategies, "totals": totals}


def write_report_json(path: Path, report: dict[str, Any]) -> None:
    """Write report.json as every replay writes it."""
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
