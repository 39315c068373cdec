"""The habits that keep a fresh clone like the tested one: one async test runner, a lock that pins what runs."""
from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in ("test", "dev", "cluster"):
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def _locked(name: str = "requirements.lock") -> dict[str, str]:
    pins: dict[str, str] = {}
    # A hash-pinned lock continues a requirement over lines ending in a backslash.
    text = (ROOT / name).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line.split(" --hash=", 1)[0])
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{name}: {line!r} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_one_async_runner(pytestconfig: pytest.Config) -> None:
    """pytest-asyncio runs the async tests; anyio's auto-registered plugin stays out."""
    assert pytestconfig.pluginmanager.has_plugin("asyncio")
    assert not pytestconfig.pluginmanager.has_plugin("anyio")


def test_every_declared_dependency_is_locked_within_its_bounds() -> None:
    pins = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not in requirements.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run scripts/lock.sh"
        )


def test_the_venv_holds_what_the_lock_pins() -> None:
    """What the tests run on is what a fresh clone installs (scripts/setup.sh reinstalls when the lock changes)."""
    drift = {}
    for name, pinned in _locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            drift[name] = f"{installed} installed, {pinned} locked"
    assert not drift, f"the venv differs from requirements.lock (run scripts/setup.sh): {drift}"


def test_the_cluster_lock_pins_the_cluster_extra_as_requirements_lock_does_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {canonicalize_name(Requirement(line).name) for line in project["optional-dependencies"]["cluster"]}
    cluster = _locked("requirements-cluster.lock")
    pins = _locked()
    assert set(cluster) == extra, "requirements-cluster.lock holds other packages than the cluster extra: run scripts/lock.sh"
    assert {name: pins.get(name) for name in cluster} == cluster, "the two lock files pin different versions: run scripts/lock.sh"
    text = (ROOT / "requirements-cluster.lock").read_text()
    # Each package needs a hash (--require-hashes refuses one without); the server wheel one per Linux machine.
    assert text.count("--hash=sha256:") >= len(cluster) + 1
