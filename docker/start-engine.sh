#!/usr/bin/env bash
# Start the Docker engine (dockerd) if it is not already answering; idempotent.
#
# Why: CI machines here have docker.io installed but no init system running it, and
# they are themselves containers/VMs, where the usual storage driver may not work.
# This script is what `.ci/run` calls (as root) before building or running images.
#
# Storage driver: tries overlay2 first (fast, shares layers), then fuse-overlayfs
# (if installed and /dev/fuse exists), then vfs (always works, but copies every layer
# in full: slow and several times the disk for the TensorFlow images). dockerd checks
# overlay support when it starts, so a driver that cannot work makes it exit early and
# the next one is tried. Measured on the CI machine (Debian 12, ext4 root, kernel 6.18):
# overlay2 works. Force one with STORAGE_DRIVER=vfs (or any dockerd driver name).
#
# Env:  STORAGE_DRIVER       one driver, or a space-separated list tried in order
#       DOCKERD_LOG          log file (default /var/log/dockerd.log)
#       DOCKERD_TIMEOUT_S    seconds to wait for each attempt (default 60)
#       DOCKERD_EXTRA_ARGS   extra dockerd flags, e.g. "--mtu 1400" (word-split)
set -euo pipefail

DRIVERS="${STORAGE_DRIVER:-overlay2 fuse-overlayfs vfs}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
TIMEOUT_S="${DOCKERD_TIMEOUT_S:-60}"
PIDFILE=/var/run/docker.pid

log() { echo "start-engine: $*" >&2; }
die() { echo "start-engine: error: $*" >&2; exit 1; }

answers() { docker info >/dev/null 2>&1; }

show_log_tail() {
    echo "---- last 25 lines of $LOG ----" >&2
    tail -n 25 "$LOG" >&2 2>/dev/null || true
    echo "----" >&2
}

# Wait until the engine answers (0), its process $1 exits (1), or the timeout (2).
wait_for_engine() {
    local pid="$1" waited=0
    while (( waited < TIMEOUT_S )); do
        answers && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 1
        waited=$((waited + 1))
    done
    answers && return 0
    return 2
}

command -v docker >/dev/null || die "docker CLI not found; install it: apt-get install -y docker.io"
if answers; then
    log "engine already running ($(docker info -f 'storage driver {{.Driver}}, server {{.ServerVersion}}'))"
    exit 0
fi

[[ "$(id -u)" -eq 0 ]] || die "dockerd must be started as root; run: sudo $0"
command -v dockerd >/dev/null || die "dockerd not found; install it: apt-get install -y docker.io"
mkdir -p "$(dirname "$LOG")"

# A dockerd that is still starting (or hung) owns the pidfile and the socket; a second
# one would fail with "pid file found, ensure docker is not running". Wait for it instead.
# A pidfile left by a killed dockerd is stale: its pid may be gone, a zombie, or reused.
dockerd_alive() {
    local pid="$1"
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] \
        && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}
if [[ -s "$PIDFILE" ]] && ! dockerd_alive "$(cat "$PIDFILE")"; then
    log "removing the stale pidfile of a dockerd that is gone (pid $(cat "$PIDFILE"))"
    rm -f "$PIDFILE"
fi
if [[ -s "$PIDFILE" ]]; then
    pid="$(cat "$PIDFILE")"
    log "dockerd (pid $pid) is running but not answering yet; waiting up to ${TIMEOUT_S}s"
    if wait_for_engine "$pid"; then
        log "engine answers"
        exit 0
    fi
    show_log_tail
    die "dockerd pid $pid does not answer on /var/run/docker.sock; stop it (kill $pid) and rerun $0"
fi

# shellcheck disable=SC2206  # word-splitting DOCKERD_EXTRA_ARGS is the point
extra_args=(${DOCKERD_EXTRA_ARGS:-})
for driver in $DRIVERS; do
    if [[ "$driver" == fuse-overlayfs ]] \
        && ! { command -v fuse-overlayfs >/dev/null && [[ -c /dev/fuse ]]; }; then
        log "skipping fuse-overlayfs (needs the fuse-overlayfs package and /dev/fuse)"
        continue
    fi
    log "starting dockerd with storage driver $driver (log: $LOG)"
    echo "==== $(date -u +%FT%TZ) start-engine: dockerd --storage-driver=$driver ${extra_args[*]}" >>"$LOG"
    log_offset="$(stat -c %s "$LOG")"
    # setsid: the daemon must outlive this script and the CI step's process group.
    setsid dockerd --storage-driver="$driver" "${extra_args[@]}" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    if wait_for_engine "$pid"; then
        if [[ "$driver" == vfs ]]; then
            log "warning: running on vfs; image builds will be slow and use several times the disk"
        fi
        log "engine up: pid $pid, $(docker info -f 'storage driver {{.Driver}}, server {{.ServerVersion}}, cgroup v{{.CgroupVersion}}')"
        exit 0
    else
        rc=$?
    fi
    if (( rc == 2 )); then
        show_log_tail
        kill "$pid" 2>/dev/null || true
        die "dockerd (pid $pid, driver $driver) did not answer within ${TIMEOUT_S}s; see the log above, or raise DOCKERD_TIMEOUT_S"
    fi
    log "dockerd exited with storage driver $driver:"
    tail -c +"$((log_offset + 1))" "$LOG" | grep -iE 'level=(error|fatal)|failed to start' | tail -n 3 >&2 || true
done

show_log_tail
die "dockerd would not start with any of: $DRIVERS. See $LOG; common fixes: free disk under /var/lib/docker, stop another dockerd, or set STORAGE_DRIVER=vfs"
