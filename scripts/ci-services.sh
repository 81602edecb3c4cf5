#!/usr/bin/env bash
# Install and start what the docker tests need: a Docker daemon and a registry on 127.0.0.1:5000.
#
# Idempotent: installs only missing packages, starts only what does not answer, and waits (bounded)
# until both answer. Run as root on Debian (bookworm):  bash scripts/ci-services.sh
# Environment: FCBENCH_STATE_DIR (default /var/lib/fcbench-ci) holds logs, the registry config and
# its storage; FCBENCH_SERVICES_TIMEOUT (default 60) bounds each wait in seconds.
set -euo pipefail

STATE_DIR="${FCBENCH_STATE_DIR:-/var/lib/fcbench-ci}"
TIMEOUT="${FCBENCH_SERVICES_TIMEOUT:-60}"
SOCK=/var/run/docker.sock
REGISTRY_ADDR=127.0.0.1:5000

say() { echo "ci-services: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (it installs packages and starts dockerd); try: sudo bash $0"
    exit 1
fi
mkdir -p "$STATE_DIR"

# ---- packages -----------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" tini >"$STATE_DIR/apt.log" 2>&1 \
        || { say "apt-get install failed; see $STATE_DIR/apt.log"; tail -20 "$STATE_DIR/apt.log"; exit 1; }
else
    say "packages present (docker.io, docker-registry, debootstrap)"
fi

docker_answers() { curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }
registry_answers() { curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; }

wait_for() {  # wait_for NAME CHECK LOG
    local name=$1 check=$2 log=$3 i
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        if $check; then return 0; fi
        sleep 0.1
    done
    say "$name did not answer within ${TIMEOUT}s; last lines of $log:"
    tail -20 "$log" || true
    exit 1
}

# ---- docker daemon ------------------------------------------------------------------------
if docker_answers; then
    say "dockerd already answers on $SOCK"
else
    say "starting dockerd (log: $STATE_DIR/dockerd.log)"
    # No bridge and no iptables: containers use host networking, every server stays on loopback.
    nohup dockerd --iptables=false --ip6tables=false --bridge=none --host "unix://$SOCK" \
        >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/dockerd.pid"
    wait_for dockerd docker_answers "$STATE_DIR/dockerd.log"
    say "dockerd answers (pid $(cat "$STATE_DIR/dockerd.pid"))"
fi

# ---- registry on loopback -----------------------------------------------------------------
if registry_answers; then
    say "registry already answers on $REGISTRY_ADDR"
else
    mkdir -p "$STATE_DIR/registry"
    cat >"$STATE_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    say "starting docker-registry on $REGISTRY_ADDR (log: $STATE_DIR/registry.log)"
    nohup docker-registry serve "$STATE_DIR/registry.yml" >"$STATE_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/registry.pid"
    wait_for registry registry_answers "$STATE_DIR/registry.log"
    say "registry answers (pid $(cat "$STATE_DIR/registry.pid"))"
fi

say "ready: docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), registry http://$REGISTRY_ADDR"
