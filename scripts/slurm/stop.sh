#!/usr/bin/env bash
# Stops the daemons `scripts/slurm/start.sh` started, by their PID files only (TERM, then KILL
# after 5 s).
D=${SLURM_DIR:-/tmp/slurm-local}
stop_pidfile() { # $1: a PID file
    [ -s "$1" ] || return 0
    local p
    p=$(cat "$1")
    if kill -0 "$p" 2>/dev/null; then
        kill -TERM "$p"
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    fi
    rm -f "$1"
}
stop_pidfile "$D/slurmd.pid"
stop_pidfile "$D/slurmctld.pid"
stop_pidfile /run/munge/munged.pid
echo "stop.sh: stopped"
