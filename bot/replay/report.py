"""The replay report: per-strategy results and totals, as report.json and a terminal table."""
from __future__ import annotations

from typing import Any

from bot.strategy.orchestrator import TradingOrchestrator


def strategy_report(orchestrator: TradingOrchestrator) -> dict[str, Any]:
    """One strategy's results: trades, win rate, PnL, fees, drawdown and equity."""
    portfolio = orchestrator.portfolio
    positions = orchestrator.positions
    trades = positions.closed_trades
    wins = positions.winning_trades
    return {
        "state": orchestrator.state,
        "last_error": orchestrator.last_error,
        "symbol": orchestrator.symbol,
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


def build_report(orchestrators: list[TradingOrchestrator], replay: dict[str, Any]) -> dict[str, Any]:
    """The whole report: replay facts, each strategy, and totals of the additive figures."""
    strategies = {o.strategy_id: strategy_report(o) for o in orchestrators}
    trades = sum(s["trades"] for s in strategies.values())
    wins = sum(s["wins"] for s in strategies.values())
    start = sum(s["starting_balance"] for s in strategies.values())
    equity = sum(s["final_equity"] for s in strategies.values())
    totals = {
        "strategies": len(strategies),
        "failed": sum(1 for s in strategies.values() if s["state"] == "failed"),
        "trades": trades,
        "wins": wins,
        "win_rate": wins / trades if trades else 0.0,
        "realised_pnl": sum(s["realised_pnl"] for s in strategies.values()),
        "fees": sum(s["fees"] for s in strategies.values()),
        "net_pnl": sum(s["net_pnl"] for s in strategies.values()),
        "unrealised_pnl": sum(s["unrealised_pnl"] for s in strategies.values()),
        "starting_balance": start,
        "final_equity": equity,
        "return_pct": 100.0 * (equity - start) / start if start else 0.0,
    }
    return {"replay": replay, "strategies": strategies, "totals": totals}
