#!/usr/bin/env bash
# The cluster on this machine in one command: a nats-server (JetStream, loopback, a free port), the daemon as
# hub (config.json's strategies, paper, bundled candles, cluster.placement "workers") and two workers w1 and
# w2; once every strategy decides on a worker, `bot ctl status` shows them spread over both. Ctrl-C stops
# everything (`--once`: stop right after that status). Everything lives in run/cluster-demo/ (a fresh journal
# each time; CLUSTER_DEMO_DIR names another folder). Needs only what scripts/setup.sh --cluster installs.
set -euo pipefail
cd "$(dirname "$0")/.."
once=0
for arg in "$@"; do
  case "$arg" in
    --once) once=1 ;;
    *) echo "usage: scripts/cluster-demo.sh [--once]" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh --cluster
demo="${CLUSTER_DEMO_DIR:-run/cluster-demo}"
rm -rf "$demo"
mkdir -p "$demo"
pids=()
server=
stop_all() {
  # Hub and workers first (SIGTERM: graceful; the workers give their leases up), the server once they are gone.
  # ${pids[@]+...}: an empty array under set -u is an error in bash before 4.4.
  for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
}
trap stop_all EXIT INT TERM

# A free loopback port, from the kernel.
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/nats-server -js -a 127.0.0.1 -p "$port" -sd "$demo/nats" >"$demo/nats.log" 2>&1 &
server=$!
.venv/bin/python scripts/cluster_demo_config.py config.json "$demo" "nats://127.0.0.1:$port"
config="$demo/config.json"
for name in w1 w2; do
  .venv/bin/bot worker --config "$config" --name "$name" >"$demo/$name.log" 2>&1 &
  pids+=("$!")
done
.venv/bin/bot run --config "$config" >"$demo/hub.log" 2>&1 &
hub=$!
pids+=("$hub")
echo "nats-server on 127.0.0.1:$port, hub and workers w1, w2 started; logs in $demo/"

# Until every active strategy has decided on a worker (and both workers hold some).
.venv/bin/python - "$config" <<'EOF'
import sys
import time

import anyio

from bot.control.client import ControlClient, DaemonNotRunning
from bot.kernel.daemon import socket_path_of
from bot.strategy.config_load import load_config


async def spread(config: str) -> None:
    socket = socket_path_of(load_config(config))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            async with ControlClient(socket) as client:
                status = (await client.call("status"))["result"]
        except (OSError, KeyError, DaemonNotRunning):
            await anyio.sleep(0.5)
            continue
        minds = status.get("cluster", {}).get("minds", {})
        active = {sid for sid, s in status["strategies"].items() if s["state"] == "active"}
        placed = minds.get("minds", {})
        if active and active <= set(placed) and len({m["worker"] for m in placed.values()}) == 2:
            return
        await anyio.sleep(0.5)
    sys.exit(f"the strategies did not spread over both workers within 120 s: see the logs beside {config}")


anyio.run(spread, sys.argv[1])
EOF
.venv/bin/bot ctl --config "$config" status
if [ "$once" = 1 ]; then
  exit 0
fi
echo "Ctrl-C stops the hub, the workers and the server."
wait "$hub"
