"""Closes held while a stop rests on the exchange: when the stop fills first, they never sell what it sold."""
from __future__ import annotations

from tests.live.gateway_stand_in import SYM, live_account, rig


def test_stop_fill_with_a_close_in_flight_does_not_release_the_held_close() -> None:
    r, gw = rig(stop_loss_pct=1.0)
    pm = r.manager.get("s1").positions
    pm.submit_open(SYM, "long", 1.0, "entry", 0, 100.0)
    gw.fill("s1-1", 100.0)
    (position,) = pm.positions.values()
    assert [o.client_id for o in gw.sent_orders if o.order_type == "stop"] == ["s1-2"]
    gw.rest("s1-2")
    assert pm._account.stop_held(position.id)

    # The strategy closes half: held, the stop cancelled, then the close and a stop for the rest go out together.
    pm.submit_close(position, 0.5, "half", 0, 100.0)
    assert gw.cancels == ["s1-2"]
    gw.drop("s1-2")
    assert gw.sells()[-2:] == [("s1-3", "market", 0.5), ("s1-4", "stop", 0.5)]
    gw.rest("s1-4")

    # While the half close (s1-3) is still in flight, the strategy closes what is left: held, the stop asked to cancel.
    pm.submit_close(position, 0.5, "exit", 0, 100.0)
    assert gw.cancels == ["s1-2", "s1-4"]
    # ...but the stop had already fired on the exchange (a fast market): it sold the 0.5 the held close was for.
    gw.fill("s1-4", 99.0)

    # Executed or executing sells: the market closes sent plus the stop that filled.
    sold = sum(q for cid, kind, q in gw.sells() if kind == "market") + 0.5
    # Position was 1.0: the exchange must never be asked to sell more than that.
    assert sold <= 1.0 + 1e-9, f"sells {sold} for a 1.0 position: {gw.sells()}"

    # And when the in-flight half close fills, the position is done; the extra close's fill then has no position.
    errors: list[BaseException] = []
    live_account(pm)._on_error = lambda sid, exc: errors.append(exc)
    gw.fill("s1-3", 99.5)
    assert not pm.positions
    if ("s1-5", "market", 0.5) in gw.sells():
        gw.fill("s1-5", 99.0)
        assert not errors, errors


def test_a_partly_filled_stop_does_not_release_a_held_close_bigger_than_what_is_left() -> None:
    r, gw = rig(stop_loss_pct=1.0)
    pm = r.manager.get("s1").positions
    pm.submit_open(SYM, "long", 1.0, "entry", 0, 100.0)
    gw.fill("s1-1", 100.0)
    (position,) = pm.positions.values()
    gw.rest("s1-2")
    # The strategy exits in full: held until the stop is cancelled.
    pm.submit_close(position, 1.0, "exit", 0, 100.0)
    assert gw.cancels == ["s1-2"]
    # The stop had triggered; its market order filled 0.4 and expired (thin book): the exchange reports a 0.4 fill.
    gw.fill("s1-2", 99.0, qty=0.4)
    assert position.quantity == 0.6
    released = [(cid, q) for cid, kind, q in gw.sells() if kind == "market"]
    assert all(q <= position.quantity + 1e-9 for _, q in released), f"held close sent for more than the 0.6 left: {released}"
    # The exit is still wanted: what is left goes out, once, for exactly what is left.
    assert released == [("s1-4", 0.6)]
    gw.fill("s1-4", 98.0)
    assert not pm.positions
