#!/usr/bin/env bash
# A replicated ClickHouse on one machine: Debian's ZooKeeper and two clickhouse-server 18.16
# replicas of one shard, cluster name `waybill`, on loopback. Idempotent: what already runs from
# DIR is left alone, what is missing is installed (apt-get, as root) and started.
#
#   ensure-clickhouse-cluster.sh                    install only (zookeeper, clickhouse-server)
#   ensure-clickhouse-cluster.sh start DIR [BASE]   also start ZooKeeper and both replicas with
#                                                   their data, logs and configuration under DIR
#                                                   (BASE 15180): ZooKeeper client port BASE+1;
#                                                   replica N (1, 2): HTTP BASE+4N-2, native TCP
#                                                   BASE+4N-1, interserver BASE+4N, HTTPS BASE+4N+1.
#                                                   Prints the settings Waybill needs
#                                                   (WAYBILL_CLICKHOUSE_URL, _CLUSTER, _USER,
#                                                   _PASSWORD, _CA_FILE, and the HTTPS URLs).
#   ensure-clickhouse-cluster.sh stop DIR           stop what was started from DIR (pid files)
#
# Made on first start under DIR: a random password for the user `waybill` (DIR/password, mode
# 600), and a certificate authority (DIR/tls/ca.crt) that signed the replicas' server
# certificate for 127.0.0.1 and localhost, so clients can be tested with TLS and a private CA.
# The replicas replicate over plain HTTP on loopback. The machine's single ClickHouse on 8124
# (ensure-clickhouse.sh) is not touched.
set -euo pipefail

say() { printf '[ensure-clickhouse-cluster] %s\n' "$*" >&2; }
die() { printf '[ensure-clickhouse-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

cluster=waybill
zk_classpath="/usr/share/java/zookeeper.jar:/usr/share/java/*:/etc/zookeeper/conf"

install() {
  local missing=()
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
  [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root (or install them yourself)"
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    # The packages' postinst may try to start services; without systemd that fails harmlessly.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v java >/dev/null || die "java is missing (Debian's zookeeper package pulls OpenJDK)"
  say "zookeeper and clickhouse-server are installed"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ch_answers() { curl -fsS --max-time 1 "http://127.0.0.1:$1/ping" >/dev/null 2>&1; }

wait_for() {
  local what=$1 seconds=$2 log=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      tail -n 30 "$log" >&2 || true
      die "$what did not come up within ${seconds}s (log: $log)"
    fi
    sleep 0.2
  done
}

# The password and the certificates, made once per DIR.
secrets() {
  local dir=$1
  if [ ! -s "$dir/password" ]; then
    (umask 077 && openssl rand -hex 16 >"$dir/password")
  fi
  local tls=$dir/tls
  if [ ! -s "$tls/server.crt" ]; then
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Waybill test ClickHouse CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
      -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
    chmod 600 "$tls/ca.key" "$tls/server.key"
    say "made a CA ($tls/ca.crt) and a server certificate for localhost and 127.0.0.1"
  fi
}

start_zookeeper() {
  local dir=$1 port=$2 zk=$1/zookeeper
  mkdir -p "$zk/data"
  if running "$zk/pid"; then
    say "ZooKeeper already running (pid $(cat "$zk/pid"))"
    return
  fi
  cat >"$zk/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$zk/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
maxClientCnxns=0
EOF
  # The Debian zkServer.sh wrapper misparses --config: start the server class directly.
  nohup java -Xmx256m -Dzookeeper.log.dir="$zk" -cp "$zk_classpath" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$zk/zoo.cfg" \
    </dev/null >"$zk/zookeeper.log" 2>&1 &
  echo $! >"$zk/pid"
  say "started ZooKeeper on 127.0.0.1:$port (pid $!)"
  wait_for "ZooKeeper" 60 "$zk/zookeeper.log" port_open "$port"
}

replica_config() {
  local dir=$1 base=$2 n=$3 home=$1/r$3
  local password
  password=$(cat "$dir/password")
  mkdir -p "$home/config.d" "$home/users.d" "$home/data/tmp" "$home/log"
  cp /etc/clickhouse-server/config.xml "$home/config.xml"
  cp /etc/clickhouse-server/users.xml "$home/users.xml"
  local replicas="" m
  for m in 1 2; do
    replicas+="
          <replica><host>127.0.0.1</host><port>$((base + 4 * m - 1))</port><user>waybill</user><password>$password</password></replica>"
  done
  cat >"$home/config.d/waybill.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$((base + 4 * n - 2))</http_port>
    <tcp_port>$((base + 4 * n - 1))</tcp_port>
    <interserver_http_port>$((base + 4 * n))</interserver_http_port>
    <https_port>$((base + 4 * n + 1))</https_port>
    <path>$home/data/</path>
    <tmp_path>$home/data/tmp/</tmp_path>
    <logger>
        <log>$home/log/server.log</log>
        <errorlog>$home/log/err.log</errorlog>
    </logger>
    <openSSL>
        <server>
            <certificateFile>$dir/tls/server.crt</certificateFile>
            <privateKeyFile>$dir/tls/server.key</privateKeyFile>
            <dhParamsFile></dhParamsFile>
        </server>
    </openSSL>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$((base + 1))</port></node>
    </zookeeper>
    <macros>
        <shard>01</shard>
        <replica>r$n</replica>
    </macros>
    <remote_servers>
        <$cluster>
            <shard>
                <internal_replication>true</internal_replication>$replicas
            </shard>
        </$cluster>
    </remote_servers>
</yandex>
EOF
  cat >"$home/users.d/waybill.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <users>
        <waybill>
            <password>$password</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </waybill>
    </users>
</yandex>
EOF
  chmod 600 "$home/config.d/waybill.xml" "$home/users.d/waybill.xml"
}

start_replica() {
  local dir=$1 base=$2 n=$3 home=$1/r$3
  local http=$((base + 4 * n - 2))
  if running "$home/ch.pid" && ch_answers "$http"; then
    say "replica r$n already running (pid $(cat "$home/ch.pid"), http $http)"
    return
  fi
  replica_config "$dir" "$base" "$n"
  # Ports and paths are in config.d, not on the command line: the cluster definition decides
  # which replica is this server by the tcp_port of the configuration file. A server killed a
  # moment ago may still be exiting, and the new one then refuses to start ("pid file exists"):
  # launch again until one answers. A server that runs but has not answered 30 s after its
  # launch is wedged (seen here with 18.16 after a stop and start: alive, threads parked on
  # futexes, no listener, nothing logged): it is killed and launched again.
  local deadline=$((SECONDS + 120)) launched=$SECONDS
  until ch_answers "$http"; do
    if ! running "$home/ch.pid"; then
      ((SECONDS < deadline)) || { tail -n 30 "$home/log/err.log" "$home/log/stderr.log" >&2 || true; die "replica r$n did not start within 120s (logs: $home/log/)"; }
      rm -f "$home/ch.pid"
      clickhouse-server --config-file="$home/config.xml" --daemon --pid-file="$home/ch.pid" \
        2>>"$home/log/stderr.log" || true
      launched=$SECONDS
      sleep 1
      continue
    fi
    ((SECONDS < deadline)) || { tail -n 30 "$home/log/err.log" >&2 || true; die "replica r$n did not answer within 120s (logs: $home/log/)"; }
    if ((SECONDS - launched >= 30)); then
      say "replica r$n (pid $(cat "$home/ch.pid")) runs but has not answered for 30 s: killing it and launching it again"
      kill -9 "$(cat "$home/ch.pid")" 2>/dev/null || true
      sleep 1
      continue
    fi
    sleep 0.2
  done
  say "replica r$n is up (http $http, https $((base + 4 * n + 1)))"
}

start() {
  local dir=$1 base=${2:-15180}
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  secrets "$dir"
  start_zookeeper "$dir" $((base + 1))
  start_replica "$dir" "$base" 1
  start_replica "$dir" "$base" 2
  echo "WAYBILL_CLICKHOUSE_URL=http://127.0.0.1:$((base + 2)),http://127.0.0.1:$((base + 6))"
  echo "WAYBILL_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:$((base + 5)),https://localhost:$((base + 9))"
  echo "WAYBILL_CLICKHOUSE_CLUSTER=$cluster"
  echo "WAYBILL_CLICKHOUSE_USER=waybill"
  echo "WAYBILL_CLICKHOUSE_PASSWORD=$(cat "$dir/password")"
  echo "WAYBILL_CLICKHOUSE_CA_FILE=$dir/tls/ca.crt"
}

# Stops the process of a pid file: TERM, then KILL after 30 s; returns once it is gone.
stop_pid() {
  local pidfile=$1 what=$2
  running "$pidfile" || return 0
  local pid deadline=$((SECONDS + 30))
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      kill -9 "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  say "stopped $what"
}

stop() {
  local dir=$1 n
  for n in 1 2; do
    stop_pid "$dir/r$n/ch.pid" "replica r$n"
  done
  stop_pid "$dir/zookeeper/pid" ZooKeeper
}

case "${1:-install}" in
  install) install ;;
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [BASE]"; start "$2" "${3:-15180}" ;;
  stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 [install | start DIR [BASE] | stop DIR]" ;;
esac
