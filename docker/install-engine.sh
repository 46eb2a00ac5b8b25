#!/usr/bin/env bash
# Install Debian's Docker engine (docker.io) and debootstrap if they are missing; idempotent.
#
# Why: the tests run real containers, and a registry-less site builds its base image with
# debootstrap (docker/build-base-image.sh). A fresh Debian machine has neither.
set -euo pipefail

log() { echo "install-engine: $*" >&2; }
die() { echo "install-engine: error: $*" >&2; exit 1; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if (( ${#missing[@]} == 0 )); then
    log "docker.io and debootstrap are installed"
    exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "missing ${missing[*]}; install as root: sudo apt-get install -y ${missing[*]}"
command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get; install Docker Engine for your system"
log "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
