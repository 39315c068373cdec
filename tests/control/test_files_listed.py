"""Strategy files listed for `strategies`: what `resolve` would take, found with one resolution of the folder instead of one per file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.control.files import FileAccess
from bot.control.protocol import ControlError


def _by_resolve(access: FileAccess, folder: Path) -> list[Path]:
    """The listing as it was made before: every match resolved on its own."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            access.resolve(str(path))
        except ControlError:
            continue
        found.append(path)
    return found


def test_the_listing_takes_what_resolve_takes_links_in_yes_links_out_no(tmp_path: Path) -> None:
    base = tmp_path / "bot"
    folder = base / "strategies"
    folder.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    for name in ("b.json", "a.json", ".hidden.json", "notes.txt", "UPPER.JSON"):
        (folder / name).write_text("{}")
    (folder / "dir.json").mkdir()
    (base / "shared.json").write_text("{}")
    os.symlink(base / "shared.json", folder / "link_in.json")
    os.symlink(outside / "secret.json", folder / "link_out.json")
    os.symlink(outside, folder / "folder_out.json")
    os.symlink(tmp_path / "missing.json", folder / "dangling.json")
    access = FileAccess(base)
    listed = access.listed(folder, "*.json")
    assert listed == _by_resolve(access, folder)
    names = [path.name for path in listed]
    assert "link_in.json" in names and "a.json" in names and "dir.json" in names
    assert "link_out.json" not in names and "folder_out.json" not in names and "notes.txt" not in names


def test_a_folder_that_is_a_link_out_lists_nothing_unless_its_target_is_allowed(tmp_path: Path) -> None:
    base = tmp_path / "bot"
    base.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.json").write_text("{}")
    os.symlink(outside, base / "strategies")
    assert FileAccess(base).listed(base / "strategies", "*.json") == []
    allowed = FileAccess(base, [str(outside)])
    assert allowed.listed(base / "strategies", "*.json") == _by_resolve(allowed, base / "strategies") == [base / "strategies" / "x.json"]


def test_a_folder_that_is_not_there_lists_nothing(tmp_path: Path) -> None:
    assert FileAccess(tmp_path).listed(tmp_path / "strategies", "*.json") == []


def test_with_a_relative_config_folder_a_link_out_is_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bot run --config deploy/config.json`: the config's folder is relative; a link out of it is refused all the same."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "deploy" / "strategies"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text("{}")
    (tmp_path / "secret.json").write_text("{}")
    os.symlink(tmp_path / "secret.json", folder / "evil.json")
    access = FileAccess(Path("deploy"))
    assert [path.name for path in access.listed(Path("deploy") / "strategies", "*.json")] == ["a.json"]
