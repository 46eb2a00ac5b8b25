#!/usr/bin/env bash
# Build harness-base:bookworm-py311, a local stand-in for python:3.11-slim-bookworm.
#
# Why: on machines that reach PyPI and a Debian mirror but no container registry
# (CI here), `docker pull python:3.11-slim-bookworm` fails, so Dockerfile.cpu/.gpu
# cannot start from it. This script bootstraps the same Debian release with
# debootstrap and imports it as a local image; pass it to the builds with
# `--build-arg BASE_IMAGE=harness-base:bookworm-py311`.
#
# Differences from the official image, on purpose:
#   - Python is Debian's python3 (3.11.x) in /usr/bin, not a source build in /usr/local;
#     `python` and `python3` both resolve, `python3 -m venv` works.
#   - The host's CA bundle is trusted (HTTPS here goes through an intercepting proxy),
#     and pip/requests/ssl are pointed at the system bundle instead of certifi.
# The tag is deliberately not "python:..." so nobody mistakes it for the official image.
#
# Usage:  docker/build-base-image.sh          (skips if the image exists)
#         FORCE=1 docker/build-base-image.sh  (rebuilds)
# Env:    MIRROR=http://...    Debian mirror (default: the host's apt mirror; refused without one)
#         SECURITY_MIRROR=...  Debian security mirror (default: the host's)
#         IMAGE=name:tag       (default harness-base:bookworm-py311)
#         HOST_CA_BUNDLE=path  (default /etc/ssl/certs/ca-certificates.crt)
# Needs:  root, debootstrap, a running Docker engine (docker/start-engine.sh).
set -euo pipefail

IMAGE="${IMAGE:-harness-base:bookworm-py311}"
SUITE=bookworm
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SYSTEM_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# python3-venv pulls in python3-pip-whl, which is what `python3 -m venv` installs pip
# from, so python3-pip itself is not needed. python-is-python3 provides `python`.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

die() { echo "build-base-image: error: $*" >&2; exit 1; }
log() { echo "build-base-image: $*" >&2; }

# First "URIs:" (deb822) or "deb URL" (one-line) entry whose URL satisfies $1 (a regex).
host_mirror() {
    local pattern="$1"
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null \
        | sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
                 -e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' \
        | tr ' ' '\n' | grep -E "$pattern" | head -n1 || true
}

[[ "$(id -u)" -eq 0 ]] || die "must run as root (debootstrap and chroot need it); try: sudo $0"
command -v debootstrap >/dev/null || die "debootstrap not found; install it: apt-get install -y debootstrap"
docker info >/dev/null 2>&1 || die "Docker engine not answering; start it: docker/start-engine.sh"
[[ -s "$HOST_CA_BUNDLE" ]] || die "host CA bundle $HOST_CA_BUNDLE missing; set HOST_CA_BUNDLE=/path/to/bundle.pem"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already exists; nothing to do (FORCE=1 rebuilds it)"
    exit 0
fi

# The host's own apt sources, or MIRROR / SECURITY_MIRROR: never a built-in address, so
# a site that can reach only its own mirror never tries (and waits on) another one.
MIRROR="${MIRROR:-$(host_mirror '/debian/?$')}"
SECURITY_MIRROR="${SECURITY_MIRROR:-$(host_mirror '/debian-security/?$')}"
[[ -n "$MIRROR" ]] || die "no Debian mirror: the host has no apt source for Debian (/etc/apt/sources.list{,.d}); set MIRROR=http://your.mirror/debian"
[[ -n "$SECURITY_MIRROR" ]] || die "no Debian security mirror in the host's apt sources; set SECURITY_MIRROR=http://your.mirror/debian-security"
MIRROR="${MIRROR%/}"
SECURITY_MIRROR="${SECURITY_MIRROR%/}"

start_s=$SECONDS
workdir="$(mktemp -d /var/tmp/harness-base.XXXXXX)"
rootfs="$workdir/rootfs"

cleanup() {
    # debootstrap and our chroot calls mount proc/sys/dev inside the target; unmount
    # whatever is left (deepest first) so rm cannot walk into the host's /dev or /proc.
    local m
    awk -v r="$rootfs" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r \
        | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT

log "debootstrap $SUITE from $MIRROR into $rootfs (a few minutes)"
if ! debootstrap --variant=minbase --include="$PACKAGES" \
        "$SUITE" "$rootfs" "$MIRROR" >"$workdir/debootstrap.log" 2>&1; then
    tail -n 30 "$workdir/debootstrap.log" >&2
    tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed (log above); check that $MIRROR is reachable, or set MIRROR=http://..."
fi

# The proxy's CA is appended to the host bundle, not kept as a separate file. Extract
# every host certificate the fresh Debian bundle lacks into /usr/local/share/ca-certificates
# so that update-ca-certificates (run by apt whenever ca-certificates is upgraded inside
# the image) keeps trusting them, instead of overwriting a copied bundle.
extra_dir="$rootfs/usr/local/share/ca-certificates"
mkdir -p "$extra_dir"
awk -v out="$workdir/hostcert" '
    /-----BEGIN CERTIFICATE-----/ { n++; f = sprintf("%s.%03d.crt", out, n) }
    f { print > f }
    /-----END CERTIFICATE-----/ { close(f); f = "" }
' "$HOST_CA_BUNDLE"
n_extra=0
for cert in "$workdir"/hostcert.*.crt; do
    [[ -e "$cert" ]] || continue
    body="$(grep -v -e '-----' "$cert" | tr -d '\n')"
    if ! grep -v -e '-----' "$rootfs$SYSTEM_CA_BUNDLE" | tr -d '\n' | grep -qF -- "$body"; then
        n_extra=$((n_extra + 1))
        cp "$cert" "$extra_dir/host-ca-$n_extra.crt"
    fi
done
log "host CA bundle: $n_extra certificate(s) not in Debian's bundle added (the proxy's CA among them)"

# Same sources as the official debian:bookworm image, on the mirror this host uses.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Like the official slim images: no docs/man/locales, no recommends, for later apt runs too.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF

# pip reads /etc/pip.conf in every venv; PIP_CERT (set below) covers `pip --isolated`.
cat >"$rootfs/etc/pip.conf" <<EOF
[global]
cert = $SYSTEM_CA_BUNDLE
EOF

log "applying $SUITE-updates and $SUITE-security, registering host CAs"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
if ! chroot "$rootfs" /bin/sh -euc '
        export DEBIAN_FRONTEND=noninteractive LC_ALL=C
        apt-get update -qq
        apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade
        update-ca-certificates >/dev/null
        apt-get clean
        python3 -c "import ssl, venv, ensurepip; print(\"python\", __import__(\"sys\").version.split()[0])"
    ' >"$workdir/chroot.log" 2>&1; then
    tail -n 30 "$workdir/chroot.log" >&2
    die "updating the bootstrapped system failed (log above); check that $MIRROR and $SECURITY_MIRROR are reachable"
fi
umount "$rootfs/proc"
grep '^python ' "$workdir/chroot.log" >&2 || true

# Trim: package lists and caches are rebuilt by `apt-get update`; docs were never needed.
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,lintian}/* \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
       "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
       "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* \
       "$rootfs/debootstrap"
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -type d -prune \
    -exec rm -rf {} + 2>/dev/null || true
# Docker provides these at run time; the host's copies must not leak into the image.
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
: >"$rootfs/etc/hostname"

log "importing as $IMAGE"
tar --numeric-owner --xattrs -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PIP_CERT=$SYSTEM_CA_BUNDLE" \
    --change "ENV REQUESTS_CA_BUNDLE=$SYSTEM_CA_BUNDLE" \
    --change "ENV SSL_CERT_FILE=$SYSTEM_CA_BUNDLE" \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + $PACKAGES from $MIRROR; host CAs trusted" \
    - "$IMAGE" >/dev/null

docker run --rm "$IMAGE" python -c 'import sys, ssl; print("ok:", sys.version.split()[0], ssl.OPENSSL_VERSION)' >&2 \
    || die "the imported image does not run python; see the messages above"
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
log "built $IMAGE ($((size / 1000000)) MB) in $((SECONDS - start_s)) s"
