#!/usr/bin/env bash
# Stop what scripts/slurm/up.sh started: SkyPilot's API server for SKY_HOME, the dedicated sshd, slurmd, slurmctld,
# munged. Idempotent. Leaves packages, the user, keys and configs in place, so the next up.sh is fast.
#
#   sudo scripts/slurm/down.sh [SKY_HOME]
#
# The API server is stopped with `sky api stop` (HOME=SKY_HOME), using $OVERNIGHT_SKY_CMD, else the repository's
# .venv/bin/sky, else `sky` on PATH. Clusters still up in SkyPilot are not torn down here: `sky down` them first.
set -uo pipefail

SKY_HOME=${1:-${OVERNIGHT_SKY_HOME:-/tmp/overnight-sky-home}}
STATE=${OVERNIGHT_SLURM_DIR:-/opt/overnight-slurm}
RUSER=${OVERNIGHT_SLURM_USER:-skyslurm}
say() { echo "[slurm-down] $*"; }

sky_cmd=${OVERNIGHT_SKY_CMD:-}
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "$sky_cmd" ] || { [ -x "$repo/.venv/bin/sky" ] && sky_cmd=$repo/.venv/bin/sky; }
[ -n "$sky_cmd" ] || sky_cmd=$(command -v sky || true)
if [ -d "$SKY_HOME/.sky" ] && [ -n "$sky_cmd" ]; then
  say "stopping SkyPilot's API server (HOME=$SKY_HOME) ..."
  HOME=$SKY_HOME SKYPILOT_DISABLE_USAGE_COLLECTION=1 timeout 120 "$sky_cmd" api stop >/dev/null 2>&1 || true
fi
sky_leftovers() {  # SkyPilot helpers that outlive the server for a while (subprocess_daemon.py), run with this HOME
  local p
  for p in $(pgrep -f 'sky/skylet/subprocess_daemon.py' || true); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "HOME=$SKY_HOME" && echo "$p"
  done
}
if [ -n "$(sky_leftovers)" ]; then
  say "waiting for SkyPilot's subprocess daemons to exit ..."
  for _ in $(seq 60); do [ -z "$(sky_leftovers)" ] && break; sleep 0.5; done
  left=$(sky_leftovers); [ -z "$left" ] || kill $left 2>/dev/null
fi

[ "$(id -u)" = 0 ] || { echo "scripts/slurm/down.sh: must run as root to stop the Slurm daemons" >&2; exit 77; }

stop_pidfile() {  # stop the process whose pid is in $2, named $1; wait up to 10 s, then kill -9
  local pid
  [ -s "$2" ] && pid=$(cat "$2") && kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }
  say "stopping $1 (pid $pid) ..."
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f "$2"
}
# Jobs of the dedicated user (SkyPilot clusters not yet downed) would outlive slurmd: cancel them first.
if id "$RUSER" >/dev/null 2>&1 && [ -s /run/slurmctld.pid ] && scontrol ping 2>/dev/null | grep -q "is UP"; then
  if [ -n "$(squeue -h -u "$RUSER" -o %i 2>/dev/null)" ]; then
    say "cancelling Slurm jobs of $RUSER ..."
    scancel -u "$RUSER" 2>/dev/null
    for _ in $(seq 100); do [ -z "$(squeue -h -u "$RUSER" -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
stop_pidfile sshd "$STATE/run/sshd.pid"
stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid
# What is left under the dedicated user (ssh sessions, job leftovers) was started through this setup.
if id "$RUSER" >/dev/null 2>&1; then
  left=$(pgrep -u "$RUSER" || true)
  if [ -n "$left" ]; then
    say "stopping leftover processes of $RUSER: $(echo $left)"
    kill $left 2>/dev/null; sleep 1
    left=$(pgrep -u "$RUSER" || true); [ -z "$left" ] || kill -9 $left 2>/dev/null
  fi
fi
say "stopped"
