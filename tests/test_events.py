"""The event classes are frozen msgspec Structs: slotted, immutable, built in C, with defaults and checks kept."""
from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import events as events_module
from bot.event_codec import payload_fields
from bot.events import FeedState, Frozen, OrderCancelled, PositionReduced
from tests.test_event_codec import _records

_CLASSES = sorted(
    (c for c in vars(events_module).values() if isinstance(c, type) and issubclass(c, msgspec.Struct) and c.__module__ == events_module.__name__),
    key=lambda c: c.__name__,
)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_class_is_a_frozen_slotted_struct_built_from_its_fields_in_order(cls: type[Any], data: st.DataObject) -> None:
    assert issubclass(cls, Frozen) and cls.__struct_config__.frozen
    if cls is FeedState:
        built = FeedState(1, 2, 3, "live", {"reason": "x"}, "BTC/USD", "1m")
    else:
        built = data.draw(_records(cls))
    assert not hasattr(built, "__dict__")
    values = {f.name: getattr(built, f.name) for f in msgspec.structs.fields(cls)}
    assert built == cls(**values) and built == msgspec.structs.replace(built)
    positional = [f.name for f in msgspec.structs.fields(cls)][: len(cls.__match_args__)]
    assert cls(*(values[n] for n in positional), **{n: v for n, v in values.items() if n not in positional}) == built
    for name in values:
        with pytest.raises(AttributeError, match="immutable"):
            setattr(built, name, None)
    with pytest.raises(AttributeError):
        built.not_a_field = 1  # type: ignore[attr-defined]  # no such field: refused


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda c: c.__name__)
def test_the_codec_notes_of_every_class_name_its_own_payload_fields(cls: type[Frozen]) -> None:
    names = [f.name for f in payload_fields(cls)]
    assert len(names) == len(set(names))
    assert (cls.__omit__ | cls.__flat__ | cls.__rung__) <= set(names)


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
