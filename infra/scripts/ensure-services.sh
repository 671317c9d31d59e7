#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432), Redis (127.0.0.1:6379) and NATS with JetStream
# (127.0.0.1:4222) answer, starting whichever is down and installing it with apt-get first if its
# binary is missing (fresh Debian 12, run as root). Services that already answer are left alone,
# so running it again is harmless. No systemd needed.
set -euo pipefail

say() { printf '[ensure-services] %s\n' "$*"; }
die() { printf '[ensure-services] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (run this script as root, or start it yourself)"
}

apt_updated=0
apt_install() {
  need_root "installing $*"
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# wait_for <what> <seconds> <command...>: polls the command until it succeeds.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not answer within ${seconds}s"
    sleep 0.2
  done
  say "$what is up"
}

# ---------------------------------------------------------------- Postgres
pg_answers() { pg_isready -h 127.0.0.1 -p 5432 -q; }
pg_login_works() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_answers; then
    say "Postgres answers on 127.0.0.1:5432"
  else
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
      apt_install postgresql
    fi
    need_root "starting Postgres"
    local version
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    say "starting Postgres: pg_ctlcluster --skip-systemctl-redirect $version main start"
    # "already running" (exit 2) is fine: the wait below decides.
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for "Postgres" 60 pg_answers
  fi
  # Waybill (and its tests) log in as postgres over TCP without a password, like a CI database.
  if ! pg_login_works; then
    need_root "allowing local password-less logins"
    local hba
    hba=$(su postgres -c "psql -tAc 'SHOW hba_file'")
    say "allowing user postgres from 127.0.0.1/::1 without password in $hba (development setup)"
    sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    su postgres -c "psql -tAc 'SELECT pg_reload_conf()'" >/dev/null
    wait_for "Postgres login as postgres" 10 pg_login_works
  fi
}

# ---------------------------------------------------------------- Redis
redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
  if command -v redis-cli >/dev/null && redis_answers; then
    say "Redis answers on 127.0.0.1:6379"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  # The package may have started it already.
  if redis_answers; then
    say "Redis answers on 127.0.0.1:6379"
    return
  fi
  need_root "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for "Redis" 20 redis_answers
}

# ---------------------------------------------------------------- NATS
# The INFO line a NATS server greets every client with (no monitoring port needed).
nats_info() {
  timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && head -n1 <&3' 2>/dev/null
}
nats_answers() { nats_info | grep -q '^INFO '; }

ensure_nats() {
  if ! nats_answers; then
    [ -x /usr/sbin/nats-server ] || apt_install nats-server
    need_root "starting NATS"
    mkdir -p /var/lib/nats-server
    say "starting NATS with JetStream"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for "NATS" 20 nats_answers
  else
    say "NATS answers on 127.0.0.1:4222"
  fi
  local info
  info=$(nats_info)
  if ! grep -q '"jetstream":true' <<<"$info"; then
    die "the NATS server on 127.0.0.1:4222 runs without JetStream; restart it with -js"
  fi
  say "NATS has JetStream enabled ($(grep -o '"version":"[^"]*"' <<<"$info"))"
}

ensure_postgres
ensure_redis
ensure_nats
say "all services are up"
