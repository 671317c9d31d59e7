#!/usr/bin/env bash
# Makes sure a ClickHouse server answers on 127.0.0.1:${WAYBILL_CLICKHOUSE_HTTP_PORT:-8124}
# (HTTP; native TCP on 9001, interserver 9010), installing Debian's clickhouse-server with apt-get
# if the binary is missing (fresh Debian, run as root) and starting it WITHOUT systemd with its own
# ports and data directory (${WAYBILL_CLICKHOUSE_DIR:-/var/lib/waybill-clickhouse}). A server that
# already answers is left alone, so running it again is harmless. Stop it with
#   kill "$(cat /var/lib/waybill-clickhouse/ch.pid)"
set -euo pipefail

say() { printf '[ensure-clickhouse] %s\n' "$*"; }
die() { printf '[ensure-clickhouse] ERROR: %s\n' "$*" >&2; exit 1; }

port=${WAYBILL_CLICKHOUSE_HTTP_PORT:-8124}
tcp_port=${WAYBILL_CLICKHOUSE_TCP_PORT:-9001}
interserver_port=${WAYBILL_CLICKHOUSE_INTERSERVER_PORT:-9010}
dir=${WAYBILL_CLICKHOUSE_DIR:-/var/lib/waybill-clickhouse}

answers() { curl -fsS --max-time 1 "http://127.0.0.1:$port/ping" >/dev/null 2>&1; }

if answers; then
  say "ClickHouse answers on 127.0.0.1:$port"
  exit 0
fi

if ! command -v clickhouse-server >/dev/null; then
  [ "$(id -u)" = 0 ] || die "installing clickhouse-server needs root (or install it yourself)"
  command -v apt-get >/dev/null || die "apt-get not found: install clickhouse-server yourself"
  say "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  say "apt-get install -y clickhouse-server clickhouse-client"
  # The package's postinst may try to start the service; without systemd that fails harmlessly.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq clickhouse-server clickhouse-client >/dev/null
fi
command -v curl >/dev/null || die "curl is needed to probe ClickHouse"

mkdir -p "$dir/data/tmp" "$dir/log"
# The Debian package runs the server as user clickhouse; as root we run it as root with our own
# directories, which therefore must be ours.
say "starting clickhouse-server (http $port, tcp $tcp_port, data $dir/data)"
clickhouse-server --config-file=/etc/clickhouse-server/config.xml --daemon \
  --pid-file="$dir/ch.pid" -- \
  --http_port="$port" --tcp_port="$tcp_port" --interserver_http_port="$interserver_port" \
  --path="$dir/data/" --tmp_path="$dir/data/tmp/" \
  --logger.log="$dir/log/server.log" --logger.errorlog="$dir/log/err.log"

deadline=$((SECONDS + 60))
until answers; do
  if ((SECONDS >= deadline)); then
    tail -n 30 "$dir/log/err.log" >&2 || true
    die "ClickHouse did not answer on 127.0.0.1:$port/ping within 60s (log: $dir/log/)"
  fi
  sleep 0.2
done
say "ClickHouse is up on 127.0.0.1:$port"
