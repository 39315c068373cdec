"""The hub's JetStream streams: names, subjects, message ids, their configs, and making sure the server holds them as configured.

`MD_<cid>` keeps every candle the hub's history takes, on `md.<cid>.<exchange>.<symbol-token>.<tf>`;
`EVT_<cid>` every event the hub publishes, on `evt.<cid>.<strategy-token or _market>.<type>`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from bot.cluster.subjects import check_token
from bot.errors import BotError

DAY_S = 86_400.0
# Market data and events are kept a week: long enough to warm up from and to audit a bad day.
MAX_AGE_S = 7 * DAY_S
# A publish retried after an outage up to this long is still recognised as a repeat by its msg-id.
DUPLICATE_WINDOW_S = 600.0
# The subject token of an event no strategy owns (a candle, a gap, the kill switch).
MARKET = "_market"

# What a token keeps as it is: everything else is %XX (UTF-8, upper-case hex), '%' and '.' included.
_KEPT = re.compile(r"[A-Za-z0-9_/:-]")
_ESCAPE = re.compile(r"%[0-9A-F]{2}")


class StreamConfigError(BotError):
    """A stream of ours exists on the server with a configuration we cannot use, or cannot be created."""


def token(value: str) -> str:
    """`value` as one NATS subject token, reversibly: see `untoken`.

    Symbols may hold '.', which would split the token, and strategy ids may too; so every
    character other than letters, digits, '_', '-', '/' and ':' (accepted in subjects, checked
    on the server) becomes '%' and two upper-case hex digits per UTF-8 byte: '.' -> %2E,
    '%' -> %25, '*' -> %2A, '>' -> %3E, a space -> %20. The empty string is refused.
    """
    if not value:
        raise ValueError("an empty string cannot be a subject token")
    return "".join(c if _KEPT.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


def untoken(text: str) -> str:
    """The value `token` made `text` of; ValueError for a token it cannot have made."""
    if not text or any(not (_KEPT.fullmatch(c) or c == "%") for c in text):
        raise ValueError(f"{text!r} is not a token of ours")
    parts = text.split("%")
    data = bytearray(parts[0].encode())
    for part in parts[1:]:
        if not _ESCAPE.fullmatch("%" + part[:2]):
            raise ValueError(f"{text!r} has a '%' not followed by two upper-case hex digits")
        data.append(int(part[:2], 16))
        data += part[2:].encode()
    value = data.decode()
    if token(value) != text:
        raise ValueError(f"{text!r} is not a token of ours (it escapes what it need not)")
    return value


@dataclass(frozen=True, slots=True)
class StreamNames:
    """The names, subjects and msg-ids of one cluster's market-data and event streams."""

    cid: str

    def __post_init__(self) -> None:
        check_token("cluster name", self.cid)

    @property
    def md(self) -> str:
        """The market-data stream's name."""
        return f"MD_{self.cid}"

    @property
    def evt(self) -> str:
        """The event stream's name."""
        return f"EVT_{self.cid}"

    def md_subject(self, exchange: str, symbol: str, timeframe: str) -> str:
        """Where the candles of one stream go."""
        return f"md.{self.cid}.{check_token('exchange', exchange)}.{token(symbol)}.{check_token('timeframe', timeframe)}"

    @staticmethod
    def md_msg_id(exchange: str, symbol: str, timeframe: str, open_ts: int) -> str:
        """A candle's id: the server stores each once (within the duplicate window)."""
        return f"{exchange}:{symbol}:{timeframe}:{open_ts}"

    def evt_subject(self, strategy_id: str | None, type_: str) -> str:
        """Where an event of `type_` goes: under its strategy, or `_market` for a market event."""
        owner = MARKET if strategy_id is None else token(strategy_id)
        return f"evt.{self.cid}.{owner}.{check_token('event type', type_)}"

    def evt_msg_id(self, run: str, seq: int) -> str:
        """An event's id: the bus numbers events from 1 at each start, so the run tells two starts' seq 1 apart."""
        return f"{self.cid}:{run}:{seq}"

    def configs(self, history_size: int) -> tuple[StreamConfig, StreamConfig]:
        """The market-data and event streams' configs: limits, on file, a week, repeats within 10 minutes dropped."""
        md = StreamConfig(
            name=self.md,
            subjects=[f"md.{self.cid}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            # Twice the hub's history: a worker warming up finds a whole history even while it is being written.
            max_msgs_per_subject=2 * history_size,
            max_age=MAX_AGE_S,
            duplicate_window=DUPLICATE_WINDOW_S,
            discard=DiscardPolicy.OLD,
        )
        evt = StreamConfig(
            name=self.evt,
            subjects=[f"evt.{self.cid}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=MAX_AGE_S,
            duplicate_window=DUPLICATE_WINDOW_S,
            discard=DiscardPolicy.OLD,
        )
        return md, evt


# What makes an existing stream another's (or unusable as ours): never changed for us.
_FIXED = ("subjects", "retention", "storage", "discard")
# What follows our config (history_size): updated in place.
_LIMITS = ("max_msgs_per_subject", "max_age", "duplicate_window")


def conflicts(found: StreamConfig, wanted: StreamConfig) -> list[str]:
    """How an existing stream's config differs from ours in what we will not change (empty: usable)."""
    return [
        f"{field} is {_plain(getattr(found, field))!r}, not {_plain(getattr(wanted, field))!r}"
        for field in _FIXED
        if _plain(getattr(found, field)) != _plain(getattr(wanted, field))
    ]


def limits_differ(found: StreamConfig, wanted: StreamConfig) -> list[str]:
    """The limits of an existing stream that differ from ours (updated in place)."""
    return [field for field in _LIMITS if _plain(getattr(found, field)) != _plain(getattr(wanted, field))]


def _plain(value: object) -> object:
    # The server answers with the enums' values and durations in seconds as floats.
    if isinstance(value, list):
        return sorted(map(str, value))
    if isinstance(value, float):
        return round(value, 3)
    return getattr(value, "value", value)


async def ensure_streams(js: JetStreamContext, names: StreamNames, history_size: int) -> list[str]:
    """Create the cluster's streams, or check the existing ones; what was done, a line each.

    A stream whose subjects, retention, storage or discard policy differ is not ours to change:
    StreamConfigError naming the stream and every difference. Limits that follow the config
    (history_size) are updated in place, the rest of the stream's config as the server holds it.
    """
    done: list[str] = []
    for wanted in names.configs(history_size):
        name = wanted.name
        try:
            info = await js.stream_info(name)  # type: ignore[arg-type]
        except NotFoundError:
            try:
                await js.add_stream(wanted)
            except BadRequestError as exc:
                raise StreamConfigError(f"cannot create stream {name}: {exc.description} (error {exc.err_code})") from None
            done.append(f"created stream {name}")
            continue
        problems = conflicts(info.config, wanted)
        if problems:
            raise StreamConfigError(
                f"stream {name} exists with another configuration: {'; '.join(problems)} (delete that stream, or set cluster.name to another name)"
            )
        changed = limits_differ(info.config, wanted)
        if changed:
            try:
                # The stream as the server holds it, only our limits replaced: what an operator set (max_bytes, a description) stays.
                await js.update_stream(dataclasses.replace(info.config, **{field: getattr(wanted, field) for field in changed}))
            except BadRequestError as exc:
                raise StreamConfigError(f"cannot update stream {name} ({', '.join(changed)}): {exc.description} (error {exc.err_code})") from None
            done.append(f"updated stream {name}: {', '.join(changed)}")
    return done
