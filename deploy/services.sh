#!/usr/bin/env bash
# Local services for pms without Docker: installs what is missing and runs
# private PostgreSQL and Redis servers on loopback.
#
#   deploy/services.sh install        install missing packages (apt) and Go modules
#   deploy/services.sh install-test   the same, and what only the tests need (chromium)
#   deploy/services.sh dev CMD...     start the development services (data kept under
#                                     $PMS_STATE, default .pms/), export their URLs, run CMD
#   deploy/services.sh test CMD...    start throwaway services on free ports, export
#                                     PMS_TEST_* URLs, run CMD, stop and delete everything
#   deploy/services.sh load CMD...    as test, but PostgreSQL with its production settings
#                                     (fsync, synchronous commit) and pg_stat_statements,
#                                     for make load; PMS_PG_EXTRA adds server options
#                                     for experiments (e.g. "-c shared_buffers=2GB")
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

PACKAGES=(postgresql postgresql-contrib redis-server libvips-dev libvips-tools pkg-config gcc wrk)
# TEST_PACKAGES are what only the tests need: headless Chromium opens /docs.
TEST_PACKAGES=(chromium)

# apt_install PKG...: installs those of the packages that are missing.
apt_install() {
  local need=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

install_test() {
  install
  if command -v apt-get >/dev/null; then
    apt_install "${TEST_PACKAGES[@]}"
  else
    command -v chromium >/dev/null || log "note: the /docs test needs headless Chromium (chromium); it is skipped without it"
  fi
}

install() {
  if ! command -v apt-get >/dev/null; then
    missing=()
    command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=("PostgreSQL 15+ server with contrib (pg_trgm)")
    command -v redis-server >/dev/null || missing+=("Redis 7 (redis-server)")
    pkg-config --exists vips 2>/dev/null || missing+=("libvips 8.14+ with headers, and pkg-config")
    command -v go >/dev/null || missing+=("Go 1.26")
    command -v wrk >/dev/null || log "note: make load also needs wrk, pgbench (comes with the PostgreSQL server) and taskset (util-linux)"
    if [ ${#missing[@]} -gt 0 ]; then
      log "this is not a Debian/Ubuntu system; please install:"
      printf '  - %s\n' "${missing[@]}" >&2
      exit 1
    fi
  else
    apt_install "${PACKAGES[@]}"
  fi
  command -v go >/dev/null || die "Go is not installed: get Go 1.26 from your package manager or go.dev"
  go mod download
}

pgbin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -n "$d" ]; then echo "$d"; else dirname "$(command -v pg_ctl)"; fi
}

# pg runs a PostgreSQL tool as the postgres OS user when we are root, since
# PostgreSQL refuses to run as root.
pg() {
  # From /: the postgres user may not be able to enter the current directory.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( (RANDOM % 30000) + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

# start_postgres DIR PORT [extra server options]: DIR/data is created when missing.
start_postgres() {
  local dir=$1 port=$2; shift 2
  local bin; bin=$(pgbin)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir"
    (cd / && runuser -u postgres -- test -w "$dir") || die "the postgres user cannot write $dir (is a parent directory private?); set PMS_STATE to a directory it can reach"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initialising PostgreSQL in $dir/data"
    pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions "$@" >/dev/null
  fi
  pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${PG_OPTIONS:-}" >/dev/null ||
    { tail -5 "$dir/server.log" >&2; log "PostgreSQL did not start on port $port"; return 1; }
}

stop_postgres() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && pg "$(pgbin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

createdb_if_missing() {
  local port=$1 name=$2
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 ||
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $name" >/dev/null
}

start_redis() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" "$@" >/dev/null
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return
    sleep 0.05
  done
  log "Redis did not start on port $port (see $dir/redis.log)"
  return 1
}

stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
}

# pg_state STATE prints where the development PostgreSQL keeps its data:
# STATE/postgres, unless we are root and the postgres OS user cannot reach
# STATE (a clone under a private directory such as /root): then a directory
# of its own under /var/lib/pms-dev, named for STATE, so each checkout keeps
# its database across restarts and `make stop` finds it again.
pg_state() {
  local state=$1
  if [ "$(id -u)" = 0 ] && ! (cd / && runuser -u postgres -- test -x "$state"); then
    echo "/var/lib/pms-dev/$(printf '%s' "$state" | sha256sum | cut -c1-16)/postgres"
  else
    echo "$state/postgres"
  fi
}

dev() {
  local state=${PMS_STATE:-.pms}
  mkdir -p "$state"; state=$(cd "$state" && pwd)
  local pgport=${PMS_DEV_POSTGRES_PORT:-54320} redisport=${PMS_DEV_REDIS_PORT:-63790}
  local pgdir; pgdir=$(pg_state "$state")
  if [ "$pgdir" != "$state/postgres" ]; then
    mkdir -p "$(dirname "$pgdir")"; chmod 755 /var/lib/pms-dev "$(dirname "$pgdir")"
    log "PostgreSQL data in $pgdir: the postgres user cannot reach $state"
  fi
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$pgport") 2>/dev/null; then
    start_postgres "$pgdir" "$pgport" || die "PostgreSQL did not start (see $pgdir/server.log)"
  fi
  createdb_if_missing "$pgport" pms
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$redisport") 2>/dev/null; then
    start_redis "$state/redis" "$redisport" --save 60 1 --appendonly yes || die "Redis did not start"
  fi
  log "PostgreSQL on 127.0.0.1:$pgport, Redis on 127.0.0.1:$redisport, data in $state (stop them with 'make stop')"
  export PMS_POSTGRES_URL=${PMS_POSTGRES_URL:-postgres://postgres@127.0.0.1:$pgport/pms?sslmode=disable}
  export PMS_REDIS_ADDR=${PMS_REDIS_ADDR:-127.0.0.1:$redisport}
  export PMS_DEV_STATE_DIR=${PMS_DEV_STATE_DIR:-$state}
  "$@"
}

dev_stop() {
  local state=${PMS_STATE:-.pms}
  [ -d "$state" ] || return 0
  state=$(cd "$state" && pwd)
  stop_postgres "$(pg_state "$state")"
  stop_redis "$state/redis"
  log "development services stopped"
}

# testenv CMD...: throwaway services; PostgreSQL trades durability for speed
# unless PG_DURABLE=1 (which also loads pg_stat_statements), and its log is
# exported as PMS_TEST_POSTGRES_LOG.
testenv() {
  local pgopts="-c max_connections=300" initopts=()
  if [ "${PG_DURABLE:-0}" = 1 ]; then
    pgopts="$pgopts -c shared_preload_libraries=pg_stat_statements -c log_min_duration_statement=100ms -c log_autovacuum_min_duration=0 ${PMS_PG_EXTRA:-}"
  else
    pgopts="-c fsync=off -c synchronous_commit=off -c full_page_writes=off $pgopts"; initopts=(--no-sync)
  fi
  TEST_DIR=$(mktemp -d /tmp/pms-test.XXXXXX); chmod 755 "$TEST_DIR"
  local dir=$TEST_DIR pgport redisport
  # shellcheck disable=SC2317
  cleanup() { stop_redis "$TEST_DIR/redis"; stop_postgres "$TEST_DIR/pg"; rm -rf "$TEST_DIR"; }
  trap cleanup EXIT
  # A free port can be taken between the check and the start: try a few.
  for attempt in 1 2 3; do
    pgport=$(free_port)
    PG_OPTIONS=$pgopts start_postgres "$dir/pg" "$pgport" "${initopts[@]}" && break
    [ "$attempt" = 3 ] && die "PostgreSQL did not start"
  done
  for attempt in 1 2 3; do
    redisport=$(free_port)
    start_redis "$dir/redis" "$redisport" --save "" --appendonly no && break
    [ "$attempt" = 3 ] && die "Redis did not start"
  done
  log "test PostgreSQL on 127.0.0.1:$pgport, Redis on 127.0.0.1:$redisport"
  export PMS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
  export PMS_TEST_REDIS_ADDR="127.0.0.1:$redisport"
  export PMS_TEST_POSTGRES_LOG="$dir/pg/server.log"
  local rc=0
  "$@" || rc=$?
  return $rc
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  install-test) install_test ;;
  dev) dev "$@" ;;
  stop) dev_stop ;;
  test) testenv "$@" ;;
  load) PG_DURABLE=1 testenv "$@" ;;
  *) die "usage: $0 install | install-test | dev CMD... | stop | test CMD... | load CMD..." ;;
esac
