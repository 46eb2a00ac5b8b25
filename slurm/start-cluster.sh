#!/usr/bin/env bash
# Start the single-host test Slurm cluster (three slurmd nodes, slurmctld, slurmdbd with
# its own MariaDB, its own munged). Idempotent: when every daemon of ours already runs it
# only checks the cluster answers; when only some run it stops them and starts afresh.
#
# Everything lives under one state directory: $HARNESS_SLURM_DIR, default
# /var/tmp/harness-slurm. Ports: $HARNESS_SLURM_PORT_BASE (default 16800) + 6 MariaDB,
# + 17 slurmctld, + 19 slurmdbd, + 21/22/23 slurmd c1/c2/g1; none is a package default
# (6817/6818/6819/3306), so daemons the packages may have started on a systemd host and
# this cluster ignore each other. Client commands need only SLURM_CONF=<state>/slurm.conf
# (printed at the end and written to <state>/env.sh); nothing under /etc is changed.
# Needs root (slurmd runs jobs as their users, mknod, cgroups). Run slurm/install.sh first.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm/common.sh
source "$HERE/common.sh"

PORT_BASE=${HARNESS_SLURM_PORT_BASE:-16800}
DB_PORT=$((PORT_BASE + 6))
CTLD_PORT=$((PORT_BASE + 17))
DBD_PORT=$((PORT_BASE + 19))
NODE_PORT_0=$((PORT_BASE + 21))
TIMEOUT=${HARNESS_SLURM_START_TIMEOUT:-60}   # seconds, for each wait below
CLUSTER=harness
ACCT_DB=harness_slurm_acct_db
# Bumped whenever the generated configuration changes: a running cluster whose slurm.conf
# carries an older version is restarted (the no-op path would keep the old settings).
CONFIG_VERSION=2
CONFIG_MARK="# harness test cluster configuration, version $CONFIG_VERSION"
HOST=$(hostname -s)

export SLURM_CONF=$CONF
T_START=$(date +%s.%N)

log() { printf 'start-cluster.sh: %s\n' "$*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

log_tails() {
    local f
    for f in "$LOGS"/*.log "$MUNGE_DIR/munged.log" "$DB_DIR/mariadb.log"; do
        [[ -s $f ]] || continue
        printf '\n----- last lines of %s -----\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
}

die() {
    printf 'start-cluster.sh: error: %s\n' "$*" >&2
    log_tails
    printf '\nstart-cluster.sh: the daemons that did start still run: bash %s/stop-cluster.sh\n' \
        "$HERE" >&2
    exit 1
}

# wait_until SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s; die naming WHAT on timeout.
wait_until() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || die "timed out after ${limit} s waiting for $what"
        sleep 0.2
    done
}

# ---------------------------------------------------------------- preflight
[[ $(id -u) -eq 0 ]] || { echo "start-cluster.sh: run as root" >&2; exit 1; }
for bin in slurmctld slurmd slurmdbd sbatch srun sinfo sacctmgr scontrol munged mungekey \
           mariadbd mariadb mariadb-admin mariadb-install-db; do
    command -v "$bin" >/dev/null || { echo "start-cluster.sh: $bin missing: run slurm/install.sh" >&2; exit 1; }
done

nodes_idle() {
    local out
    out=$(sinfo -h -N -p "$CLUSTER" -o '%N %t' 2>/dev/null) || return 1
    [[ $(awk '$2 == "idle"' <<<"$out" | wc -l) -eq ${#NODES[@]} ]]
}

print_env() {
    printf 'export SLURM_CONF=%s\n' "$CONF" >"$STATE/env.sh"
    log "clients need only this (also in $STATE/env.sh):"
    printf '\n    export SLURM_CONF=%s\n\n' "$CONF"
}

alive=0
for entry in $(daemons | tr ' ' ':'); do
    live_pid "${entry%%:*}" "${entry#*:}" >/dev/null && alive=$((alive + 1))
done
total=$(daemons | wc -l)
if ((alive == total)) && ! grep -qxF "$CONFIG_MARK" "$CONF" 2>/dev/null; then
    log "the running cluster's configuration is older than version $CONFIG_VERSION: restarting it"
    bash "$HERE/stop-cluster.sh"
    alive=0
fi
if ((alive == total)); then
    log "all $total daemons of the cluster in $STATE already run: nothing started"
    wait_until 15 "the running cluster to answer (sinfo)" sinfo -h
    sinfo -N -p "$CLUSTER" -o '%N %t %f %G' | sed 's/^/    /'
    nodes_idle || log "note: not every node is idle (jobs running, or see sinfo -R)"
    print_env
    exit 0
elif ((alive > 0)); then
    log "only $alive of $total daemons run: stopping them to start the cluster afresh"
    bash "$HERE/stop-cluster.sh"
fi

# cgroups: slurmd's proctrack/task cgroup plugins need v1 controllers or a v2 unified mount.
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    log "cgroup v2 (unified): not what this cluster was tested with (v1); trying anyway"
elif [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpuset && -d /sys/fs/cgroup/devices ]]; then
    log "cgroup v1 (memory, cpuset, devices controllers mounted)"
else
    die "no cgroup v1 memory/cpuset/devices controllers under /sys/fs/cgroup, and no cgroup v2"
fi

# ---------------------------------------------------------------- layout
install -d -m 0755 "$STATE" "$RUN" "$LOGS" "$STATE/spool" "$STATE/gpu"
for node in "${NODES[@]}"; do install -d -m 0755 "$STATE/spool/$node"; done

# Fake GPUs: character devices (major 195 = NVIDIA) that exist only for Slurm's device
# cgroup. Never /dev/null: with ConstrainDevices=yes every job on the node would lose it.
for i in 0 1; do
    dev=$STATE/gpu/gpu$i
    [[ -c $dev ]] || { rm -f "$dev"; mknod -m 0666 "$dev" c 195 "$i"; }
done

# Node size from the host (slurmd -C): every node declares the host's CPUs, and its memory
# less 1 GiB for the daemons. The three nodes SHARE these cores and this memory: Slurm
# keeps them apart per node only, so jobs on different nodes can together oversubscribe
# the host. Fine for tests and trials, not for measurements that need a quiet machine.
hw=$(slurmd -C | head -n 1)
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
CPUS=$(field CPUs); SOCKETS=$(field SocketsPerBoard); CORES=$(field CoresPerSocket)
THREADS=$(field ThreadsPerCore); HOST_MEM=$(field RealMemory)
[[ -n $CPUS && -n $SOCKETS && -n $CORES && -n $THREADS && -n $HOST_MEM ]] \
    || die "could not read the node size from 'slurmd -C': $hw"
NODE_MEM=$((HOST_MEM > 2048 ? HOST_MEM - 1024 : HOST_MEM))
DEF_MEM_PER_CPU=$((NODE_MEM / CPUS < 1024 ? NODE_MEM / CPUS : 1024))

# ---------------------------------------------------------------- munge (private)
# Our own munged with its own key and socket; Slurm daemons and clients reach it through
# AuthInfo=socket=... in slurm.conf and slurmdbd.conf. A munged the package may run on
# /run/munge (systemd hosts) is neither used nor touched.
t=$(date +%s.%N)
install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/munge.key"
    log "created a munge key: $MUNGE_DIR/munge.key"
fi
chown munge:munge "$MUNGE_DIR/munge.key"; chmod 0400 "$MUNGE_DIR/munge.key"
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$MUNGE_PID"
runuser -u munge -- munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_PID" --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" \
    || die "munged did not start"
munge_ok() { munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"; }
wait_until "$TIMEOUT" "munged on $MUNGE_SOCKET" munge_ok
log "munged up on $MUNGE_SOCKET ($(since "$t"))"

# ---------------------------------------------------------------- MariaDB (private)
# Own datadir, 127.0.0.1:$DB_PORT, own socket; --no-defaults so /etc/mysql is not read.
t=$(date +%s.%N)
install -d -o mysql -g mysql -m 0750 "$DB_DIR"
if [[ ! -d $DB_DATA/mysql ]]; then
    rm -rf "$DB_DATA"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DATA" --skip-test-db \
        --auth-root-authentication-method=socket >"$DB_DIR/install-db.log" 2>&1 \
        || { cat "$DB_DIR/install-db.log" >&2; die "mariadb-install-db failed"; }
    log "created the MariaDB datadir $DB_DATA"
fi
rm -f "$DB_SOCKET" "$DB_PID"
setsid mariadbd --no-defaults --user=mysql --datadir="$DB_DATA" --socket="$DB_SOCKET" \
    --pid-file="$DB_PID" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --log-error="$DB_DIR/mariadb.log" --innodb-buffer-pool-size=256M \
    --innodb-lock-wait-timeout=900 --max-allowed-packet=16M </dev/null >/dev/null 2>&1 &
db() { mariadb --no-defaults --socket="$DB_SOCKET" -u root "$@"; }
wait_until "$TIMEOUT" "MariaDB on $DB_SOCKET" mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping
wait_until 10 "MariaDB's pid file $DB_PID" live_pid "$DB_PID" mariadbd
PW_FILE=$STATE/db-password
if [[ ! -s $PW_FILE ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$PW_FILE")
fi
DB_PW=$(cat "$PW_FILE")
db -e "CREATE DATABASE IF NOT EXISTS $ACCT_DB;
       CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PW';
       ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PW';
       GRANT ALL PRIVILEGES ON $ACCT_DB.* TO 'slurm'@'127.0.0.1';" \
    || die "could not create the accounting database user"
log "MariaDB up on 127.0.0.1:$DB_PORT ($(since "$t"))"

# Job ids continue after the highest one in accounting: StateSaveLocation starts empty on
# every start, and a reused id would make 'sacct -j ID' report an older job of that id.
last_id=$(db -N -e "SELECT COALESCE(MAX(id_job), 0) FROM $ACCT_DB.${CLUSTER}_job_table" 2>/dev/null || echo 0)
FIRST_JOB_ID=$((last_id + 1))

# ---------------------------------------------------------------- configuration
write_if_changed() {  # write stdin to $1 (mode $2) only if the content differs
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

# slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF; it must be owned by
# SlurmUser and not readable by others (it holds the database password).
write_if_changed "$STATE/slurmdbd.conf" 0600 <<EOF
# Written by slurm/start-cluster.sh: accounting daemon of the test cluster.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PW
StorageLoc=$ACCT_DB
EOF

node_line() {  # NAME INDEX FEATURES [GRES]
    printf 'NodeName=%s NodeHostname=%s NodeAddr=127.0.0.1 Port=%s CPUs=%s Boards=1 ' \
        "$1" "$HOST" "$((NODE_PORT_0 + $2))" "$CPUS"
    printf 'SocketsPerBoard=%s CoresPerSocket=%s ThreadsPerCore=%s RealMemory=%s Feature=%s%s State=UNKNOWN\n' \
        "$SOCKETS" "$CORES" "$THREADS" "$NODE_MEM" "$3" "${4:+ Gres=$4}"
}

write_if_changed "$CONF" 0644 <<EOF
$CONFIG_MARK
# Written by slurm/start-cluster.sh: single-host test cluster. Three slurmd run on this
# one host ($HOST) as nodes c1, c2, g1; they SHARE its $CPUS CPUs and ${HOST_MEM} MB (each
# declares all CPUs and the memory less 1 GiB), so the separation is logical only.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$NODE_PORT_0
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/ctld-state
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
FirstJobId=$FIRST_JOB_ID
ReturnToService=2
# Daemons (and srun) bind to 127.0.0.1, their configured address, not to every interface.
CommunicationParameters=NoInAddrAny
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it a job with no --mem takes a whole node's memory.
DefMemPerCPU=$DEF_MEM_PER_CPU
# Refuse impossible requests at submit instead of leaving them PENDING forever.
EnforcePartLimits=ALL
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# Short: SIGKILL 10 s after SIGTERM; finished jobs leave the controller's list soon.
KillWait=10
MinJobAge=5
OverTimeLimit=0
InactiveLimit=0
# A node whose slurmd stops answering is DOWN (its jobs NODE_FAIL) after 20 s, not the
# default 300 s: tests/test_slurm_backend.py kills a slurmd mid-run.
SlurmdTimeout=20
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# Connections to slurmdbd take their munge socket from here, not from AuthInfo.
AccountingStoragePass=socket=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
GresTypes=gpu
$(node_line c1 0 cpu,small)
$(node_line c2 1 cpu,large)
$(node_line g1 2 gpu gpu:fake:2)
PartitionName=$CLUSTER Nodes=c1,c2,g1 Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=c1,c2 MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=g1 MaxTime=INFINITE State=UP
EOF

write_if_changed "$STATE/cgroup.conf" 0644 <<EOF
# Written by slurm/start-cluster.sh.
CgroupPlugin=autodetect
CgroupAutomount=yes
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
ConstrainDevices=yes
EOF

write_if_changed "$STATE/gres.conf" 0644 <<EOF
# Written by slurm/start-cluster.sh: two fake GPUs on g1 (character devices made with
# mknod; jobs get CUDA_VISIBLE_DEVICES). Never File=/dev/null (ConstrainDevices=yes would
# take /dev/null from every job on the node); Count= without File= drains the node.
AutoDetect=off
NodeName=g1 Name=gpu Type=fake File=$STATE/gpu/gpu[0-1]
EOF

# ---------------------------------------------------------------- slurmdbd + accounting
t=$(date +%s.%N)
rm -f "$RUN/slurmdbd.pid"
slurmdbd || die "slurmdbd did not start"
wait_until "$TIMEOUT" "slurmdbd on 127.0.0.1:$DBD_PORT (sacctmgr show cluster)" sacctmgr -n show cluster
sacct_has() { [[ -n $(sacctmgr -n -P show "$@" 2>/dev/null) ]]; }
sacct_has cluster "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacct_has account harness || sacctmgr -i add account harness Cluster="$CLUSTER" \
    Description="harness tests" Organization=harness >/dev/null
# root (the tests, the harness run as root) plus whoever ran sudo, plus $HARNESS_SLURM_USERS.
for user in root ${SUDO_USER:-} ${HARNESS_SLURM_USERS:-}; do
    id "$user" >/dev/null 2>&1 || { log "note: no user $user: no association"; continue; }
    sacct_has association where user="$user" account=harness cluster="$CLUSTER" \
        || sacctmgr -i add user "$user" Account=harness DefaultAccount=harness Cluster="$CLUSTER" >/dev/null
done
sacct_has association where user=root account=harness cluster="$CLUSTER" \
    || die "the association root/harness/$CLUSTER is missing after sacctmgr add user"
log "slurmdbd up on 127.0.0.1:$DBD_PORT, cluster '$CLUSTER', account 'harness' ($(since "$t"))"

# ---------------------------------------------------------------- slurmctld + slurmd x3
t=$(date +%s.%N)
# A fresh StateSaveLocation on every start: no drained node or stale job survives a restart.
rm -rf "$STATE/ctld-state"
install -d -m 0700 "$STATE/ctld-state"
rm -f "$RUN/slurmctld.pid"
slurmctld -f "$CONF" || die "slurmctld did not start"
wait_until "$TIMEOUT" "slurmctld on 127.0.0.1:$CTLD_PORT (sinfo)" sinfo -h
for node in "${NODES[@]}"; do
    rm -f "$RUN/slurmd-$node.pid"
    slurmd -f "$CONF" -N "$node" || die "slurmd -N $node did not start"
done
nodes_idle_or_die() {
    local bad
    bad=$(sinfo -h -N -p "$CLUSTER" -o '%N %t' 2>/dev/null | awk '$2 ~ /drain|down|fail/' || true)
    [[ -z $bad ]] || die "node(s) not usable: $bad; reasons: $(sinfo -h -R -o '%n: %E' | tr '\n' ';')"
    nodes_idle
}
wait_until "$TIMEOUT" "nodes ${NODES[*]} idle in sinfo" nodes_idle_or_die
for entry in $(daemons | tr ' ' ':'); do
    wait_until 10 "pid file ${entry%%:*}" live_pid "${entry%%:*}" "${entry#*:}"
done
log "slurmctld on :$CTLD_PORT, slurmd c1/c2/g1 on :$NODE_PORT_0-$((NODE_PORT_0 + 2)), all idle ($(since "$t"))"
sinfo -N -p "$CLUSTER" -o '%N %t %c %m %f %G' | sed 's/^/    /'

# ---------------------------------------------------------------- a trivial job
t=$(date +%s.%N)
timeout "$TIMEOUT" srun -N1 -n1 -t 1 --job-name=start-check true \
    || die "the trivial job 'srun -N1 true' did not complete within ${TIMEOUT} s"
log "trivial job 'srun -N1 true' completed ($(since "$t"))"

log "cluster up in $(since "$T_START"); state in $STATE; stop: bash $HERE/stop-cluster.sh [--purge]"
print_env
