"""`/metrics` of a real daemon: promtool accepts the exposition, and a real Prometheus scraping it finds every strategy's equity."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pytest

from tests.control.client import result
from tests.daemon.process import DaemonProcess, short_tmp, write_daemon_config

__all__ = ["short_tmp"]

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
# A bound on a hang, never a measure of speed.
DEADLINE_S = 60.0


def _unavailable(reason: str) -> NoReturn:
    """Skip where Prometheus is not installed; fail under CI, whose set-up (scripts/test.sh) installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the Prometheus tests (scripts/test.sh installs Debian's prometheus)", pytrace=False)
    pytest.skip(reason)


def _url(daemon: DaemonProcess) -> str:
    lines = [line for line in daemon.log.read_text().splitlines() if "http: serving " in line]
    assert lines, daemon.log.read_text()
    return lines[0].split("http: serving ", 1)[1].split(" ", 1)[0]


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=DEADLINE_S) as reply:
        return reply.status, reply.headers["Content-Type"], reply.read().decode()


@pytest.fixture
def daemon(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A stepped daemon serving HTTP on a free loopback port, 300 candles stepped."""
    process = DaemonProcess(write_daemon_config(short_tmp, http={"listen": "127.0.0.1:0"}), stepped=True)
    try:
        process.wait_ready()
        process.step(300)
        yield process
    finally:
        assert process.stop() == 0, process.log.read_text()[-3000:]


def _series(text: str, name: str) -> dict[str, float]:
    """`name`'s samples in an exposition: {labels: value}."""
    found = {}
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            labels, _, value = line.rpartition(" ")
            found[labels[len(name):]] = float(value)
    return found


def test_the_exposition_passes_promtool_and_counts_what_the_daemon_did(daemon: DaemonProcess) -> None:
    status, content_type, text = _get(_url(daemon) + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), content_type
    strategies = result(daemon.socket, "status")["strategies"]
    metrics = result(daemon.socket, "metrics")["strategies"]
    # Every strategy's state, one 1 each; every candle it handled in its decision histogram.
    states = _series(text, "bot_strategy_state")
    for sid, row in strategies.items():
        assert states[f'{{state="{row["state"]}",strategy="{sid}"}}'] == 1.0
        assert sum(v for k, v in states.items() if f'strategy="{sid}"' in k) == 1.0
        assert _series(text, "bot_strategy_decision_seconds_count")[f'{{strategy="{sid}"}}'] == metrics[sid]["candles"] > 0
        assert _series(text, "bot_strategy_equity")[f'{{currency="USD",strategy="{sid}"}}'] == pytest.approx(row["equity"])
    # 300 1m candles stepped after the 3,000 of the backfill, and the derived timeframes.
    candles = _series(text, "bot_candles_total")
    assert candles['{symbol="BTC/USD",timeframe="1m"}'] == 3300.0, candles
    assert candles['{symbol="BTC/USD",timeframe="5m"}'] == 660.0, candles
    assert _series(text, "bot_health") == {"": 1.0}
    # No order id or time in a label.
    assert "client_id" not in text and "position_id" not in text
    if PROMTOOL is None:
        _unavailable("no promtool (Debian's prometheus package)")
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=DEADLINE_S)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    try:
        _, _, body = _get(url)
    except OSError:
        return []  # not up yet
    reply = orjson.loads(body)
    assert reply["status"] == "success", reply
    found: list[dict[str, Any]] = reply["data"]["result"]
    return found


def test_a_real_prometheus_scraping_the_daemon_finds_every_strategys_equity(daemon: DaemonProcess, tmp_path: Path) -> None:
    if PROMETHEUS is None:
        _unavailable("no prometheus server (Debian's prometheus package)")
    target = urllib.parse.urlsplit(_url(daemon)).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bot\n    static_configs:\n      - targets: ['{target}']\n")
    port = _free_port()
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wanted = set(result(daemon.socket, "status")["strategies"])
        deadline = time.monotonic() + DEADLINE_S
        found: set[str] = set()
        while time.monotonic() < deadline and found != wanted:
            if server.poll() is not None:
                raise AssertionError(f"prometheus exited: {server.stderr.read().decode() if server.stderr else ''}")
            found = {sample["metric"]["strategy"] for sample in _query(f"http://127.0.0.1:{port}", "bot_strategy_equity")}
            time.sleep(0.2)
        assert found == wanted, (found, wanted)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(DEADLINE_S / 2)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
