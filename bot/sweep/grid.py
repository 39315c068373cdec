"""The variants of a sweep: `--grid PATH=V1,V2,...` options read, checked against the strategy, and crossed."""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any

import orjson

from bot.config.models import StrategyConfig
from bot.errors import BotError, ConfigError, ConfigProblem
from bot.strategy.catalog import CatalogLookupError, StrategyCatalog
from bot.strategy.config_load import changed_strategy

# A strategy id: what config.json and strategy files accept (bot.config.models).
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Fields a variant cannot change: it is named for its grid values, and it runs.
_FIXED = frozenset({"id", "enabled"})


class SweepInputError(BotError):
    """A sweep's command line cannot be run: names the option and the value at fault."""


@dataclass(frozen=True, slots=True)
class Axis:
    """One --grid option: a field path in the strategy's config and the values it takes."""

    path: str
    parts: tuple[str, ...]
    values: tuple[Any, ...]
    option: str

    @property
    def name(self) -> str:
        """The path without its leading `params.`, as a variant's id and a table column name it."""
        return self.path.removeprefix("params.")


@dataclass(frozen=True, slots=True)
class Variant:
    """One point of the grid: its strategy config (its own id) and its value on each axis."""

    spec: StrategyConfig
    values: tuple[Any, ...]


def parse_axis(option: str) -> Axis:
    """`PATH=V1,V2,...` of one --grid; each value is JSON (8, 0.5, true, "x") or else a plain word."""
    where = f"--grid {option}"
    path, equals, listed = option.partition("=")
    path = path.strip()
    if not equals or not path:
        raise SweepInputError(f"{where}: write PATH=VALUE,VALUE,... such as params.fast=8,10,12")
    parts = tuple(path.split("."))
    if any(not part for part in parts):
        raise SweepInputError(f"{where}: {path!r} is not a field path (names joined by dots, such as params.fast)")
    if parts[0] in _FIXED:
        raise SweepInputError(f"{where}: a variant's {parts[0]} is set by the sweep, not by a grid")
    texts = [text.strip() for text in listed.split(",")]
    if not listed.strip():
        raise SweepInputError(f"{where}: no values (the grid would be empty)")
    if any(not text for text in texts):
        raise SweepInputError(f"{where}: an empty value in {listed!r}")
    values = tuple(_value(text) for text in texts)
    if len(set(map(value_text, values))) < len(values):
        raise SweepInputError(f"{where}: a value is given twice")
    return Axis(path, parts, values, option)


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def value_text(value: Any) -> str:
    """A value as it is written in a variant's id and in sweep.csv."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def build_variants(spec: StrategyConfig, axes: list[Axis], catalog: StrategyCatalog, label: str) -> list[Variant]:
    """Every combination of the axes' values, as strategy configs validated as a strategy file is (its params model too).

    SweepInputError, before anything runs, for a path that is not a field of the strategy's
    config or params, a path given twice, and a combination the config or params refuse.
    """
    if not axes:
        raise SweepInputError("--grid: give at least one, such as --grid params.fast=8,10,12")
    seen: dict[str, str] = {}
    for axis in axes:
        if axis.path in seen:
            raise SweepInputError(f"--grid {axis.option}: {axis.path} is already swept by --grid {seen[axis.path]}")
        seen[axis.path] = axis.option
    known = _known_fields(spec, catalog)
    for axis in axes:
        problem = _missing(known, axis.parts)
        if problem is not None:
            raise SweepInputError(f"--grid {axis.option}: {axis.path} is not a field of strategy {spec.id!r}: {problem}")
    given = spec.model_dump(mode="json", exclude_unset=True)
    combinations = list(itertools.product(*(axis.values for axis in axes)))
    ids = _variant_ids(spec.id, axes, combinations)
    variants: list[Variant] = []
    # Each variant's config without its id: values the params model reads alike (8 and 8.0) make one variant.
    made: dict[bytes, tuple[Any, ...]] = {}
    for vid, values in zip(ids, combinations, strict=True):
        fields = copy.deepcopy(given)
        for axis, value in zip(axes, values, strict=True):
            _set(fields, axis.parts, value)
        changes = {key: fields[key] for key in {axis.parts[0] for axis in axes}}
        try:
            variant = changed_strategy(spec, {**changes, "id": vid, "enabled": True}, catalog, label)
        except ConfigError as exc:
            raise refused(spec.id, axes, values, exc.problems) from None
        fingerprint = _fingerprint(variant, catalog)
        if fingerprint in made:
            raise SweepInputError(f"{_chosen(axes, values)}: the same variant as {_chosen(axes, made[fingerprint])}")
        made[fingerprint] = values
        variants.append(Variant(variant, values))
    return variants


def refused(strategy_id: str, axes: list[Axis], values: tuple[Any, ...], problems: list[ConfigProblem]) -> SweepInputError:
    """The error of a variant its strategy or the config refuses: its grid values, then the problems."""
    reasons = "; ".join(f"{p.field or '<file>'}: {p.reason}" for p in problems)
    return SweepInputError(f"{_chosen(axes, values)}: strategy {strategy_id!r} refuses this variant: {reasons}")


def _fingerprint(spec: StrategyConfig, catalog: StrategyCatalog) -> bytes:
    """The variant's config without its id, its params as the strategy reads them (8 and 8.0 alike for an integer)."""
    fields = spec.model_dump(mode="json", exclude={"id"})
    fields["params"] = catalog.resolve(spec.module, spec.class_name).validate_params(spec.params).model_dump(mode="json")
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _chosen(axes: list[Axis], values: tuple[Any, ...]) -> str:
    return " ".join(f"--grid {axis.path}={value_text(value)}" for axis, value in zip(axes, values, strict=True))


def _known_fields(spec: StrategyConfig, catalog: StrategyCatalog) -> dict[str, Any]:
    """Every field the strategy's config has, set or default, its module's params with their defaults."""
    fields = spec.model_dump(mode="json", by_alias=False)
    try:
        defaults = catalog.resolve(spec.module, spec.class_name).defaults()
    except CatalogLookupError:
        defaults = {}
    fields["params"] = _merged(defaults, fields.get("params") or {})
    return fields


def _merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in given.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _missing(tree: Any, parts: tuple[str, ...]) -> str | None:
    """Why `parts` leads nowhere in `tree`; None when it names a field."""
    node = tree
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, dict):
            if part not in node:
                names = ", ".join(sorted(node)) or "none"
                return f"no field {here} (fields there: {names})"
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{here}: not an index of a list of {len(node)}"
            node = node[int(part)]
        else:
            return f"{'.'.join(parts[:depth])} is a value, it has no fields"
    return None


def _set(fields: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node: Any = fields
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _variant_ids(base: str, axes: list[Axis], combinations: list[tuple[Any, ...]]) -> list[str]:
    """`BASE.fast-8.slow-26` (a valid strategy id: no brackets, '=' or ','); BASE.v1, BASE.v2 ... when that is not one."""
    named = [base + "".join(f".{axis.name}-{value_text(value)}" for axis, value in zip(axes, values, strict=True)) for values in combinations]
    if all(_ID.match(vid) for vid in named) and len(set(named)) == len(named):
        return named
    width = len(str(len(combinations)))
    numbered = [f"{base}.v{index:0{width}d}" for index in range(1, len(combinations) + 1)]
    if not all(_ID.match(vid) for vid in numbered):
        raise SweepInputError(f"--strategy {base}: its id is too long to name {len(combinations):,} variants within 64 characters")
    return numbered
