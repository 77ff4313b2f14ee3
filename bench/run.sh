#!/usr/bin/env bash
# Load benchmark: builds release, starts Latchkey on SQLite (default) or PostgreSQL
# (`bench/run.sh postgres`), and drives it with oha over loopback. Every run is bounded in
# request count and in time. Prints a Markdown table for the README.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND=${1:-sqlite}
PORT=${BENCH_PORT:-18080}
BASE="http://127.0.0.1:$PORT"
N=${BENCH_REQUESTS:-20000}        # requests per fast scenario
N_PASSWORD=${BENCH_PASSWORD_REQUESTS:-1000}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
LIMIT=${BENCH_SECONDS:-60}        # hard time limit per scenario

command -v oha >/dev/null || cargo install oha --locked
cargo build --release --quiet
BIN=target/release/latchkey

WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

case "$BACKEND" in
  sqlite) DB_URL="sqlite://$WORK/bench.db" ;;
  postgres)
    DB_NAME=latchkey_bench
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB_NAME" >/dev/null
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB_NAME" >/dev/null
    DB_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME" ;;
  *) echo "usage: bench/run.sh [sqlite|postgres]" >&2; exit 2 ;;
esac

export LATCHKEY_DATABASE__URL="$DB_URL"
export LATCHKEY_SERVER__LISTEN="127.0.0.1:$PORT"
export LATCHKEY_SERVER__ISSUER="$BASE"
export LATCHKEY_SERVER__DATA_DIR="$WORK/data"
export LATCHKEY_SECRETS__SECRET_KEY=$(head -c 64 /dev/urandom | base64 -w0)
export LATCHKEY_LOG__LEVEL=warn
# The benchmark measures throughput, not the brute-force limits.
export LATCHKEY_RATE_LIMITS__FAILED_LOGINS_PER_ACCOUNT=0
export LATCHKEY_RATE_LIMITS__FAILED_LOGINS_PER_IP=0

$BIN migrate >/dev/null
CLIENT_JSON=$($BIN client create --name bench --type confidential \
  --grant-types client_credentials,password --json)
CLIENT_ID=$(echo "$CLIENT_JSON" | sed -nE 's/.*"client_id": "([^"]+)".*/\1/p')
CLIENT_SECRET=$(echo "$CLIENT_JSON" | sed -nE 's/.*"client_secret": "([^"]+)".*/\1/p')
echo "bench-password" | $BIN user create --username bench --email bench@example.com >/dev/null
BASIC="Authorization: Basic $(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)"
FORM="Content-Type: application/x-www-form-urlencoded"

$BIN serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
sleep 1
rss() { awk '/VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/$SERVER/status"; }
IDLE_RSS=$(rss)

TOKEN=$(curl -s -H "$BASIC" -d grant_type=client_credentials "$BASE/o/token/" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')

run() { # name path requests [body]; with a body: POST with client authentication, else GET
  local name=$1 path=$2 n=$3 body=${4:-} out args=()
  if [ -n "$body" ]; then args=(-m POST -H "$BASIC" -H "$FORM" -d "$body"); fi
  out=$(timeout "$LIMIT" oha --no-tui -n "$n" -c "$CONCURRENCY" \
    "${args[@]}" --output-format json "$BASE$path" 2>/dev/null || true)
  echo "$out" > "$WORK/$name.json"
  python3 - "$WORK/$name.json" "$name" "$(rss)" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
s = data["summary"]; p = data["latencyPercentiles"]
codes = data.get("statusCodeDistribution", {})
print(f"| {sys.argv[2]} | {s['requestsPerSec']:.0f} | {p['p50']*1000:.2f} | {p['p99']*1000:.2f} | {sys.argv[3]} | {dict(sorted(codes.items()))} |")
PY
}

echo
echo "Backend: $BACKEND; $(nproc) cores; load generator on the same machine; concurrency $CONCURRENCY"
echo "Idle RSS after start: $IDLE_RSS"
echo
echo "| scenario | requests/s | p50 ms | p99 ms | server RSS after | status codes |"
echo "|---|---|---|---|---|---|"
run client_credentials /o/token/ "$N" "grant_type=client_credentials"
run introspection /o/introspect/ "$N" "token=$TOKEN"
run metadata /.well-known/oauth-authorization-server "$N"
run password_grant /o/token/ "$N_PASSWORD" "grant_type=password&username=bench&password=bench-password"
