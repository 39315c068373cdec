"""Control messages: request validation and reply shapes; pydantic lives here, at the edge."""
from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from bot.errors import BotError

ErrorCode = Literal[
    "bad_json",
    "bad_request",
    "unknown_command",
    "bad_args",
    "unknown_strategy",
    "invalid_state",
    "invalid_config",
    "slow_reader",
    "internal",
]


class ControlError(BotError):
    """A request that cannot be carried out; becomes an error reply with its code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class CommandArgs(BaseModel):
    """The base of every command's arguments: no field it does not name, frozen, fields also by their alias."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Request(BaseModel):
    """One control request: `{"id", "cmd", "args"}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict: a JSON true must not come back as the id 1.
    id: StrictStr | StrictInt
    cmd: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


# No command takes arguments nested deeper than a few levels; deeper ones would only reach
# recursive code (merging a `set` value) with a stack to exhaust.
MAX_ARGS_DEPTH = 32


def too_deep(value: Any, limit: int = MAX_ARGS_DEPTH) -> bool:
    """Whether `value` nests lists/objects more than `limit` levels deep (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_request(raw: str | bytes) -> tuple[Request | None, dict[str, Any] | None]:
    """Parse one text message into a Request, or return the error reply for it (id echoed when readable).

    Binary frames are refused: the protocol is JSON text, and a client sending bytes has a bug
    best reported at once.
    """
    if isinstance(raw, bytes):
        return None, error_reply(None, "bad_request", "binary frames are not accepted: send each request as a JSON text frame")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, error_reply(None, "bad_json", f"message is not JSON: {exc}")
    if not isinstance(data, dict):
        return None, error_reply(None, "bad_request", "message must be a JSON object with id, cmd and args")
    raw_id = data.get("id")
    request_id = raw_id if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    for key, value in data.items():
        if too_deep(value, MAX_ARGS_DEPTH):
            code: ErrorCode = "bad_args" if key == "args" else "bad_request"
            return None, error_reply(request_id, code, f"{key}: nested more than {MAX_ARGS_DEPTH} levels deep")
    try:
        return Request.model_validate(data), None
    except ValidationError as exc:
        return None, error_reply(request_id, "bad_request", _describe(exc))


def validate_args(model: type[BaseModel], args: dict[str, Any]) -> Any:
    """Validate a command's args with its model; ControlError(bad_args) names each bad field."""
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise ControlError("bad_args", _describe(exc)) from None


def ok_reply(request_id: str | int | None, result: Any) -> dict[str, Any]:
    """A successful reply."""
    return {"id": request_id, "ok": True, "result": result}


def error_reply(request_id: str | int | None, code: ErrorCode, message: str) -> dict[str, Any]:
    """A failed reply."""
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}
