"""Strategy discovery: strategy classes found as modules in strategy folders, plus the built-in declarative one."""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.strategy.base import Strategy, StrategyContext, StrategyParams
from bot.strategy.declarative import DeclarativeStrategy

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
BUILTIN_MODULE = "builtin"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One strategy class the catalog can build: its metadata, parameter model and where it came from."""

    name: str
    module: str
    class_name: str
    cls: type[Strategy[Any]]
    path: Path | None

    @property
    def version(self) -> str:
        """The class's declared version."""
        return self.cls.version

    @property
    def description(self) -> str:
        """The class docstring, each paragraph on one line: what it does and when it suits."""
        return "\n\n".join(" ".join(paragraph.split()) for paragraph in self.cls.description().split("\n\n"))

    @property
    def summary(self) -> str:
        """The description's first paragraph, on one line."""
        return " ".join(self.description.split("\n\n")[0].split())

    def defaults(self) -> dict[str, Any]:
        """Default parameters, as a strategy file would write them."""
        return self.cls.Params().model_dump(mode="json")

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the parameters."""
        return self.cls.Params.model_json_schema()

    def validate_params(self, params: dict[str, Any]) -> StrategyParams:
        """Typed parameters; pydantic's ValidationError when they do not fit the schema."""
        return self.cls.Params.model_validate(params)


@dataclass(frozen=True, slots=True)
class DiscoveryProblem:
    """A strategy module or class that could not be used, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class CatalogLookupError(LookupError):
    """A strategy file names a module or class the catalog does not have; says which and why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class StrategyCatalog:
    """The strategies a config can use, by name, by module and by module + class."""

    def __init__(self, entries: Iterable[CatalogEntry] = (), problems: Iterable[DiscoveryProblem] = ()) -> None:
        builtin = CatalogEntry(DeclarativeStrategy.name, BUILTIN_MODULE, DeclarativeStrategy.__name__, DeclarativeStrategy, None)
        self._entries: dict[str, CatalogEntry] = {builtin.name: builtin}
        self._problems: list[DiscoveryProblem] = list(problems)
        # Modules that failed to import, with why: a file naming one gets that reason.
        self._broken: dict[str, str] = {}
        for entry in entries:
            self._entries[entry.name] = entry

    @classmethod
    def discover(cls, folders: Sequence[Path]) -> StrategyCatalog:
        """Import every `*.py` module (not starting with '_') of the folders; broken ones become problems."""
        entries: dict[str, CatalogEntry] = {}
        problems: list[DiscoveryProblem] = []
        broken: dict[str, str] = {}
        seen_modules: dict[str, Path] = {}
        for folder in folders:
            for path in sorted(folder.glob("*.py")):
                stem = path.stem
                if stem.startswith("_"):
                    continue
                if stem == BUILTIN_MODULE:
                    problems.append(DiscoveryProblem(path, f"module {stem!r}: the name is reserved for the built-in strategies; rename the file"))
                    continue
                if stem in seen_modules:
                    problems.append(DiscoveryProblem(path, f"module {stem!r} is also in {seen_modules[stem].parent}; this one is ignored"))
                    continue
                seen_modules[stem] = path
                try:
                    module = _import(path)
                except BaseException as exc:  # a module that raises anything, even SystemExit, is only broken
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    reason = f"cannot import module {stem!r}: {_where(exc, path)}{type(exc).__name__}: {exc}"
                    problems.append(DiscoveryProblem(path, reason))
                    broken[stem] = reason
                    continue
                for strategy_cls in _strategy_classes(module):
                    problem = _check_class(strategy_cls)
                    if problem is not None:
                        problems.append(DiscoveryProblem(path, f"class {strategy_cls.__name__}: {problem}"))
                        continue
                    other = entries.get(strategy_cls.name)
                    if other is not None or strategy_cls.name == DeclarativeStrategy.name:
                        where = other.path if other is not None else "the built-in strategies"
                        problems.append(DiscoveryProblem(path, f"class {strategy_cls.__name__}: name {strategy_cls.name!r} is already used by {where}"))
                        continue
                    entries[strategy_cls.name] = CatalogEntry(strategy_cls.name, stem, strategy_cls.__name__, strategy_cls, path)
        catalog = cls(entries.values(), problems)
        catalog._broken = broken
        return catalog

    @property
    def problems(self) -> list[DiscoveryProblem]:
        """Modules and classes that were skipped, with the reason."""
        return list(self._problems)

    def entries(self) -> list[CatalogEntry]:
        """Every usable strategy, built-in first, then by name."""
        builtin = [e for e in self._entries.values() if e.path is None]
        return builtin + sorted((e for e in self._entries.values() if e.path is not None), key=lambda e: e.name)

    def get(self, name: str) -> CatalogEntry:
        """An entry by strategy name, or by `module` / `module:Class`; CatalogLookupError otherwise."""
        if name in self._entries:
            return self._entries[name]
        module, _, class_name = name.partition(":")
        if module in self._broken or any(e.module == module for e in self._entries.values()):
            return self.resolve(module, class_name or None)
        raise CatalogLookupError("name", f"no strategy named {name!r}")

    def resolve(self, module: str | None, class_name: str | None) -> CatalogEntry:
        """The entry a strategy file names with `module` and `class` (neither: the declarative strategy)."""
        if module is None:
            if class_name is not None:
                raise CatalogLookupError("class", "names a class without a module: set module too")
            return self._entries[DeclarativeStrategy.name]
        if module in self._broken:
            raise CatalogLookupError("module", self._broken[module])
        if module == BUILTIN_MODULE:
            found = [e for e in self._entries.values() if e.path is None]
        else:
            found = [e for e in self._entries.values() if e.module == module]
        if not found:
            # A module whose every class was skipped: say why, not only that it offers nothing.
            skipped = [problem.reason for problem in self._problems if problem.path.stem == module]
            if skipped:
                raise CatalogLookupError("module", f"module {module!r} offers no usable strategy: {'; '.join(skipped)}")
            known = sorted({e.module for e in self._entries.values()})
            raise CatalogLookupError("module", f"no strategy module {module!r} (found: {', '.join(known)})")
        if class_name is None:
            if len(found) > 1:
                classes = ", ".join(e.class_name for e in found)
                raise CatalogLookupError("class", f"module {module!r} has several strategies ({classes}): name one with class")
            return found[0]
        for entry in found:
            if entry.class_name == class_name:
                return entry
        classes = ", ".join(e.class_name for e in found)
        raise CatalogLookupError("class", f"module {module!r} has no strategy class {class_name!r} (it has: {classes})")

    def build(self, module: str | None, class_name: str | None, params: dict[str, Any], context: StrategyContext) -> Strategy[Any]:
        """Instantiate the named strategy with validated parameters for one orchestrator."""
        entry = self.resolve(module, class_name)
        return entry.cls(entry.validate_params(params), context)


def _import(path: Path) -> Any:
    # A name unique to the file, so two folders' modules of the same name never replace each
    # other in sys.modules (pydantic and dataclasses resolve annotations through it).
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"bot_strategy_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"not a loadable Python module: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _where(exc: BaseException, path: Path) -> str:
    """'line N: ' of the deepest frame in the module's own file, when there is one."""
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return f"line {exc.lineno}: "
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if Path(frame.filename) == path]
    return f"line {lines[-1]}: " if lines else ""


def _strategy_classes(module: Any) -> list[type[Strategy[Any]]]:
    """Strategy subclasses defined in the module itself (not imported into it)."""
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Strategy) and obj.__module__ == module.__name__ and not inspect.isabstract(obj) and not obj.__name__.startswith("_")
    ]


def _check_class(cls: type[Strategy[Any]]) -> str | None:
    """Why a strategy class cannot be offered, or None when its metadata and defaults are sound."""
    if not isinstance(cls.name, str) or not _NAME.match(cls.name):
        return f"name must be 1-64 lowercase letters, digits or '_' starting with a letter, got {cls.name!r}"
    if not isinstance(cls.version, str) or not cls.version:
        return "version must be a non-empty string"
    if not cls.description():
        return "needs a docstring saying what it does and when it suits"
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, StrategyParams)):
        # StrategyParams is what refuses quoted numbers, booleans and NaN in a strategy file's params.
        return "Params must subclass bot.strategy.base.StrategyParams (a pydantic model)"
    try:
        cls.Params()
    except ValidationError as exc:
        missing = ", ".join(".".join(str(x) for x in err["loc"]) for err in exc.errors())
        return f"every parameter needs a valid default (Params() fails at: {missing})"
    except Exception as exc:  # noqa: BLE001  a validator with a bug is the module's problem, not discovery's
        return f"Params() raised {type(exc).__name__}: {exc}"
    return None
