"""The NATS subjects a cluster's hub and workers talk on, under the cluster's id (its name, or a replay run's id)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

# A subject token: no '.', wildcards or spaces; the id and worker names also go into stream and bucket names.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_token(what: str, value: str) -> str:
    """`value` if it can be a subject token, else ValueError naming `what`."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not usable in a NATS subject: 1-64 letters, digits, '_' or '-'")
    return value


def replay_run_id(now: datetime, pid: int) -> str:
    """A replay run's cluster id: its own subjects, so a second run is never mistaken for (or deduplicated as) the first."""
    return f"r-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{pid}"


def turn_subject(cid: str, worker: str) -> str:
    """Where a worker takes the hub's activations, warm-ups and turns (request and reply)."""
    return f"cl.{cid}.turn.{worker}"


def hello_subject(cid: str) -> str:
    """Where the hub takes workers' Hellos (request and reply)."""
    return f"cl.{cid}.hello"


def stop_subject(cid: str) -> str:
    """Where the hub tells its workers to exit."""
    return f"cl.{cid}.stop"


def hub_started_subject(cid: str) -> str:
    """Where a daemon hub says it (re)started: its workers say Hello at once."""
    return f"cl.{cid}.hub"
