"""Numbers in configuration are JSON numbers: finite, never a quoted string or a bool.

Pydantic's lax mode turns "0.1" into 0.1 and true into 1, and its strict mode refuses a JSON
list for a tuple field; so every config model (and every strategy's Params) inherits
`StrictNumbers`, whose one validator checks the raw input of each number, wherever it sits in
a field's type (inside tuples, lists, dicts, optionals), before pydantic coerces it. In a
union, a string passes only an arm that takes it as it is (a str type, Any, a Literal holding it),
a bool only bool, Any or such a Literal: pydantic would turn either into a number otherwise.
"""
from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# The largest price, quantity or balance a config may hold: far above any real one, and small
# enough that sums and products of a few of them stay exact enough and finite.
MAX_AMOUNT: Final = 1e12

Amount = Annotated[float, Field(gt=0, le=MAX_AMOUNT)]
"""A price, quantity, balance or notional: finite, > 0 and <= 1e12."""
Volume = Annotated[float, Field(ge=0, le=MAX_AMOUNT)]
"""A traded volume: finite, >= 0 and <= 1e12."""

Loc = tuple[int | str, ...]
_SEQUENCES: Final = (tuple, list, set, frozenset, Sequence)
_MAPPINGS: Final = (dict, Mapping)


def _number_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return "a string is not a number"
    if isinstance(value, bool):
        return "a boolean is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    return None


def _union_problems(arms: tuple[Any, ...], value: Any, loc: Loc) -> list[tuple[Loc, str, Any]] | None:
    """The problems of the arm that takes `value`: none when one takes it as it is, else the
    first arm's that would convert it; None when no arm takes a value of its kind at all."""
    if value is None:
        return []
    results = [found for arm in arms if arm is not type(None) and (found := _arm_problems(arm, value, loc)) is not None]
    if not results:
        return None
    # Some arm takes the value as it is (a str arm takes a string): pydantic decides the rest.
    if any(not found for found in results):
        return []
    return results[0]


def _arm_problems(arm: Any, value: Any, loc: Loc) -> list[tuple[Loc, str, Any]] | None:
    """The problems `value` has for one arm of a union, or None when the arm does not take a
    value of its kind (a string, a bool, an array, an object) at all.

    An arm that cannot take the value must not count as taking it as it is: pydantic would
    then convert it through a number arm ("0.5" for float | Literal['auto'] becomes 0.5).
    """
    while typing.get_origin(arm) is Annotated:
        arm = typing.get_args(arm)[0]
    if arm is Any:
        return []
    origin = typing.get_origin(arm)
    if origin is Literal:
        # type() as well as ==: True == 1, but a Literal[1] arm does not take true.
        return [] if any(type(choice) is type(value) and choice == value for choice in typing.get_args(arm)) else None
    if origin is Union or origin is types.UnionType:
        return _union_problems(typing.get_args(arm), value, loc)
    if arm is float or arm is int:
        return number_problems(arm, value, loc) if isinstance(value, (str, bool, int, float)) else None
    if isinstance(value, bool):
        return [] if arm is bool else None
    if isinstance(value, str):
        return [] if isinstance(arm, type) and issubclass(arm, str) else None
    kind = origin if isinstance(origin, type) else arm
    if isinstance(value, (Mapping, list, tuple)) and isinstance(kind, type):
        if issubclass(kind, (str, bytes)):
            return None
        takes = (*_MAPPINGS, BaseModel) if isinstance(value, Mapping) else _SEQUENCES
        if not issubclass(kind, takes):
            return None
    return number_problems(arm, value, loc)


def _model_problems(model: type[BaseModel], value: Any, loc: Loc) -> list[tuple[Loc, str, Any]]:
    # A nested model built on StrictNumbers checks itself (with all its other errors at once).
    if issubclass(model, StrictNumbers) or not isinstance(value, Mapping):
        return []
    found: list[tuple[Loc, str, Any]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in value:
            found += number_problems(field.annotation, value[key], (*loc, key))
    return found


def number_problems(annotation: Any, value: Any, loc: Loc = ()) -> list[tuple[Loc, str, Any]]:
    """(location, reason, input) of each number in `value` that is not a finite JSON number,
    where `annotation` (a field's type) wants an int or a float."""
    if annotation is float or annotation is int:
        problem = _number_problem(value)
        return [] if problem is None else [(loc, problem, value)]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return _model_problems(annotation, value, loc)
        return []
    if origin is Annotated:
        return number_problems(args[0], value, loc)
    if origin is Union or origin is types.UnionType:
        return _union_problems(args, value, loc) or []
    if not (args and isinstance(origin, type)):
        return []  # Literal, bare generics: nothing typed as a number inside
    if issubclass(origin, _MAPPINGS) and isinstance(value, Mapping) and len(args) == 2:
        return [problem for key, item in value.items() for problem in number_problems(args[1], item, (*loc, key))]
    if issubclass(origin, _SEQUENCES) and isinstance(value, (list, tuple)):
        fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        # A fixed-length tuple has a type per position; any other sequence one for every item.
        arms = args if fixed else (args[0],) * len(value)
        return [problem for index, (arm, item) in enumerate(zip(arms, value)) for problem in number_problems(arm, item, (*loc, index))]
    return []


class StrictNumbers(BaseModel):
    """Base of configuration models: frozen, unknown fields rejected, numbers only as finite JSON numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        found = number_problems(field.annotation, value)
        if not found:
            return value
        if len(found) == 1 and found[0][0] == ():
            raise PydanticCustomError("number_type", found[0][1])
        # Raised as a ValidationError, pydantic reports each problem at its own place in the field.
        raise ValidationError.from_exception_data(
            cls.__name__,
            [InitErrorDetails(type=PydanticCustomError("number_type", reason), loc=loc, input=item) for loc, reason, item in found],
        )
