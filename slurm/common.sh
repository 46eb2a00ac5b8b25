# Shared by start-cluster.sh and stop-cluster.sh (sourced, not run): the layout of the
# state directory and the daemons of the test cluster.
# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this

STATE=${HARNESS_SLURM_DIR:-/var/tmp/harness-slurm}
case $STATE in /*) ;; *) STATE=$PWD/$STATE ;; esac
STATE=${STATE%/}

NODES=(c1 c2 g1)

CONF=$STATE/slurm.conf        # cgroup.conf, gres.conf, slurmdbd.conf sit beside it
RUN=$STATE/run                # pid files of the Slurm daemons
LOGS=$STATE/log
MUNGE_DIR=$STATE/munge        # own key, socket, pid file, log (owned by user munge)
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
MUNGE_PID=$MUNGE_DIR/munged.pid
DB_DIR=$STATE/mariadb         # own MariaDB: datadir, socket, pid file (owned by user mysql)
DB_DATA=$DB_DIR/data
DB_SOCKET=$DB_DIR/mariadb.sock
DB_PID=$DB_DIR/mariadb.pid

# "pid-file expected-command-name" for every daemon of ours, in stop order.
daemons() {
    local node
    for node in "${NODES[@]}"; do
        printf '%s slurmd\n' "$RUN/slurmd-$node.pid"
    done
    printf '%s slurmctld\n' "$RUN/slurmctld.pid"
    printf '%s slurmdbd\n' "$RUN/slurmdbd.pid"
    printf '%s mariadbd\n' "$DB_PID"
    printf '%s munged\n' "$MUNGE_PID"
}

# The PID in pid file $1 if that process runs and is a $2 (guards against reused PIDs).
live_pid() {
    local pid comm
    [[ -r $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$2" ]] || return 1
    # An exited daemon stays a zombie until its parent (init, not us) reaps it.
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    printf '%s\n' "$pid"
}
