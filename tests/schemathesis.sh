#!/usr/bin/env bash
# Contract test of the JSON APIs: starts the real server (debug build, a fresh SQLite database
# in a temporary directory, a free loopback port), creates a client, users and tokens with the
# CLI, and runs schemathesis (PyPI, pinned, installed into a venv under target/) against
# /api/openapi.json. It fails on any 5xx and on any answer whose status, media type, headers or
# body the document does not list. Bounded: SCHEMATHESIS_EXAMPLES cases per operation and a
# hard limit of SCHEMATHESIS_SECONDS for the run. Run by .ci/run; README "OpenAPI".
#
#   tests/schemathesis.sh                     # what CI runs
#   SCHEMATHESIS_EXAMPLES=200 tests/schemathesis.sh   # a longer hunt
#   SCHEMATHESIS_SEED=123 tests/schemathesis.sh       # replay a run (the seed is printed)
#   SCHEMATHESIS_DATABASE_URL=postgres://…/empty_db tests/schemathesis.sh   # on PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-25}
SECONDS_LIMIT=${SCHEMATHESIS_SECONDS:-150}
VENV=${SCHEMATHESIS_VENV:-$PWD/target/schemathesis-venv}
# schemathesis keeps what `st replay` needs in .schemathesis/ of its working directory.
RUN_DIR=$PWD/target/schemathesis

log() { printf '==> %s\n' "$*"; }

# schemathesis in its own venv (never system-wide), reused while the version matches.
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $VERSION" ]; then
  log "installing schemathesis $VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

cargo build --quiet
BIN=target/debug/latchkey

WORK=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export LATCHKEY_DATABASE__URL="${SCHEMATHESIS_DATABASE_URL:-sqlite://$WORK/latchkey.db}"
export LATCHKEY_SERVER__LISTEN="127.0.0.1:$PORT"
export LATCHKEY_SERVER__ISSUER="$BASE"
export LATCHKEY_SERVER__DATA_DIR="$WORK/data"
LATCHKEY_SECRETS__SECRET_KEY=$(head -c 64 /dev/urandom | base64 -w0)
export LATCHKEY_SECRETS__SECRET_KEY
export LATCHKEY_LOG__LEVEL=warn
# Cheap password hashes: the fuzzer sends many passwords to the password grant and registration.
export LATCHKEY_ARGON2__MEMORY_KIB=1024
export LATCHKEY_ARGON2__ITERATIONS=1
# Registration's validation is what is worth fuzzing; the other limits keep their defaults, so
# their 429s are exercised too.
export LATCHKEY_ACCOUNTS__REGISTRATIONS_PER_IP=0

$BIN migrate >/dev/null
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
CLIENT=$($BIN client create --name schemathesis --type confidential \
  --grant-types password,client_credentials,refresh_token \
  --scopes openid,profile,email,admin,logout_all --skip-authorization --json)
CLIENT_ID=$(echo "$CLIENT" | json_field client_id)
CLIENT_SECRET=$(echo "$CLIENT" | json_field client_secret)
ADMIN_PASSWORD="schemathesis admin $(head -c 12 /dev/urandom | base64 -w0)"
USER_PASSWORD="schemathesis user $(head -c 12 /dev/urandom | base64 -w0)"
echo "$ADMIN_PASSWORD" | $BIN user create --username admin --email admin@example.com \
  --first-name Ada --last-name Admin --superuser >/dev/null
echo "$USER_PASSWORD" | $BIN user create --username kim --email kim@example.com \
  --first-name Kim --last-name User >/dev/null

$BIN serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/readyz" >/dev/null || { cat "$WORK/server.log"; echo "the server did not start" >&2; exit 1; }

token() { # username password scope: an access token by the password grant
  curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" --data-urlencode grant_type=password \
    --data-urlencode "username=$1" --data-urlencode "password=$2" --data-urlencode "scope=$3" \
    "$BASE/o/token/" | json_field access_token
}
# The staff user's token serves every bearer route; /api/logout_all/ revokes every token of
# its user, so it gets the other user's.
ADMIN_TOKEN=$(token admin "$ADMIN_PASSWORD" "openid profile email admin")
USER_TOKEN=$(token kim "$USER_PASSWORD" "openid profile logout_all")

cat >"$WORK/schemathesis.toml" <<EOF
[auth.openapi.bearer]
bearer = "$ADMIN_TOKEN"

[auth.openapi.client_secret_basic]
username = "$CLIENT_ID"
password = "$CLIENT_SECRET"

[[operations]]
include-path = "/api/logout_all/"
headers = { Authorization = "Bearer $USER_TOKEN" }
EOF

SEED=${SCHEMATHESIS_SEED:-$RANDOM}
read -ra EXTRA <<<"${SCHEMATHESIS_ARGS:-}" # more options, e.g. "--checks all" for a hunt
log "schemathesis $VERSION against $BASE/api/openapi.json: $EXAMPLES examples per operation, seed $SEED"
status=0
mkdir -p "$RUN_DIR"
# One worker: with two, Python 3.11 (Debian's) sometimes fails inside hypothesis with
# "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905, a race in the ast
# module's recursion counter), a failure of the tool and not of the server.
(cd "$RUN_DIR" && timeout --kill-after=10 "$SECONDS_LIMIT" \
  "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "$EXAMPLES" --seed "$SEED" --workers 1 --request-timeout 10 \
  --suppress-health-check all --warnings off --no-color "${EXTRA[@]}") || status=$?
if [ "$status" != 0 ]; then
  echo "schemathesis failed (exit $status; 124 = over ${SECONDS_LIMIT}s); server log:" >&2
  tail -n 50 "$WORK/server.log" >&2
fi
exit "$status"
