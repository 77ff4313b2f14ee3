#!/usr/bin/env bash
# Load benchmark: builds release, starts Latchkey on SQLite (default) or PostgreSQL
# (`bench/run.sh postgres`), and drives it with oha over loopback. Every run is bounded in
# request count and in time. Prints a Markdown table for the README.
# BENCH_ONLY=<scenario> runs one scenario (e.g. BENCH_ONLY=hostile_registrations).
# Authorization-code exchanges need one single-use code per request: they are fetched
# beforehand (a logged-in session, GET /o/authorize/ N times) and sent with wrk and
# bench/token_exchange.lua, each code at most once.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND=${1:-sqlite}
PORT=${BENCH_PORT:-18080}
BASE="http://127.0.0.1:$PORT"
N=${BENCH_REQUESTS:-20000}        # requests per fast scenario
N_PASSWORD=${BENCH_PASSWORD_REQUESTS:-1000}
N_ARGON2=${BENCH_ARGON2_VERIFICATIONS:-200} # argon2id-only verifications beside the password grant
N_CODES=${BENCH_CODES:-3000}       # authorization codes exchanged per ID-token algorithm
CONCURRENCY=${BENCH_CONCURRENCY:-32}
LIMIT=${BENCH_SECONDS:-60}        # hard time limit per scenario
ONLY=${BENCH_ONLY:-}
N_PROBE=${BENCH_PROBES:-1000}      # /healthz probes, one every 10 ms, idle and under the flood
N_FLOOD=${BENCH_FLOOD_REQUESTS:-20000} # hostile registrations at most…
FLOOD_SECONDS=${BENCH_FLOOD_SECONDS:-20} # …and for at most this long
FLOOD_CONCURRENCY=${BENCH_FLOOD_CONCURRENCY:-64}
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

[ "$ONLY" = hostile_registrations ] || command -v oha >/dev/null || cargo install oha --locked
if ! command -v wrk >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
# BENCH_BIN runs another build of the server (e.g. an older commit's, for a comparison).
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet
BIN=${BENCH_BIN:-target/release/latchkey}

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
# The login limits stay at their defaults: only failed logins count, so the password-grant run
# (right password, 32 connections) is never refused.
# The hostile-registration flood stands for many client addresses: from one address,
# accounts.registrations_per_ip refuses all but the first few attempts before any check runs.
export LATCHKEY_ACCOUNTS__REGISTRATIONS_PER_IP=0
# Codes are fetched before they are exchanged (up to $LIMIT s of fetching): 10 minutes, the
# RFC 6749 §4.1.2 maximum, instead of the default 60 s.
export LATCHKEY_TOKENS__AUTHORIZATION_CODE_SECONDS=600

$BIN migrate >/dev/null
CLIENT_JSON=$($BIN client create --name bench --type confidential \
  --grant-types client_credentials,password --json)
CLIENT_ID=$(echo "$CLIENT_JSON" | sed -nE 's/.*"client_id": "([^"]+)".*/\1/p')
CLIENT_SECRET=$(echo "$CLIENT_JSON" | sed -nE 's/.*"client_secret": "([^"]+)".*/\1/p')
echo "bench-password" | $BIN user create --username bench --email bench@example.com \
  --first-name Bench --last-name User >/dev/null
basic() { echo "Authorization: Basic $(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
BASIC=$(basic "$CLIENT_ID" "$CLIENT_SECRET")
FORM="Content-Type: application/x-www-form-urlencoded"

# OpenID Connect: one authorization-code client per ID-token algorithm, no consent page, PKCE
# (required for confidential clients too) with a fixed S256 pair.
REDIRECT_URI=http://127.0.0.1:9/cb
REDIRECT_URI_Q=http%3A%2F%2F127.0.0.1%3A9%2Fcb
VERIFIER=latchkey-bench-code-verifier-0123456789-abcdefghijklmnopqrstuvwxyz
CHALLENGE=$(python3 -c 'import base64, hashlib, sys
print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$VERIFIER")
declare -A OIDC_ID OIDC_SECRET
for alg in RS256 ES256; do
  json=$($BIN client create --name "bench $alg" --type confidential \
    --grant-types authorization_code --redirect-uri "$REDIRECT_URI" --scopes openid,profile,email \
    --skip-authorization --id-token-alg "$alg" --json)
  OIDC_ID[$alg]=$(echo "$json" | sed -nE 's/.*"client_id": "([^"]+)".*/\1/p')
  OIDC_SECRET[$alg]=$(echo "$json" | sed -nE 's/.*"client_secret": "([^"]+)".*/\1/p')
done

$BIN serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
sleep 1
rss() { awk '/VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/$SERVER/status"; }
IDLE_RSS=$(rss)

TOKEN=$(curl -s -H "$BASIC" -d grant_type=client_credentials "$BASE/o/token/" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# The user logs in once (hosted login page, cookie jar); its session then gets codes.
JAR=$WORK/cookies
CSRF=$(curl -s -c "$JAR" "$BASE/accounts/login/" |
  sed -nE 's/.*name="csrf_token" value="([^"]+)".*/\1/p')
LOGIN=$(curl -s -o /dev/null -w '%{http_code}' -b "$JAR" -c "$JAR" --data-urlencode "csrf_token=$CSRF" \
  -d username=bench -d password=bench-password -d next=/ "$BASE/accounts/login/")
[ "$LOGIN" = 303 ] || { echo "login failed: HTTP $LOGIN" >&2; exit 1; }

codes() { # client_id count file: authorization codes for the logged-in user, one per line
  local query="response_type=code&client_id=$1&redirect_uri=$REDIRECT_URI_Q&scope=openid%20profile%20email&state=x&code_challenge=$CHALLENGE&code_challenge_method=S256"
  # One curl, one keep-alive connection, $2 requests; each answer is a 302 to the redirect URI.
  awk -v u="$BASE/o/authorize/?$query" -v n="$2" \
    'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }' \
    > "$WORK/authorize.curl"
  timeout "$LIMIT" curl -s -b "$JAR" -K "$WORK/authorize.curl" -w '%{redirect_url}\n' |
    sed -nE 's/^[^?]*\?(.*&)?code=([^&]+).*/\2/p' > "$3" || true
  local got; got=$(wc -l < "$3")
  [ "$got" = "$2" ] || echo "note: $got of $2 authorization codes for $1" >&2
}

row() { # name [expected status]: a table row from $WORK/name.json (oha's JSON, or the same shape from bench/*.lua)
  python3 - "$WORK/$1.json" "$1" "$(rss)" "${2:-200}" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
s = data["summary"]; p = data["latencyPercentiles"]
codes = data.get("statusCodeDistribution", {})
errors = {**data.get("errorDistribution", {})}
expected = sys.argv[4]
unexpected = sum(n for code, n in codes.items() if code != expected)
if unexpected:
    errors[f"non-{expected}"] = unexpected
tail = f" errors: {errors}" if errors else ""
print(f"| {sys.argv[2]} | {s['requestsPerSec']:.0f} | {p['p50']*1000:.2f} | {p['p99']*1000:.2f} | {sys.argv[3]} | {dict(sorted(codes.items()))}{tail} |")
PY
}

run() { # name path requests [body] [header]; with a body: POST with client authentication, else GET
  local name=$1 path=$2 n=$3 body=${4:-} header=${5:-} out args=()
  if [ -n "$body" ]; then args=(-m POST -H "$BASIC" -H "$FORM" -d "$body"); fi
  if [ -n "$header" ]; then args+=(-H "$header"); fi
  out=$(timeout "$LIMIT" oha --no-tui -n "$n" -c "$CONCURRENCY" \
    "${args[@]}" --output-format json "$BASE$path" 2>/dev/null || true)
  echo "$out" > "$WORK/$name.json"
  row "$name"
}

exchange() { # name alg: $N_CODES fresh codes, then one POST /o/token/ per code with wrk
  local name=$1 alg=$2 out
  codes "${OIDC_ID[$alg]}" "$N_CODES" "$WORK/$name.codes"
  [ -s "$WORK/$name.codes" ] || { echo "| $name | no authorization codes: see above |"; return; }
  out=$(timeout $((LIMIT + 10)) wrk -t1 -c "$CONCURRENCY" -d "${LIMIT}s" --timeout 10s \
    -H "$(basic "${OIDC_ID[$alg]}" "${OIDC_SECRET[$alg]}")" -H "$FORM" \
    -s bench/token_exchange.lua "$BASE/o/token/" -- "$WORK/$name.codes" \
    "grant_type=authorization_code&code={code}&redirect_uri=$REDIRECT_URI_Q&code_verifier=$VERIFIER" \
    2>/dev/null || true)
  echo "$out" | sed -n 's/^BENCH_JSON //p' > "$WORK/$name.json"
  row "$name"
}

echo
echo "Backend: $BACKEND; $(nproc) cores; load generator on the same machine; concurrency $CONCURRENCY"
echo "Idle RSS after start: $IDLE_RSS"
echo
echo "| scenario | requests/s | p50 ms | p99 ms | server RSS after | status codes |"
echo "|---|---|---|---|---|---|"
want client_credentials && run client_credentials /o/token/ "$N" "grant_type=client_credentials"
want introspection && run introspection /o/introspect/ "$N" "token=$TOKEN"
want metadata && run metadata /.well-known/oauth-authorization-server "$N"
if want password_grant; then
  # argon2id alone with the same parameters on as many password threads as the server uses,
  # measured here, on this machine, while the server is idle; the password grant beside it.
  ARGON2_JSON=$($BIN argon2-rate --verifications "$N_ARGON2" --json)
  run password_grant /o/token/ "$N_PASSWORD" "grant_type=password&username=bench&password=bench-password"
  python3 - "$WORK/password_grant.json" "$ARGON2_JSON" <<'PY'
import json, sys
grant = json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]
a = json.loads(sys.argv[2])
print(f"| argon2id alone (m={a['memory_kib']} KiB, t={a['iterations']}, p={a['parallelism']}; "
      f"{a['verifications']} verifications on {a['threads']} threads) | {a['per_second']:.1f} | | | | "
      f"password grant = {100 * grant / a['per_second']:.0f} % of it |")
PY
fi
want code_exchange_id_token_rs256 && exchange code_exchange_id_token_rs256 RS256
want code_exchange_id_token_es256 && exchange code_exchange_id_token_es256 ES256
if want userinfo; then
  codes "${OIDC_ID[RS256]}" 1 "$WORK/userinfo.code"
  USER_TOKEN=$(curl -s -H "$(basic "${OIDC_ID[RS256]}" "${OIDC_SECRET[RS256]}")" \
    -d grant_type=authorization_code -d "code=$(cat "$WORK/userinfo.code")" \
    -d "redirect_uri=$REDIRECT_URI_Q" -d "code_verifier=$VERIFIER" "$BASE/o/token/" |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  run userinfo /o/userinfo/ "$N" "" "Authorization: Bearer $USER_TOKEN"
fi
want jwks && run jwks /.well-known/jwks.json "$N"

# Hostile registrations beside a health probe (issue 9): the probe's latency idle, then while
# $FLOOD_CONCURRENCY connections send registrations whose password is the costliest input found
# for zxcvbn (100 characters of l33t substitutions; it reads no more) — each fails the validators.
# The validators and argon2 share one semaphore on the blocking pool, so the flood queues there
# and the HTTP workers keep answering.
probe() { # name: $N_PROBE GETs of /healthz on one connection, 10 ms apart
  timeout $((LIMIT + 10)) wrk -t1 -c1 -d "${LIMIT}s" --timeout 10s -s bench/bounded.lua \
    "$BASE/healthz" -- "$N_PROBE" 10 2>/dev/null | sed -n 's/^BENCH_JSON //p' > "$WORK/$1.json"
}
if want hostile_registrations; then
  HOSTILE=$(python3 -c 'print(("4@3!1|70$5+%2869" * 7)[:100])')
  printf '{"email": "flood@example.com", "password": "%s", "confirm_password": "%s"}' \
    "$HOSTILE" "$HOSTILE" > "$WORK/hostile.json"
  JSON="Content-Type: application/json"
  ONE=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "$JSON" \
    --data-binary "@$WORK/hostile.json" "$BASE/api/register/")
  echo "one hostile registration alone: HTTP ${ONE% *}, ${ONE#* } s" >&2
  probe healthz_probe_idle
  row healthz_probe_idle
  timeout $((FLOOD_SECONDS + 10)) wrk -t1 -c "$FLOOD_CONCURRENCY" -d "${FLOOD_SECONDS}s" \
    --timeout 30s -H "$JSON" -s bench/bounded.lua "$BASE/api/register/" -- \
    "$N_FLOOD" 0 POST "$WORK/hostile.json" 2>/dev/null |
    sed -n 's/^BENCH_JSON //p' > "$WORK/hostile_registrations.json" &
  FLOOD=$!
  sleep 2
  probe healthz_probe_during_flood
  wait $FLOOD || true
  row healthz_probe_during_flood
  row hostile_registrations 400
fi
