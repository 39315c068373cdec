"""The event classes stay frozen, slotted dataclasses while built through their quick __init__."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import events as events_module
from bot.events import FeedState, OrderCancelled, PositionReduced
from tests.test_event_codec import _records

_CLASSES = sorted(
    (c for c in vars(events_module).values() if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == events_module.__name__),
    key=lambda c: c.__name__,
)


def _field_by_field(cls: type[Any], values: dict[str, Any]) -> Any:
    # What the dataclass-generated frozen __init__ does: one object.__setattr__ per field.
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_class_is_built_by_its_quick_init_field_for_field_and_stays_frozen(cls: type[Any], data: st.DataObject) -> None:
    assert cls.__init__.__code__.co_filename == f"<__init__ of {cls.__qualname__}>"
    assert "__dict__" not in dir(cls)
    if cls is FeedState:
        built = FeedState(1, 2, 3, "live", {"reason": "x"}, "BTC/USD", "1m")
    else:
        built = data.draw(_records(cls))
    values = {f.name: getattr(built, f.name) for f in dataclasses.fields(cls)}
    assert built == _field_by_field(cls, values)
    assert repr(built) == repr(_field_by_field(cls, values))
    for name in values:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, name, None)


def test_defaults_keyword_only_fields_factories_and_post_init_are_kept() -> None:
    cancelled = OrderCancelled(1, 2, 3, "s", "c1", "BTC/USD", "by_bot")
    assert (cancelled.reason, cancelled.side, cancelled.kind) == ("by_bot", None, None)
    with pytest.raises(TypeError):
        OrderCancelled(1, 2, 3, "s", "c1", "BTC/USD", "by_bot", "sell")  # type: ignore[call-arg]  # side is keyword-only
    with pytest.raises(TypeError):
        PositionReduced(1, 2, 3, "s", None, 1.0, 2.0, "take_profit_1")  # type: ignore[call-arg, arg-type]  # portfolio, fill required
    first, second = FeedState(1, 2, 3, "up"), FeedState(1, 2, 3, "up")
    assert first.detail == {} and first.detail is not second.detail
    with pytest.raises(ValueError, match="without a symbol"):
        FeedState(1, 2, 3, "up", timeframe="1m")
