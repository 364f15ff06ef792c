#!/usr/bin/env bash
# The project's own PostgreSQL 15 cluster for the jobcentre CDC connector, no Docker.
#   postgres.sh install  install postgresql-15 and postgresql-15-wal2json from Debian if missing
#   postgres.sh start    install if needed, initdb once, start, wait until it answers
#   postgres.sh stop     stop it cleanly (fast shutdown)
#   postgres.sh status   exit 0 if it answers
# Settings (environment): BACKBONE_POSTGRES_PORT (15432), BACKBONE_POSTGRES_DATA
# (~/.cache/agency-backbone/postgres-<port>; as root, that of the `postgres` user). The cluster listens on 127.0.0.1 only, trusts
# local connections (a development database) and has wal_level=logical for replication slots.
# Run as root, the cluster runs as the `postgres` OS user, because initdb refuses root.
set -euo pipefail

port=${BACKBONE_POSTGRES_PORT:-15432}
bin=/usr/lib/postgresql/15/bin

# Where the cluster lives. As root it belongs to `postgres`, who cannot enter root's home, so
# it goes in that user's cache (known only once the package created the user).
locate() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/agency-backbone
  if [ "$(id -u)" -eq 0 ] && getent passwd postgres >/dev/null; then
    cache=$(getent passwd postgres | cut -d: -f6)/.cache/agency-backbone
  fi
  data=${BACKBONE_POSTGRES_DATA:-$cache/postgres-$port}
  logfile=$data/postgres.log
}
locate

say() { echo "postgres.sh: $*" >&2; }

install() {
  local missing=()
  [ -x "$bin/pg_ctl" ] || missing+=(postgresql-15)
  [ -f /usr/lib/postgresql/15/lib/wal2json.so ] || missing+=(postgresql-15-wal2json)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >&2
}

# Runs a PostgreSQL program as the cluster's owner: `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

answers() { as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

init() {
  [ -f "$data/PG_VERSION" ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || { say "no postgres OS user after install"; exit 1; }
    runuser -u postgres -- mkdir -p "$data"
  else
    mkdir -p "$data"
  fi
  chmod 700 "$data"
  say "creating a cluster in $data"
  as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >> "$data/postgresql.conf" <<EOF
# agency-backbone: logical decoding for the jobcentre CDC connector, small footprint
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
shared_buffers = 64MB
max_connections = 100
fsync = on
timezone = 'UTC'
EOF
}

start() {
  if answers; then say "already running on 127.0.0.1:$port"; return 0; fi
  install
  locate
  init
  [ "$(id -u)" -eq 0 ] && touch "$logfile" && chown postgres:postgres "$logfile"
  as_owner "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null \
    || { say "PostgreSQL did not start; last lines of $logfile:"; tail -20 "$logfile" >&2; exit 1; }
  for _ in $(seq 1 120); do
    if answers; then say "running on 127.0.0.1:$port (data $data, log $logfile)"; return 0; fi
    sleep 0.5
  done
  say "PostgreSQL did not answer on 127.0.0.1:$port within 60 s; see $logfile"; exit 1
}

stop() {
  if [ ! -f "$data/postmaster.pid" ]; then say "not running"; return 0; fi
  as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  say "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) answers && say "running on 127.0.0.1:$port" || { say "not running"; exit 1; } ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
