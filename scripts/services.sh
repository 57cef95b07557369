#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers for the tests that drive real database clients
# (tests/python/test_real_drivers.py).
#
#   scripts/services.sh start    # start both (or keep the running ones), write build/services.env
#   scripts/services.sh stop     # stop both, remove their data and build/services.env
#   scripts/services.sh status   # exit 0 when both answer
#
# Both listen on free ports of 127.0.0.1 only; PostgreSQL trusts every local connection (user `postgres`,
# database `postgres`), Redis has no password and saves nothing. Their data lives in a runtime directory
# under $TMPDIR (PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user,
# which must be able to reach its data directory). build/services.env holds, as shell assignments:
#   COVET_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:<port>/postgres
#   COVET_TEST_REDIS_URL=redis://127.0.0.1:<port>/0
# Needs the Debian packages `postgresql` and `redis-server` (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ENV_FILE="$ROOT/build/services.env"
RUN_DIR="${TMPDIR:-/tmp}/covet-services-$(id -u)-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
PG_DATA="$RUN_DIR/postgres"
REDIS_DIR="$RUN_DIR/redis"

die() { echo "services: $*" >&2; exit 1; }

pg_bin() {  # the newest installed PostgreSQL's bin directory, else whatever is on PATH
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  command -v initdb >/dev/null || die "PostgreSQL's initdb not found: install the Debian package 'postgresql' (scripts/setup.sh)"
  dirname "$(command -v initdb)"
}

as_pg() {  # run a PostgreSQL tool as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || die "running as root needs the 'postgres' user (the Debian package 'postgresql' creates it)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_alive() { [ -f "$PG_DATA/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
redis_alive() {
  local port=$1
  [ -f "$REDIS_DIR/redis.pid" ] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null \
    && redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG
}

env_value() { sed -n "s/^$1=//p" "$ENV_FILE" 2>/dev/null | tail -n 1; }

running() {  # both servers up and matching the env file
  [ -f "$ENV_FILE" ] || return 1
  local dsn redis
  dsn=$(env_value COVET_TEST_POSTGRES_DSN)
  redis=$(env_value COVET_TEST_REDIS_URL)
  [ -n "$dsn" ] && [ -n "$redis" ] || return 1
  pg_alive || return 1
  as_pg "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$(echo "$dsn" | sed -E 's/.*:([0-9]+)\/.*/\1/')" || return 1
  redis_alive "$(echo "$redis" | sed -E 's/.*:([0-9]+)\/.*/\1/')"
}

stop() {
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
  fi
  if [ -f "$REDIS_DIR/redis.pid" ]; then
    local pid
    pid=$(cat "$REDIS_DIR/redis.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -rf "$RUN_DIR" "$ENV_FILE"
}

start() {
  if running; then
    echo "services: already running ($ENV_FILE)"
    return
  fi
  stop  # leftovers of an earlier run, if any
  command -v redis-server >/dev/null || die "redis-server not found: install the Debian package 'redis-server' (scripts/setup.sh)"
  local bin pg_port redis_port
  bin=$(pg_bin)
  mkdir -p "$PG_DATA" "$REDIS_DIR" "$ROOT/build"
  chmod 755 "$RUN_DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DATA"
  chmod 700 "$PG_DATA"

  as_pg "$bin/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$RUN_DIR/initdb.log" 2>&1 \
    || { cat "$RUN_DIR/initdb.log" >&2; die "initdb failed (log above)"; }
  pg_port=$(free_port)
  # Tests only: nothing is worth fsyncing. The socket directory is the cluster's own (not /var/run).
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 20 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $PG_DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$PG_DATA/server.log" >&2; die "PostgreSQL did not start (log above)"; }

  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes --dir "$REDIS_DIR" \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --save '' --appendonly no >/dev/null \
    || die "redis-server did not start"
  for _ in $(seq 100); do redis_alive "$redis_port" && break; sleep 0.05; done
  redis_alive "$redis_port" || { cat "$REDIS_DIR/redis.log" >&2; die "Redis did not answer (log above)"; }

  cat >"$ENV_FILE" <<EOF
COVET_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:$pg_port/postgres
COVET_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
  echo "services: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port ($ENV_FILE)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
