"""The exit rules as pure functions of a position and a candle: which stop, rungs and trailing moves it triggers.

Nothing here books, sends or mutates: the position manager acts on what these return. The fill
price of a trigger (at the trigger, or at the open when the candle gapped through it) is the
exchange account's fill model, not an exit rule.
"""
from __future__ import annotations

from msgspec import Struct

from bot.ohlcv import Candle
from bot.trading.position import Position


class StopHit(Struct, frozen=True):
    """The binding stop a candle reached: its trigger price and which stop it is (stop_loss or trailing_stop)."""

    price: float
    kind: str


class TrailMove(Struct, frozen=True):
    """A trailing stop ratcheting behind a new best price."""

    anchor: float
    stop: float


class TrailingStart(Struct, frozen=True):
    """A trailing stop to activate: its distance, anchored at the activating candle's close."""

    distance_pct: float
    anchor: float


def stop_hit(position: Position, candle: Candle) -> StopHit | None:
    """The binding stop when the candle's adverse extreme reached it, else None.

    Checked before any take-profit: when both are inside one candle, the stop is assumed first.
    """
    stop = position.stop
    if stop is not None and (candle.low <= stop if position.direction > 0 else candle.high >= stop):
        return StopHit(stop, position.stop_kind)
    return None


def rungs_hit(position: Position, candle: Candle) -> tuple[int, ...]:
    """The 0-based rungs not taken yet that the candle's favourable extreme reached, in ladder order.

    A rung not reached ends the walk: a ladder fires from the nearest rung out.
    """
    long = position.direction > 0
    favourable = candle.high if long else candle.low
    hit: list[int] | None = None  # built only on a hit: most candles reach no rung
    index = 0  # counted by hand: enumerate's tuple per rung is most of this rule's cost per candle
    for level in position.take_profits:
        if not level.done:
            if not (favourable >= level.price if long else favourable <= level.price):
                break
            if hit is None:
                hit = [index]
            else:
                hit.append(index)
        index += 1  # noqa: SIM113  enumerate costs a tuple per rung per candle (see above)
    return () if hit is None else tuple(hit)


def rung_quantity(position: Position, index: int, available: float) -> float:
    """What rung `index` closes of the `available` (not already being closed) quantity.

    The last rung of a ladder that adds up to 100% takes whatever is left, so float rounding in
    the step sizes never leaves dust open. Asked per rung as it fires, since what is available
    then depends on how the previous rung filled.
    """
    if position.ladder_closes_all and index == len(position.take_profits) - 1:
        return available
    return min(position.take_profits[index].quantity, available)


def trail_move(position: Position, candle: Candle) -> TrailMove | None:
    """The new anchor and trailing stop when the candle made a new best price for an active trailing stop; it only ratchets favourably."""
    distance = position.trailing_distance_pct
    if not position.trailing_active or distance is None:
        return None
    d = position.direction
    favourable = candle.high if d > 0 else candle.low
    if (favourable > position.trail_anchor) if d > 0 else (favourable < position.trail_anchor):
        return TrailMove(favourable, trail_stop(favourable, distance, d))
    return None


def trailing_start(position: Position, candle: Candle) -> TrailingStart | None:
    """The trailing stop to activate when the candle closed at or beyond the position's activation price."""
    activation = position.trailing_activation_price
    distance = position.trailing_distance_pct
    if activation is None or distance is None or position.trailing_active:
        return None
    if candle.close >= activation if position.direction > 0 else candle.close <= activation:
        return TrailingStart(distance, candle.close)
    return None


def break_even_stop(position: Position) -> float | None:
    """The entry price, when break-even applies (first rung taken) and the stop-loss is still on the losing side of it."""
    if not (position.break_even and position.take_profits and position.take_profits[0].done):
        return None
    entry = position.entry_price
    stop = position.stop_loss
    if stop is None or (stop < entry if position.direction > 0 else stop > entry):
        return entry
    return None


def trail_stop(anchor: float, distance_pct: float, direction: int) -> float:
    """The trailing stop `distance_pct` behind `anchor`."""
    return anchor * (1 - direction * distance_pct / 100.0)
