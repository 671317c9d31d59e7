#!/usr/bin/env bash
# Starts a local Redis Cluster of Debian's redis-server 7 (the machine's own package, nothing
# downloaded): 3 masters and 3 replicas on loopback, without persistence, for the cluster tests
# and for trying Waybill on a cluster by hand.
#
#   ensure-redis-cluster.sh start DIR [BASE]   node N (1..6) serves clients on BASE+N-1 (BASE 15100)
#                                              and its cluster bus on BASE+N-1+10000; data, config
#                                              and logs under DIR/nN. Nodes already running from DIR
#                                              are left alone, a stopped one is started again (it
#                                              rejoins with its nodes.conf; a stopped master only
#                                              once its replica took over, see await_failover_of),
#                                              and the cluster is
#                                              created only if it was not yet. Waits until every
#                                              slot is served (cluster_state:ok) and every
#                                              replica is in sync with its master, and prints
#                                              REDIS_URL (the masters' URLs, comma-separated).
#   ensure-redis-cluster.sh stop DIR           stops the nodes started from DIR (by their pid files)
#
# Failover is quick on purpose (cluster-node-timeout 2 s): a master killed with -9 is replaced
# by its replica within a few seconds. The machine's Redis on 6379 is not touched.
set -euo pipefail

say() { printf '[ensure-redis-cluster] %s\n' "$*" >&2; }
die() { printf '[ensure-redis-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

command -v redis-server >/dev/null || die "redis-server is not installed (Debian package redis-server)"
command -v redis-cli >/dev/null || die "redis-cli is not installed (Debian package redis-tools)"

NODES=6

node_running() {
  local pidfile=$1
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

cluster_info() {
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r'
}

# A node restarts empty (no persistence). If it was a master still holding its slots, it would
# come back as their master with nothing in them, and its replica would copy that emptiness:
# every key of those slots lost. So a stopped master is started again only once a live replica
# has taken its slots over (it then rejoins as that replica's replica and copies the data back).
# Without a live replica nothing can take over, and it starts at once (its keys are gone either
# way). Gives up waiting after 30 s and starts it anyway, saying so.
await_failover_of() {
  local dir=$1 base=$2 n=$3 me peer view deadline told=""
  [ -f "$dir/n$n/nodes.conf" ] || return 0
  me=$(awk '/myself/ { print $1 }' "$dir/n$n/nodes.conf")
  [ -n "$me" ] || return 0
  deadline=$((SECONDS + 30))
  while :; do
    view=""
    for peer in $(seq 1 $NODES); do
      [ "$peer" = "$n" ] && continue
      view=$(redis-cli -h 127.0.0.1 -p $((base + peer - 1)) cluster nodes 2>/dev/null | tr -d '\r') && [ -n "$view" ] && break
    done
    [ -n "$view" ] || return 0
    # Still a master with slots in the others' view, with a replica alive to take them?
    awk -v me="$me" '$1 == me && $3 ~ /master/ && NF >= 9 { held = 1 }
                     $4 == me && $3 ~ /slave/ && $3 !~ /fail/ { replica = 1 }
                     END { exit !(held && replica) }' <<<"$view" || return 0
    if [ $SECONDS -ge $deadline ]; then
      say "node n$n: its replica has not taken over its slots after 30 s; starting it anyway"
      return 0
    fi
    [ -n "$told" ] || say "node n$n was a master: waiting for its replica to take over its slots before starting it"
    told=yes
    sleep 0.5
  done
}

start() {
  local dir=$1 base=${2:-15100} n port
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  for n in $(seq 1 $NODES); do
    port=$((base + n - 1))
    local pidfile=$dir/n$n/redis.pid
    mkdir -p "$dir/n$n"
    if node_running "$pidfile"; then
      say "node n$n already running (pid $(cat "$pidfile"), port $port)"
      continue
    fi
    await_failover_of "$dir" "$base" "$n"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$pidfile" \
      --dir "$dir/n$n" --logfile "$dir/n$n/redis.log" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/n$n/nodes.conf" \
      --cluster-node-timeout 2000 --cluster-replica-validity-factor 0 \
      </dev/null >/dev/null
    say "started node n$n (port $port)"
  done
  for n in $(seq 1 $NODES); do
    port=$((base + n - 1))
    local deadline=$((SECONDS + 10))
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
      [ $SECONDS -lt $deadline ] || die "node on port $port does not answer (log in $dir/n$n/redis.log)"
      sleep 0.1
    done
  done
  if ! cluster_info "$base" | grep -q '^cluster_slots_assigned:16384'; then
    local addresses=()
    for n in $(seq 1 $NODES); do addresses+=("127.0.0.1:$((base + n - 1))"); done
    say "creating the cluster: ${addresses[*]}"
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
      || die "redis-cli --cluster create failed (see $dir/create.log)"
  fi
  local deadline=$((SECONDS + 30)) ok="" info
  while [ $SECONDS -lt $deadline ]; do
    ok=yes
    for n in $(seq 1 $NODES); do
      info=$(cluster_info $((base + n - 1)))
      # Every node serves every slot and knows all six: the cluster has one view of itself.
      grep -q '^cluster_state:ok' <<<"$info" && grep -q "^cluster_known_nodes:$NODES" <<<"$info" \
        && grep -q '^cluster_slots_ok:16384' <<<"$info" || { ok=""; break; }
    done
    # Every replica has its master's copy (a master killed before that would lose its data).
    if [ -n "$ok" ]; then
      for n in $(seq 1 $NODES); do
        info=$(redis-cli -h 127.0.0.1 -p $((base + n - 1)) info replication 2>/dev/null | tr -d '\r')
        if grep -q '^role:slave' <<<"$info" && ! grep -q '^master_link_status:up' <<<"$info"; then
          ok=""; break
        fi
      done
    fi
    [ -n "$ok" ] && break
    sleep 0.2
  done
  [ -n "$ok" ] || die "the cluster did not reach cluster_state:ok with its replicas in sync within 30 s (logs in $dir/n*/redis.log)"
  say "Redis Cluster of $NODES nodes is up"
  local masters
  masters=$(redis-cli -h 127.0.0.1 -p "$base" cluster nodes | tr -d '\r' \
    | awk '$3 ~ /master/ && $3 !~ /fail/ { split($2, a, "@"); printf "%sredis://%s", sep, a[1]; sep="," }')
  echo "REDIS_URL=$masters"
}

stop() {
  local dir=$1 n
  for n in $(seq 1 $NODES); do
    local pidfile=$dir/n$n/redis.pid
    if node_running "$pidfile"; then
      kill "$(cat "$pidfile")"
      say "stopped node n$n"
    fi
  done
}

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [BASE]"; start "$2" "${3:-15100}" ;;
  stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 start DIR [BASE] | stop DIR" ;;
esac
