"""Each strategy's last candle per stream in a journalled turn: what a restart must not decide on again."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final, Protocol

import msgspec

Stream = tuple[str, str]

# Per strategy: [[symbol, timeframe, open time], ...] of the candles its last journalled turn had seen.
TURN_PROGRESS: Final[str] = "turn.progress:"
_ROWS: Final = msgspec.json.Decoder(list[tuple[str, str, int]])


class ProgressJournal(Protocol):
    """The journal's side (bot.journal.Journal)."""

    @property
    def turn_writes(self) -> bool: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def meta_with_prefix(self, prefix: str) -> dict[str, str]: ...


class TurnProgress:
    """Journals, in each strategy turn that writes anything, the newest candle per stream the strategy has processed.

    The feed's position is journalled only once every strategy has processed what was
    published; a strategy's turn as soon as it commits. A kill -9 between the two leaves the
    turn's orders and fills in the journal while the restarted feed plays its candle again:
    decided on a second time, its pending entry would fill at that candle's own open (a price
    from before the decision) and its decision could be sent twice. A restarted daemon hands
    each strategy the candles it had already processed as history instead (indicators and the
    strategy's state take them; nothing is decided, filled or enforced). A turn that wrote
    nothing left nothing to apply twice, so it costs no write.
    """

    def __init__(self, journal: ProgressJournal, log: logging.Logger) -> None:
        self._journal = journal
        self._restored: dict[str, dict[Stream, int]] = {}
        for strategy_id, text in journal.meta_with_prefix(TURN_PROGRESS).items():
            try:
                rows = _ROWS.decode(text)
            except msgspec.DecodeError as exc:  # ValidationError included
                # Without it the strategy may decide again on what it had decided: say so, go on.
                log.warning("[%s] journal meta %r is not a turn progress (%s): candles replayed after a crash are decided on again",
                            strategy_id, TURN_PROGRESS + strategy_id, exc)
                continue
            self._restored[strategy_id] = {(symbol, timeframe): ts for symbol, timeframe, ts in rows}

    def handled_before(self) -> dict[str, int]:
        """Per strategy, the newest close it had processed in a journalled turn before this start (all of them, not taken)."""
        return {sid: max(streams.values()) for sid, streams in self._restored.items() if streams}

    def restored(self, strategy_id: str) -> dict[Stream, int] | None:
        """The newest candle per stream the strategy had processed in a journalled turn before this start (taken once)."""
        return self._restored.pop(strategy_id, None)

    def note(self, strategy_id: str, seen: Mapping[Stream, int]) -> None:
        """Inside a turn, after the strategy handled its candle: journal `seen` with the turn, if the turn wrote anything."""
        if self._journal.turn_writes:
            rows = [(symbol, timeframe, ts) for (symbol, timeframe), ts in seen.items()]
            self._journal.set_meta(TURN_PROGRESS + strategy_id, msgspec.json.encode(rows).decode())
