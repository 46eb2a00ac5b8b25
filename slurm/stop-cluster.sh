#!/usr/bin/env bash
# Stop the single-host test Slurm cluster started by slurm/start-cluster.sh: every daemon
# of ours by the PID in its pid file (slurmd c1/c2/g1, slurmctld, slurmdbd, MariaDB,
# munged), waiting for each to exit; then remove the empty slurm_<node> cgroup folders
# slurmd leaves behind. Idempotent. --purge also deletes the state directory
# ($HARNESS_SLURM_DIR, default /var/tmp/harness-slurm). Daemons the packages may have
# started (default ports, /etc configs) are not ours and are left alone.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm/common.sh
source "$HERE/common.sh"

PURGE=0
for arg in "$@"; do
    case $arg in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "stop-cluster.sh: unknown argument $arg (usage: stop-cluster.sh [--purge])" >&2; exit 2 ;;
    esac
done

log() { printf 'stop-cluster.sh: %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "stop-cluster.sh: run as root" >&2; exit 1; }

# stop PIDFILE NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop() {
    local pid i
    pid=$(live_pid "$1" "$2") || { rm -f "$1"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        [[ -d /proc/$pid ]] || break
        # a zombie has exited: its parent (not us) reaps it
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
        sleep 0.2
    done
    if [[ -d /proc/$pid ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
        log "$2 (pid $pid) still runs after 30 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    fi
    rm -f "$1"
    log "stopped $2 (pid $pid)"
    stopped=$((stopped + 1))
}

stopped=0
if [[ -d $STATE ]]; then
    # Jobs first, so slurmd can end their steps and clean their cgroups while it still runs.
    if live_pid "$RUN/slurmctld.pid" slurmctld >/dev/null; then
        export SLURM_CONF=$CONF
        if [[ -n $(timeout 10 squeue -h -o %i 2>/dev/null) ]]; then
            log "cancelling the jobs still in squeue"
            timeout 10 scancel --full --quiet --state=PENDING 2>/dev/null || true
            for user in $(timeout 10 squeue -h -o %u 2>/dev/null | sort -u); do
                timeout 10 scancel --full --quiet --user="$user" 2>/dev/null || true
            done
            for ((i = 0; i < 100; i++)); do   # KillWait (10 s) plus some
                [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null) ]] && break
                sleep 0.2
            done
        fi
    fi
    while read -r pidfile name; do
        stop "$pidfile" "$name"
    done < <(daemons)
fi
log "$stopped daemon(s) stopped"

# cgroup folders slurmd made (cgroup v1: <controller>/slurm_<node>/...). A process still
# in one belongs to a job step of ours that outlived its slurmd: killed. Then rmdir,
# deepest first (it removes empty folders only); a folder still in use is reported.
# The folders are named by node only: those of a node whose slurmd still runs (another
# state directory's cluster, say) are left alone.
slurmd_runs() {
    local pid
    for pid in $(pgrep -x slurmd 2>/dev/null || true); do
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qx -- "$1" && return 0
    done
    return 1
}
if [[ -d /sys/fs/cgroup ]]; then
    mapfile -t dirs < <(for node in "${NODES[@]}"; do
        if slurmd_runs "$node"; then
            log "a slurmd for node $node still runs (not from $STATE): its cgroup folders are kept" >&2
            continue
        fi
        find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "slurm_$node" 2>/dev/null
    done)
    if ((${#dirs[@]})); then
        pids=$(find "${dirs[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)
        if [[ -n $pids ]]; then
            log "killing leftover job processes in our cgroups: ${pids//$'\n'/ }"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 1
        fi
        left=()
        for dir in "${dirs[@]}"; do
            find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
            [[ -d $dir ]] && left+=("$dir")
        done
        if ((${#left[@]})); then
            log "warning: cgroup folders still in use, not removed: ${left[*]}"
        else
            log "removed ${#dirs[@]} slurm_<node> cgroup folder(s)"
        fi
    fi
fi

if ((PURGE)) && [[ -d $STATE ]]; then
    # Only a directory start-cluster.sh wrote (guards against a mistyped HARNESS_SLURM_DIR).
    if ! grep -qs 'Written by slurm/start-cluster.sh' "$CONF" && [[ -n $(ls -A "$STATE") ]]; then
        echo "stop-cluster.sh: $STATE has no slurm.conf of ours: not deleting it" >&2
        exit 1
    fi
    rm -rf -- "$STATE"
    log "purged $STATE"
fi
