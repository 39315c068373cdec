#!/usr/bin/env python3
"""Write scripts/cluster-demo.sh's config: config.json made to run from another folder, as a hub whose strategies decide on workers.

    python scripts/cluster_demo_config.py config.json run/cluster-demo nats://127.0.0.1:PORT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# A 1m candle every 100 ms: each candle of a strategy on a worker waits for a round trip, and the demo should show trades, not backlog.
DEMO_SPEED = 600


def demo_config(base: Path, folder: Path, url: str) -> dict[str, object]:
    """`base` (config.json) with every path absolute, its socket and journal in `folder`, and a cluster section placing strategies on workers."""
    config: dict[str, Any] = json.loads(base.read_text())
    here = base.resolve().parent
    for source in config["replay"]["candles"].values():
        source["path"] = str(here / source["path"])
    config["strategies"] = [{**entry, "file": str(here / entry["file"])} for entry in config["strategies"]]
    config["strategy_paths"] = [str(here / "strategies"), *(str(here / p) for p in config.get("strategy_paths", []))]
    config["feed"] = {**config.get("feed", {}), "speed": DEMO_SPEED}
    config["control"] = {**config.get("control", {}), "socket": "bot.sock"}
    config["journal"] = {**config.get("journal", {}), "path": "journal.sqlite"}
    config["cluster"] = {"url": url, "name": "demo", "placement": "workers"}
    return config


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base, folder, url = Path(argv[0]), Path(argv[1]), argv[2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(demo_config(base, folder, url), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
