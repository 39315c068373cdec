"""The hub's streams: a reversible subject token for any symbol or strategy id, and ensure_streams against a real server."""
from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cluster.nats_server import NatsServer, unavailable

try:
    from nats.js.api import StorageType, StreamConfig

    from bot.cluster.connection import ClusterConnection
    from bot.cluster.streams import StreamConfigError, StreamNames, conflicts, ensure_streams, token, untoken
    from bot.config.cluster import ClusterConfig
except ImportError as missing:
    unavailable(f"nats-py is not installed (bash scripts/setup.sh --cluster): {missing}")

DEADLINE_S = 20.0
# What a subject token may not hold: NATS splits on '.', '*' and '>' are wildcards, whitespace ends the subject.
_FORBIDDEN = set(".*> \t\r\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("BTC/USD", "BTC/USD"), ("BTC/USDT:USDT", "BTC/USDT:USDT"), ("1000.PEPE/USDT", "1000%2EPEPE/USDT"), ("a%2E", "a%252E"), ("ema.cross", "ema%2Ecross")],
)
def test_a_token_escapes_dots_and_percents_and_keeps_the_rest(value: str, expected: str) -> None:
    assert token(value) == expected
    assert untoken(expected) == value


@given(st.text(min_size=1, max_size=80))
def test_any_symbol_or_id_round_trips_through_a_token_that_nats_reads_as_one(value: str) -> None:
    escaped = token(value)
    assert not _FORBIDDEN & set(escaped) and escaped.isascii()
    assert untoken(escaped) == value


@pytest.mark.parametrize("text", ["", "a.b", "a%2e", "a%2", "a%41", "a b"])
def test_untoken_refuses_what_token_cannot_have_made(text: str) -> None:
    with pytest.raises(ValueError):
        untoken(text)


def test_subjects_and_msg_ids_follow_the_design() -> None:
    names = StreamNames("main")
    assert (names.md, names.evt) == ("MD_main", "EVT_main")
    assert names.md_subject("paper", "1000.PEPE/USDT", "1m") == "md.main.paper.1000%2EPEPE/USDT.1m"
    assert names.md_msg_id("paper", "BTC/USD", "1h", 3_600_000) == "paper:BTC/USD:1h:3600000"
    assert names.evt_subject(None, "candle_closed") == "evt.main._market.candle_closed"
    assert names.evt_subject("ema.1", "position_opened") == "evt.main.ema%2E1.position_opened"
    assert names.evt_msg_id("17", 5) == "main:17:5"
    md, evt = names.configs(history_size=500)
    assert (md.max_msgs_per_subject, md.max_age, md.duplicate_window, md.subjects) == (1000, 7 * 86_400.0, 600.0, ["md.main.>"])
    assert (evt.max_age, evt.subjects) == (7 * 86_400.0, ["evt.main.>"])


def test_a_stream_on_other_subjects_or_in_memory_conflicts_and_limits_do_not() -> None:
    md, _ = StreamNames("main").configs(history_size=10)
    other = StreamConfig.from_response({**md.as_dict(), "subjects": ["md.other.>"], "storage": "memory", "max_msgs_per_subject": 5})
    assert conflicts(other, md) == ["subjects is ['md.other.>'], not ['md.main.>']", "storage is 'memory', not 'file'"]
    assert conflicts(StreamConfig.from_response(md.as_dict()), md) == []


@pytest.mark.asyncio
async def test_ensure_streams_creates_then_checks_updates_limits_and_refuses_a_conflicting_stream(nats_server: NatsServer) -> None:
    connection = ClusterConnection(ClusterConfig.model_validate({"url": nats_server.url}), nats_server.store, logging.getLogger("t"), label="t", environ={})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
        try:
            js = connection.jetstream()
            names = StreamNames("c1")
            assert await ensure_streams(js, names, 10) == ["created stream MD_c1", "created stream EVT_c1"]
            assert await ensure_streams(js, names, 10) == []
            assert await ensure_streams(js, names, 20) == ["updated stream MD_c1: max_msgs_per_subject"]
            assert (await js.stream_info("MD_c1")).config.max_msgs_per_subject == 40
            await js.add_stream(StreamConfig(name="MD_c2", subjects=["md.c2.x"], storage=StorageType.MEMORY))
            with pytest.raises(StreamConfigError) as refused:
                await ensure_streams(js, StreamNames("c2"), 10)
            assert str(refused.value) == (
                "stream MD_c2 exists with another configuration: subjects is ['md.c2.x'], not ['md.c2.>']; "
                "storage is 'memory', not 'file' (delete that stream, or set cluster.name to another name)"
            )
        finally:
            await connection.close()


@pytest.mark.asyncio
async def test_a_limits_update_keeps_what_an_operator_set_on_the_stream(nats_server: NatsServer) -> None:
    """ensure_streams replaces only the limits it owns: an operator's max_bytes (a disk bound) and description stay."""
    connection = ClusterConnection(ClusterConfig.model_validate({"url": nats_server.url}), nats_server.store, logging.getLogger("t"), label="t", environ={})
    async with asyncio.timeout(DEADLINE_S):
        await connection.connect()
        try:
            js = connection.jetstream()
            names = StreamNames("c1")
            await ensure_streams(js, names, 10)
            info = await js.stream_info("MD_c1")
            await js.update_stream(dataclasses.replace(info.config, max_bytes=10_000_000, description="ops"))
            assert await ensure_streams(js, names, 10) == []
            assert await ensure_streams(js, names, 20) == ["updated stream MD_c1: max_msgs_per_subject"]
            after = (await js.stream_info("MD_c1")).config
            assert (after.max_msgs_per_subject, after.max_bytes, after.description) == (40, 10_000_000, "ops")
        finally:
            await connection.close()
