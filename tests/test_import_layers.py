"""The package-level import graph of bot/ points one way: every import goes down one declared order, so it is acyclic.

Every import counts: module level, inside functions, under `if TYPE_CHECKING:`, relative, and
`from bot import x`. The nodes are bot's subpackages and top-level modules.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"

# Lowest first; a module may import only from tiers below its own. Names in one tier do not
# import each other. Some (http, cluster) do not exist yet: their place is kept.
ORDER: tuple[tuple[str, ...], ...] = (
    ("errors", "clock", "fmt", "ohlcv", "symbols", "version"),
    ("events",),
    ("bus", "event_codec"),
    ("log", "log_options", "metrics"),
    ("candles",),
    ("config",),
    ("indicators",),
    ("trading",),
    ("services",),
    ("strategy",),
    ("journal",),
    ("live",),
    ("replay",),
    ("report",),
    ("daemon",),
    ("control",),
    ("http",),
    ("cluster",),
    ("kernel",),
    ("sweep", "cluster_args"),
    ("cli",),
    ("__main__",),
)

@dataclass(frozen=True, slots=True)
class Import:
    """One import of a module of the package by a module of another node."""

    source: str
    target: str
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} -> {self.target}"


def nodes_of(root: Path) -> set[str]:
    """The graph's nodes: the package's top-level modules and subpackages."""
    modules = {path.stem for path in root.glob("*.py") if path.stem != "__init__"}
    return modules | {path.parent.name for path in root.glob("*/__init__.py")}


def imports_of(root: Path) -> list[Import]:
    """Every import, anywhere in any module under `root`, of a module of another node."""
    package = root.name
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_init = parts[-1] == "__init__"
        module = parts[:-1] if is_init else parts
        source = _node(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, module, is_init, package):
                target_node = _node(target)
                if target[0] == package and target_node != source:
                    found.append(Import(source, target_node, path, node.lineno))
    return found


def _node(module: Sequence[str]) -> str:
    # The package itself (its __init__) is a node of its own name.
    return module[1] if len(module) > 1 else module[0]


def _targets(node: ast.Import | ast.ImportFrom, module: Sequence[str], is_init: bool, package: str) -> list[tuple[str, ...]]:
    """The modules an import statement names, as absolute dotted parts."""
    if isinstance(node, ast.Import):
        return [tuple(alias.name.split(".")) for alias in node.names]
    if node.level:
        base = tuple(module) if is_init else tuple(module[:-1])
        base = base[: len(base) - (node.level - 1)]
        named = base + (tuple(node.module.split(".")) if node.module else ())
    else:
        named = tuple((node.module or "").split("."))
    if named == (package,):
        # `from bot import x`: x is a subpackage or module, the node imported.
        return [named + (alias.name,) for alias in node.names]
    return [named]


def wrong_way(imports: Iterable[Import], order: Sequence[Sequence[str]]) -> list[Import]:
    """The imports of a node from its own tier or one above it (a node not in the order counts as above all)."""
    tier = {name: index for index, names in enumerate(order) for name in names}
    top = len(order)
    return [i for i in imports if tier.get(i.target, top) >= tier.get(i.source, top)]


def cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_every_module_of_bot_has_its_place_in_the_order() -> None:
    placed = {name for names in ORDER for name in names}
    assert len(placed) == sum(len(names) for names in ORDER), "a name is in ORDER twice"
    assert sorted(nodes_of(BOT) - placed) == [], "add these to ORDER"


def test_every_import_of_bot_goes_down_the_order() -> None:
    wrong = [str(i) for i in wrong_way(imports_of(BOT), ORDER)]
    assert wrong == [], "imports going up the order (or within a tier):\n" + "\n".join(wrong)


def test_the_import_graph_of_bot_is_acyclic() -> None:
    edges = {(i.source, i.target) for i in imports_of(BOT)}
    assert cycles(edges) == []


# The cluster extra's client: only the cluster imports it, and the rest of bot reaches the cluster only when a command needs it.
CLUSTER = BOT / "cluster"


def _module_imports(path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, at module level) of every import in `path`; relative ones resolved within bot."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    found: list[tuple[str, ast.stmt, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, parts[:-1] if parts[-1] == "__init__" else parts, parts[-1] == "__init__", BOT.name):
                found.append((".".join(target), node, id(node) in top))
    return found


def test_only_the_cluster_imports_nats() -> None:
    importers = sorted(
        f"{path.relative_to(BOT.parent)}:{node.lineno}"
        for path in BOT.rglob("*.py")
        for name, node, _ in _module_imports(path)
        if name == "nats" or name.startswith("nats.")
    )
    assert importers, "nothing imports nats: the test no longer checks anything"
    outside = [i for i in importers if not (BOT.parent / i.split(":")[0]).is_relative_to(CLUSTER)]
    assert outside == [], outside


def test_bot_cluster_is_imported_only_inside_the_functions_that_need_it() -> None:
    # Module-level imports of the cluster from other packages would load it (and nats) in every command.
    eager = sorted(
        f"{path.relative_to(BOT.parent)}:{node.lineno}"
        for path in BOT.rglob("*.py")
        if (BOT / "cluster") not in path.parents
        for name, node, at_top in _module_imports(path)
        if at_top and (name == "bot.cluster" or name.startswith("bot.cluster."))
    )
    assert eager == []


# -- the checker itself, on a package written for it ------------------------------------------------

FIXTURE_ORDER = (("low",), ("mid", "side"), ("high",))
FIXTURE = {
    "__init__.py": "",
    "low/__init__.py": "",
    "low/cycle.py": "import pkg.high.api\n",
    "low/lazy.py": "def later() -> None:\n    from pkg.mid import thing\n",
    "low/typed.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.side import Kind\n",
    "mid/__init__.py": "from pkg.low import cycle\n",
    "mid/relative.py": "from ..high import api\nfrom . import thing\nfrom .thing import x\n",
    "mid/thing.py": "from pkg import low\n",
    "side.py": "from pkg import mid\n",
    "high/__init__.py": "",
    "high/api.py": "from pkg.low.cycle import y\nfrom .. import side\n",
}


@pytest.fixture
def fixture_package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    for name, text in FIXTURE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checker_finds_cycles_and_function_local_type_checking_relative_and_package_imports(fixture_package: Path) -> None:
    imports = imports_of(fixture_package)
    wrong = {(i.source, i.target, i.file.relative_to(fixture_package).as_posix(), i.line) for i in wrong_way(imports, FIXTURE_ORDER)}
    assert wrong == {
        ("low", "high", "low/cycle.py", 1),  # module level, closing a cycle
        ("low", "mid", "low/lazy.py", 2),  # inside a function
        ("low", "side", "low/typed.py", 4),  # under TYPE_CHECKING
        ("mid", "high", "mid/relative.py", 1),  # relative, two levels
        ("side", "mid", "side.py", 1),  # `from pkg import mid`, within a tier
    }
    # Down the order: absolute, relative one level up, `from pkg import low`; a module's own node never counts.
    right = {(i.source, i.target) for i in imports} - {(s, t) for s, t, _, _ in wrong}
    assert right == {("mid", "low"), ("high", "low"), ("high", "side")}
    assert cycles((i.source, i.target) for i in imports) == [["high", "low", "mid", "side"]]
    assert nodes_of(fixture_package) == {"low", "mid", "side", "high"}


def test_a_node_missing_from_the_order_counts_as_above_all(fixture_package: Path) -> None:
    wrong = wrong_way(imports_of(fixture_package), (("low",), ("mid",), ("high",)))
    assert {(i.source, i.target) for i in wrong if "side" in (i.source, i.target)} == {("low", "side"), ("high", "side")}
