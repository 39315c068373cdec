"""The shipped Grafana dashboard and Prometheus alert rules: promtool accepts and unit-tests the rules, and every
expression in either names only metric families a real daemon's /metrics exposes (a renamed metric fails here)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.process import DaemonProcess, write_daemon_config
from tests.http.test_metrics import DEADLINE_S, PROMTOOL, _unavailable, _url
from tests.support import REPO

ALERTS = REPO / "docs" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO / "tests" / "http" / "alerts_test.yml"
DASHBOARD = REPO / "docs" / "grafana" / "bot.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's variables, replaced by values PromQL parses, so promtool can check the dashboard's queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$instance": ".*", "$strategy": ".*", "$currency": "USD"}
# PromQL keywords and constants, which read as identifiers.
_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers less functions, keywords, labels and durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\boffset\s+\S+", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    names = {m.group(1) for m in re.finditer(r"(?<![\w.:$])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)}
    return names - _KEYWORDS


def test_metric_names_reads_selectors_only() -> None:
    expression = 'histogram_quantile(0.99, sum by (strategy, le) (rate(a_bucket{le!="1e9",x=~"$y"}[$__rate_interval]))) > 1e-3'
    assert metric_names(expression) == {"a_bucket"}
    assert metric_names('(time() - b{t="1m"} > 180) unless on (job, instance) c_total{e="paper"} offset 5m') == {"b", "c_total"}
    assert metric_names("absent(d) or vector(0) * 60") == {"d"}


@pytest.fixture(scope="module")
def exposed() -> Iterator[set[str]]:
    """The sample names a real daemon's /metrics can carry: each family's, a histogram's _bucket, _count and _sum.

    Read from its `# TYPE` lines, so families with no sample yet (no position, no order) count too.
    """
    folder = Path(tempfile.mkdtemp(prefix="botd-", dir="/tmp"))  # short: Unix socket paths stay under ~100 characters
    try:
        process = DaemonProcess(write_daemon_config(folder, http={"listen": "127.0.0.1:0"}), stepped=True)
        try:
            process.wait_ready()
            process.step(10)
            with urllib.request.urlopen(_url(process) + "/metrics", timeout=DEADLINE_S) as reply:
                text = reply.read().decode()
        finally:
            assert process.stop() == 0, process.log.read_text()[-3000:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name + suffix for suffix in ("_bucket", "_count", "_sum")} if kind == "histogram" else {name}
    assert "bot_strategy_equity" in names and "bot_strategy_decision_seconds_bucket" in names, text
    yield names


def _rule_expressions(path: Path) -> list[str]:
    """Every `expr:` of a rule file, inline or a `|` block (the rule files here have no YAML library to read them)."""
    lines = path.read_text().splitlines()
    found = []
    for index, line in enumerate(lines):
        key, _, value = line.strip().partition(":")
        if key != "expr" or line.lstrip().startswith("#"):
            continue
        value = value.strip()
        if value not in {"|", ">", "|-", ">-"}:
            found.append(value.strip("'\""))
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for following in lines[index + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        found.append(" ".join(block).strip())
    return found


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        _unavailable("no promtool (Debian's prometheus package)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=DEADLINE_S, check=False)


def test_promtool_checks_the_alert_rules() -> None:
    checked = _promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked
    # Every rule was read here too: the metric-name test below sees each of them.
    assert f"SUCCESS: {len(_rule_expressions(ALERTS))} rules found" in checked.stdout, checked.stdout


def test_promtool_unit_tests_fire_the_alerts_expected() -> None:
    # Failed strategy, feed stale (a recorded feed left out), degraded, decision p99, overruns, metrics absent.
    tested = _promtool("test", "rules", str(ALERTS_TEST))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    alerts = set(re.findall(r"^\s*alertname: (\w+)$", ALERTS_TEST.read_text(), re.MULTILINE))
    assert {"BotStrategyFailed", "BotFeedStale", "BotHealthDegraded"} <= alerts


def test_the_alert_rules_name_only_metrics_the_daemon_exposes(exposed: set[str]) -> None:
    expressions = _rule_expressions(ALERTS)
    used = set().union(*(metric_names(e) for e in expressions))
    assert used <= exposed, sorted(used - exposed)
    assert {"bot_feed_last_candle_timestamp_seconds", "bot_strategy_state", "bot_health", "bot_strategy_decision_seconds_bucket",
            "bot_strategy_overruns_total"} <= used, used
    # The unit tests' input series are the daemon's too: a rename must be made there as well.
    series = {m.split("{", 1)[0] for m in re.findall(r"series: '([^']+)'", ALERTS_TEST.read_text())}
    assert series and series <= exposed, sorted(series - exposed)


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every target's expression and the selector of every label_values() variable query."""
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
            assert selector, variable
            found.append(selector.group(1))
    return found


def test_the_dashboard_is_readable_json_every_panel_titled_on_the_datasource_variable() -> None:
    text = DASHBOARD.read_text()
    dashboard = _dashboard()
    assert text == json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"  # indent 2, as written
    assert 36 <= dashboard["schemaVersion"] <= 41 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel.get("title"), panel
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE and target.get("expr"), (panel["title"], target)
        # No two panels on the same grid cells.
        grid = panel["gridPos"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert grid["x"] + grid["w"] <= 24 and not mine & cells, panel["title"]
        cells |= mine
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_the_dashboard_names_only_metrics_the_daemon_exposes(exposed: set[str]) -> None:
    expressions = _dashboard_expressions(_dashboard())
    used = set().union(*(metric_names(e) for e in expressions))
    assert used <= exposed, sorted(used - exposed)
    # The panels the dashboard is for: equity, realised PnL, decision latency, staleness, candles, overruns and errors,
    # positions, orders, health and states (and the inbox, gaps, reconnects, version).
    assert exposed - {"bot_strategy_decision_seconds_count", "bot_strategy_decision_seconds_sum"} <= used, sorted(exposed - used)


def test_the_dashboard_never_adds_one_currency_to_another() -> None:
    dashboard = _dashboard()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if re.search(r"bot_strategy_(equity|realized_pnl)\b", target["expr"]):
                # One currency per panel, repeated per currency, and never an aggregation across strategies.
                assert 'currency="$currency"' in target["expr"] and panel.get("repeat") == "currency", panel["title"]
                assert not re.search(r"\b(sum|avg|min|max|count)\b", target["expr"]), target["expr"]


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = []
    for index, expression in enumerate(_dashboard_expressions(_dashboard())):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
            expression = expression.replace(variable, value)
        assert "$" not in expression, expression
        rules.append({"alert": f"Query{index}", "expr": expression})
    # JSON is YAML: a rule file of one alert per query, which promtool parses (and rejects on any bad PromQL).
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=2))
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0 and f"SUCCESS: {len(rules)} rules found" in checked.stdout, checked.stdout + checked.stderr
