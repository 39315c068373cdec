"""Every `bot` command in README.md's shell blocks runs as printed, in a copy of the project with ../shared beside it.

`bot run`, `bot ctl`, `bot record`, `bot worker` and `--cluster` commands are left to their own tests (they need a daemon, an
exchange or several processes); every other command on the bundled data is run, in README order (a report
reads the replay before it), and must exit 0, or the code its line documents with a comment such as
`# exits 2`.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO

README = REPO / "README.md"
# Commands other tests cover: they start daemons, talk to exchanges or to other processes.
SKIPPED = frozenset({"run", "ctl", "record", "cluster", "worker"})
# What the project copy holds: the code, the strategies, the bundled data and the configs.
COPIED = ("bot", "strategies", "data", "pyproject.toml")
_SHELL_BLOCKS = ("bash", "sh", "shell", "console")
_DOCUMENTED_EXIT = re.compile(r"\bexits? (?:code )?(\d+)\b")
_TERMINAL_VARS = ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass(frozen=True, slots=True)
class ReadmeCommand:
    """One `bot` command line of the README: where it is, its arguments after the program, the exit code it should have."""

    line: int
    text: str
    args: tuple[str, ...]
    exit_code: int

    @property
    def subcommand(self) -> str:
        """The bot subcommand (replay, report, ...)."""
        return self.args[0] if self.args else ""


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every non-empty line inside a fenced shell block."""
    lines = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            continue
        if fence in _SHELL_BLOCKS and stripped:
            lines.append((number, stripped))
    return lines


def bot_commands(text: str) -> tuple[list[ReadmeCommand], list[str]]:
    """The `bot` commands of the README's shell blocks, and the lines that call bot in a way that only works
    inside an activated venv (a bare `bot` or `python -m bot`)."""
    commands: list[ReadmeCommand] = []
    bare: list[str] = []
    for number, line in shell_lines(text):
        words = shlex.split(line, comments=True)
        if words[:1] == [".venv/bin/bot"]:
            args = words[1:]
        elif words[:3] == [".venv/bin/python", "-m", "bot"]:
            args = words[3:]
        elif words[:1] == ["bot"] or (words[:1] in (["python"], ["python3"]) and words[1:3] == ["-m", "bot"]):
            bare.append(f"README.md line {number}: {line!r} needs an activated venv: write .venv/bin/bot (or .venv/bin/python -m bot)")
            continue
        else:
            continue
        comment = line.partition(" #")[2]
        documented = _DOCUMENTED_EXIT.search(comment)
        commands.append(ReadmeCommand(number, line, tuple(args), int(documented.group(1)) if documented else 0))
    return commands, bare


def test_readme_calls_bot_through_the_venv() -> None:
    _, bare = bot_commands(README.read_text())
    assert bare == []


def test_the_parser_finds_commands_and_bare_calls() -> None:
    text = "\n".join(  # noqa: FLY002  one README line per item reads as the README does
        [
            "```bash",
            ".venv/bin/bot replay --config config.json --out runs/x   # a comment",
            ".venv/bin/python -m bot validate --config broken.json     # exits 2",
            "python -m bot replay",
            "bot report runs/x",
            "bash scripts/run.sh",
            "```",
            "```jsonc",
            ".venv/bin/bot not-a-shell-block",
            "```",
        ]
    )
    commands, bare = bot_commands(text)
    assert [(c.line, c.args, c.exit_code) for c in commands] == [
        (2, ("replay", "--config", "config.json", "--out", "runs/x"), 0),
        (3, ("validate", "--config", "broken.json"), 2),
    ]
    assert [b.split(":")[0] for b in bare] == ["README.md line 4", "README.md line 5"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project (code, strategies, bundled data, configs; no .venv, no runs/) with ../shared beside it."""
    root = tmp_path_factory.mktemp("readme")
    copy = root / "project"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=ignore)
        else:
            shutil.copy2(source, copy / name)
    for config in REPO.glob("config*.json"):
        shutil.copy2(config, copy / config.name)
    (root / "shared").symlink_to(REPO.parent / "shared", target_is_directory=True)
    return copy


def test_every_readme_bot_command_runs_as_printed(project: Path) -> None:
    commands, _ = bot_commands(README.read_text())
    # A replay through workers needs a nats-server: tests/cluster/test_cluster_replay.py runs it.
    runnable = [c for c in commands if c.subcommand not in SKIPPED and "--cluster" not in c.args]
    # The README's replay, report, validate and strategies examples, at the least.
    assert {"replay", "report", "validate", "strategies"} <= {c.subcommand for c in runnable}
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_VARS}
    failures = []
    for command in runnable:
        # The test's own interpreter stands in for the project's .venv (the copy has none).
        result = subprocess.run(
            [sys.executable, "-m", "bot", *command.args], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != command.exit_code:
            tail = "\n    ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            failures.append(f"README.md line {command.line}: {command.text}\n  exit {result.returncode}, expected {command.exit_code}:\n    {tail}")
    assert failures == [], "\n".join(failures)


_CITATION = re.compile(r"`((?:[\w/]+\.py)?)::(\w+)`")


def cited_tests(text: str) -> list[tuple[str, str]]:
    """(test file, test name) of every `file.py::test_name` the README cites; `::test_name` continues the file before it."""
    cited = []
    current = ""
    for match in _CITATION.finditer(text):
        current = match.group(1) or current
        cited.append((current, match.group(2)))
    return cited


def test_every_test_the_readme_cites_exists() -> None:
    cited = cited_tests(README.read_text())
    assert len(cited) >= 20
    missing = []
    for file, name in cited:
        matches = [p for p in (REPO / "tests").rglob("*.py") if p.relative_to(REPO).as_posix().endswith(file)]
        if len(matches) != 1 or not re.search(rf"^def {name}\(", matches[0].read_text(), re.MULTILINE):
            missing.append(f"{file}::{name}")
    assert missing == []
