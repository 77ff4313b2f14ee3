#!/usr/bin/env bash
# Several Latchkey nodes on one PostgreSQL database behind HAProxy, all on loopback: a mixed
# workload through the load balancer with one node killed (SIGKILL) in the middle, then checks
# against every node directly that nothing was lost (bench/cluster_workload.py does the
# workload and the checks; see its header). Prints a summary; exits non-zero on any loss or
# failed check.
#
#   bench/cluster.sh                       # 3 nodes, 40 s, target/release/latchkey
#   NODES=2 DURATION=15 BIN=target/debug/latchkey bench/cluster.sh
#
# Parameters (environment): NODES (2 or more, default 3), DURATION (seconds of workload,
# default 40), REQUESTS (workload operations at most, default 50000), THREADS (workload
# threads, default 12), VICTIM (the node killed, default 2), KEY_CACHE_SECONDS
# (oidc.key_cache_seconds of every node and of the CLI, default 5), BIN (the server binary,
# default target/release/latchkey, built if missing; target/debug/latchkey works too),
# PG_URL (the PostgreSQL server, default postgres://postgres@127.0.0.1:5432; a fresh database
# is created on it for the run and dropped afterwards), BASE_PORT (HAProxy on it, its statistics
# on +1, the nodes on +11, +12, …; default: the first of 18180, 18280, … whose ports are free).
# Other LATCHKEY_* variables reach every node and the CLI (e.g. LATCHKEY_ARGON2__MEMORY_KIB).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-3}
DURATION=${DURATION:-40}
REQUESTS=${REQUESTS:-50000}
THREADS=${THREADS:-12}
VICTIM=${VICTIM:-2}
KEY_CACHE_SECONDS=${KEY_CACHE_SECONDS:-5}
BIN=${BIN:-target/release/latchkey}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}

# Ports: HAProxy on BASE_PORT, its statistics on +1, the nodes on +11, +12, … Without
# BASE_PORT, the first base from 18180 up (in steps of 100) whose ports are all free.
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() {
  local p
  for p in "$1" $(($1 + 1)) $(seq $(($1 + 11)) $(($1 + 10 + NODES))); do
    in_use "$p" && return 1
  done
  return 0
}
if [ -z "${BASE_PORT:-}" ]; then
  for BASE_PORT in $(seq 18180 100 19980); do ports_free "$BASE_PORT" && break; done
fi
if ! ports_free "$BASE_PORT"; then
  echo "cluster: a port from $BASE_PORT to $((BASE_PORT + 10 + NODES)) is in use; set BASE_PORT" >&2
  exit 2
fi
LB_PORT=$BASE_PORT
STATS_PORT=$((BASE_PORT + 1))

if [ "$NODES" -lt 2 ] || [ "$VICTIM" -lt 1 ] || [ "$VICTIM" -gt "$NODES" ]; then
  echo "cluster: NODES must be 2 or more and VICTIM one of 1..NODES" >&2
  exit 2
fi

SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v haproxy >/dev/null; then
  echo "cluster: installing haproxy"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
fi
if ! command -v psql >/dev/null; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-client >/dev/null
fi
if [ ! -x "$BIN" ]; then
  case "$BIN" in
    target/release/latchkey) cargo build --release --quiet ;;
    target/debug/latchkey) cargo build --quiet ;;
    *) echo "cluster: $BIN is not an executable" >&2; exit 2 ;;
  esac
fi

WORK=$(mktemp -d)
DB_NAME="latchkey_cluster_$$"
DB_URL="$PG_URL/$DB_NAME"
cleanup() {
  for f in "$WORK"/*.pid; do
    [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 0.5
  for f in "$WORK"/*.pid; do
    [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  if [ "$status" != 0 ]; then
    for log in "$WORK"/*.log; do
      [ -e "$log" ] && { echo "--- last lines of $(basename "$log")"; tail -n 20 "$log"; }
    done
  fi
  psql -X -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null || true
  rm -rf "$WORK"
  echo "cluster.sh: ${SECONDS} s in all"
}
trap 'status=$?; cleanup' EXIT

psql -X -q "$PG_URL/postgres" -c "CREATE DATABASE $DB_NAME" >/dev/null

# What every node and the CLI share: the database, the secret key, the public issuer (the load
# balancer), the key cache, and HAProxy as a trusted proxy.
export LATCHKEY_DATABASE__URL="$DB_URL"
export LATCHKEY_SERVER__ISSUER="http://127.0.0.1:$LB_PORT"
export LATCHKEY_SECRETS__SECRET_KEY=$(head -c 64 /dev/urandom | base64 -w0)
export LATCHKEY_OIDC__KEY_CACHE_SECONDS=$KEY_CACHE_SECONDS
export LATCHKEY_SERVER__TRUSTED_PROXIES='["127.0.0.1"]'
export LATCHKEY_SERVER__DATA_DIR="$WORK/cli"
export LATCHKEY_LOG__LEVEL=warn

# One start script per node (also used to restart the killed one); every node starts at once on
# the empty database (migrations and the first signing keys are taken under locks).
servers=""
node_args=()
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + 10 + i))
  cat >"$WORK/node$i.sh" <<EOF
#!/bin/sh
export LATCHKEY_SERVER__LISTEN=127.0.0.1:$port
export LATCHKEY_SERVER__DATA_DIR=$WORK/node$i
exec "$(realpath "$BIN")" serve >>"$WORK/node$i.log" 2>&1
EOF
  chmod +x "$WORK/node$i.sh"
  "$WORK/node$i.sh" &
  echo $! >"$WORK/node$i.pid"
  disown
  servers+="  server node$i 127.0.0.1:$port"$'\n'
  node_args+=(--node "node$i=http://127.0.0.1:$port")
done

cat >"$WORK/haproxy.cfg" <<EOF
global
  maxconn 4000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  # A connection refused by a dead node is retried on another one (the request never reached
  # it); a request in flight when a node dies is answered 502, never replayed.
  retries 3
  option redispatch 1
  # Latchkey reads the client's address from X-Forwarded-For (server.trusted_proxies).
  option forwardfor
frontend latchkey
  bind 127.0.0.1:$LB_PORT
  default_backend nodes
backend nodes
  # Round robin, no stickiness: every request may reach any node.
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz
  http-check expect status 200
  default-server check inter 500ms fall 2 rise 2
  http-response set-header X-Latchkey-Node %s
$servers
listen stats
  bind 127.0.0.1:$STATS_PORT
  stats enable
  stats uri /stats
EOF
haproxy -c -q -f "$WORK/haproxy.cfg"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
echo $! >"$WORK/haproxy.pid"
disown

started=$SECONDS
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + 10 + i))
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    sleep 0.1
  done
  # Ready, and really this node answering (not something else that took the port meanwhile).
  if ! kill -0 "$(cat "$WORK/node$i.pid")" 2>/dev/null ||
    ! curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"; then
    echo "cluster: node$i did not start" >&2
    exit 2
  fi
done
# HAProxy sees each node up after two checks.
for _ in $(seq 1 50); do
  up=$(curl -fsS "http://127.0.0.1:$STATS_PORT/stats;csv" | grep -c '^nodes,node[0-9]*,.*,UP,' || true)
  [ "$up" = "$NODES" ] && break
  sleep 0.1
done

echo "Latchkey cluster: $NODES nodes ($BIN) on PostgreSQL $DB_NAME behind HAProxy $(haproxy -v | head -n1 | awk '{print $3}'),"
echo "  ${DURATION} s of workload with $THREADS threads (at most $REQUESTS operations); node$VICTIM is killed half-way"
echo "  $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs: $(lscpu | sed -nE 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "all nodes ready and UP in HAProxy $((SECONDS - started)) s after they started"
python3 bench/cluster_workload.py \
  --lb "http://127.0.0.1:$LB_PORT" "${node_args[@]}" \
  --victim "node$VICTIM" --victim-pid-file "$WORK/node$VICTIM.pid" \
  --restart "'$WORK/node$VICTIM.sh' & echo \$! >'$WORK/node$VICTIM.pid'" \
  --bin "$BIN" --db-url "$DB_URL" --seconds "$DURATION" --requests "$REQUESTS" \
  --threads "$THREADS" --key-cache-seconds "$KEY_CACHE_SECONDS" \
  --stats-url "http://127.0.0.1:$STATS_PORT/stats"
