#!/usr/bin/env bash
# Install Debian's Slurm, munge, slurmdbd and MariaDB packages for the test cluster
# (slurm/start-cluster.sh). Idempotent: installs only what is missing, prints what it did.
#
# Works the same with or without systemd. Without systemd the packages start nothing;
# with systemd their postinst starts munge/slurmctld/slurmd/mariadb with the /etc configs
# on the default ports (6817/6818/3306). Our cluster never uses those: it has its own
# config dir, ports, pid files, munge key and socket, and MariaDB datadir/port/socket, so
# it neither depends on those daemons nor disturbs them. This script leaves them alone.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get install)"
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12"

installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if installed "$pkg"; then
        log "already installed: $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
    else
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    start=$SECONDS
    log "installing: ${missing[*]} (apt-get --no-install-recommends)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        installed "$pkg" || die "$pkg is still not installed after apt-get install"
        log "installed: $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
    done
    log "install took $((SECONDS - start)) s"
else
    log "nothing to install"
fi

# The binaries start-cluster.sh needs.
for bin in slurmctld slurmd slurmdbd sbatch srun squeue sinfo sacct sacctmgr scontrol scancel \
           munged munge unmunge mariadbd mariadb mariadb-install-db; do
    command -v "$bin" >/dev/null || [[ -x /usr/sbin/$bin ]] || die "$bin not found after install"
done
log "slurm $(slurmd -V | awk '{print $2}'), $(munged --version 2>&1 | head -n1)," \
    "$(mariadbd --version 2>/dev/null | awk '{print $3}' || true)"

# Report (never touch) daemons that run: ours (pid files in the state dir) or others, e.g.
# the ones the packages' postinst starts on a systemd host (default ports, /etc configs).
# shellcheck source=slurm/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ours=" $(daemons | while read -r pidfile name; do live_pid "$pidfile" "$name" || true; done | tr '\n' ' ')"
while read -r pid comm; do
    if [[ $ours == *" $pid "* ]]; then
        log "running: $comm (pid $pid), ours: the test cluster in $STATE"
    else
        log "running: $comm (pid $pid), not ours (package default?): left alone, ours does not use it"
    fi
done < <(ps -eo pid=,comm= | awk '$2 ~ /^(slurmctld|slurmd|slurmdbd|munged|mariadbd|mysqld)$/')
log "done; next: bash slurm/start-cluster.sh"
