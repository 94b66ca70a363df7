#!/usr/bin/env bash
# Stop the single-machine SLURM cluster that start_local_cluster.sh started (slurmd, slurmctld;
# munged too with --all). Configuration, packages and the job history stay.
set -euo pipefail
RUN_DIR=/run/slurm
say() { echo "[stop_local_cluster] $*"; }

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then exec sudo -n "$0" "$@"; fi
    echo "[stop_local_cluster] ERROR: needs root" >&2; exit 1
fi

stop_daemon() {  # stop_daemon <pidfile> <name>
    local pidfile=$1 name=$2 pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && [[ "$(ps -p "$pid" -o comm=)" == "$name" ]]; then
        say "stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

stop_daemon "$RUN_DIR/slurmd.pid" slurmd
stop_daemon "$RUN_DIR/slurmctld.pid" slurmctld
if [[ "${1:-}" == "--all" ]]; then
    stop_daemon /run/munge/munged.pid munged
fi
say "stopped"
