"""`bot report` and `bot replay --report` as the real command line; what the page holds."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bot.report.build import write_report
from tests.report.builders import write_replay_config
from tests.support import BTC_1M, REPO


def _bot(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["PYTHONPATH"] = str(REPO)  # this checkout's bot, whatever the folder the command runs in
    return subprocess.run([sys.executable, "-m", "bot", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_bot_report_writes_one_self_contained_page(replay_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    result = _bot("report", replay_dir, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"report: {out}" in result.stdout
    html = out.read_text(encoding="utf-8")
    # Offline: no script, style or image comes from elsewhere (the browser test also watches requests).
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|<img[^>]+src=|@import", html)
    assert html.count("<script>") == 2  # plotly.js, then the drawing code
    assert html.count("Plotly.newPlot(document.getElementById(block.dataset.for)") == 1
    assert len(html.encode()) < 6_000_000
    for sid in ("ema_cross", "rsi_reversion", "trail"):
        assert f'id="s-{sid}"' in html
        assert html.count(f'data-kind="equity" data-strategy="{sid}"') == 1
        assert html.count(f'data-kind="drawdown" data-strategy="{sid}"') == 1
    for words in ("Sharpe", "Sortino", "win rate", "profit factor", "max drawdown", "exposure", "√8,760"):
        assert words in html


def test_bot_report_defaults_to_run_dir_and_refuses_bad_input(replay_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(replay_dir, run, ignore=shutil.ignore_patterns("events.jsonl"))
    assert _bot("report", run, cwd=tmp_path).returncode == 0
    assert (run / "report.html").is_file()
    (run / "trades.csv").write_text("nonsense\n")
    result = _bot("report", run, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {run / 'trades.csv'}: line 1: header must be")
    assert _bot("report", tmp_path / "missing", cwd=tmp_path).returncode == 2


def test_replay_with_report_writes_the_page_in_the_same_run(tmp_path: Path) -> None:
    write_replay_config(tmp_path, BTC_1M)
    result = _bot("replay", "--config", "config.json", "--out", "out", "--quiet", "--report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.count('data-kind="equity"') == 3


def test_strings_from_the_files_are_escaped(replay_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(replay_dir, run, ignore=shutil.ignore_patterns("events.jsonl"))
    evil = "<img src=x onerror=alert(1)>"
    with (run / "trades.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1][1] = evil  # symbol
    rows[1][10] = "</script><b>reason"  # exit_reason
    with (run / "trades.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    report = (run / "report.json").read_text()
    (run / "report.json").write_text(report.replace('"status": "complete"', '"status": "complete <i>x</i>"', 1))
    html = write_report(run).read_text(encoding="utf-8")
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "</script><b>" not in html and "&lt;/script&gt;&lt;b&gt;reason" in html
    assert "<i>x</i>" not in html


def test_a_long_trades_table_is_capped_and_says_so(replay_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(replay_dir, run, ignore=shutil.ignore_patterns("events.jsonl"))
    lines = (run / "trades.csv").read_text().splitlines()
    body = [line for line in lines[1:] if line.startswith("rsi_reversion,")]
    (run / "trades.csv").write_text("\n".join([lines[0]] + body * (2500 // len(body) + 1)) + "\n")
    total = len(body) * (2500 // len(body) + 1)
    html = write_report(run, max_trade_rows=1000).read_text(encoding="utf-8")
    assert f"showing the first 1,000 of {total:,}" in html
    table = html.split('id="s-rsi_reversion"')[1].split('<table class="trades">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 1000


def test_the_sampling_step_is_inferred_for_a_report_without_it(replay_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(replay_dir, run, ignore=shutil.ignore_patterns("events.jsonl"))
    text = (run / "report.json").read_text()
    (run / "report.json").write_text(re.sub(r',\n\s*"equity_interval_ms": \d+', "", text))
    html = write_report(run).read_text(encoding="utf-8")
    assert "every hour of candle close time" in html and "√8,760" in html
