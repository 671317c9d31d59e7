#!/usr/bin/env bash
# http-probe.sh <host:port> <path>: exits 0 when GET http://<host:port><path> answers 2xx.
# Plain bash (/dev/tcp), so it works where curl is not installed.
set -euo pipefail

addr=${1:?usage: http-probe.sh host:port path}
path=${2:-/health}
host=${addr%:*}
port=${addr##*:}
# shellcheck disable=SC2016 # the inner script expands its own positional parameters
status=$(timeout 3 bash -c '
  exec 3<>"/dev/tcp/$1/$2" || exit 1
  printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
  head -n1 <&3' _ "$host" "$port" "$path" 2>/dev/null) || exit 1
[[ $status =~ ^HTTP/[0-9.]+\ 2[0-9][0-9] ]]
