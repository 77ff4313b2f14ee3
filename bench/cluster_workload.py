#!/usr/bin/env python3
"""The workload and the checks of bench/cluster.sh (Python 3 standard library only).

bench/cluster.sh starts the nodes on one PostgreSQL database and HAProxy in front of them, then
runs this script, which:

1. sets up clients and users with the `latchkey` CLI against the shared database;
2. runs a mixed workload through the load balancer, bounded in requests and in time, with
   several threads: client_credentials tokens, introspection, password-grant logins that start
   refresh families, refresh rotations, revocations (single tokens and whole families) and hosted
   logins (GET the login page, POST it with its CSRF token, GET /account/ with the cookie);
   in the middle one node is killed with SIGKILL;
3. restarts the killed node (a fresh process: empty caches) and checks, directly against every
   node (the survivors and the restarted one, never through the load balancer):
   * every access token that was answered 200 introspects active (nothing lost), including
     those the killed node answered in its last second;
   * every revoked token, and every token of a revoked family, introspects inactive;
   * failed logins spread over the nodes reach the shared limit (429 on every node), and
     `latchkey client rotate-secret` stops the old secret at once on every node;
   * refresh rotation: in each family only the newest refresh token is active (introspection
     of every refresh token the workload saw, and one query of the database for families with
     two live refresh tokens, which also covers rotations whose answer was lost in the kill);
     a rotated refresh token presented to one node revokes its family on every node;
   * `latchkey keys rotate`: the new keys are in every node's JWKS within
     `oidc.key_cache_seconds`, no node signs with a key before every node publishes it, and every
     node signs with it once it activates; `latchkey keys revoke` of the old key removes it from
     every JWKS at once and deactivates the JWT access tokens it signed; revoking the key that
     signs makes a replacement that signs at once, and every node accepts the ID tokens it
     signed (as `id_token_hint`) at once;
   * "sign out everywhere" on the account page, while other nodes are refreshing the user's
     tokens: every session of the user is signed out on every node and none of the user's
     tokens is left active.

It prints a summary and exits 1 on any loss or failed check (2 on a set-up error).
"""

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.cookies import SimpleCookie


class Transport(Exception):
    """The request got no HTTP answer (connection refused or reset, timeout)."""


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def text(self):
        return self.body.decode("utf-8", "replace")


class Http:
    """One keep-alive HTTP/1.1 connection to one base URL."""

    def __init__(self, base, timeout=15.0):
        parts = urllib.parse.urlsplit(base)
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Transport(f"{type(e).__name__}: {e}") from None
        if resp.will_close:
            self.close()
        return Response(resp.status, resp.headers, data)

    def form(self, path, fields, auth=None, cookies=None):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth:
            headers["Authorization"] = auth
        if cookies:
            headers["Cookie"] = cookie_header(cookies)
        return self.request("POST", path, urllib.parse.urlencode(fields), headers)

    def get(self, path, cookies=None):
        headers = {"Cookie": cookie_header(cookies)} if cookies else {}
        return self.request("GET", path, None, headers)


def basic(client):
    raw = f"{urllib.parse.quote(client['client_id'], safe='')}:" \
          f"{urllib.parse.quote(client['client_secret'], safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def cookie_header(cookies):
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def keep_cookies(cookies, resp):
    for line in resp.headers.get_all("Set-Cookie") or []:
        jar = SimpleCookie()
        jar.load(line)
        for name, morsel in jar.items():
            if morsel["max-age"] == "0" or morsel.value == "":
                cookies.pop(name, None)
            else:
                cookies[name] = morsel.value


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(resp):
    m = CSRF.search(resp.text())
    return m.group(1) if m else None


def jwt_kid(token):
    head = token.split(".")[0]
    head += "=" * (-len(head) % 4)
    return json.loads(base64.urlsafe_b64decode(head)).get("kid")


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


# --------------------------------------------------------------------------------------------
# Set-up with the CLI

def cli(args, bin_path, stdin=None):
    out = subprocess.run([bin_path, *args], input=stdin, capture_output=True, text=True,
                         env=os.environ, check=False)
    if out.returncode != 0:
        raise SystemExit(f"cluster: `latchkey {' '.join(args)}` failed:\n{out.stderr}")
    return out.stdout


def set_up(bin_path):
    def client(name, grants, *extra):
        out = cli(["client", "create", "--name", name, "--type", "confidential",
                   "--grant-types", grants, *extra, "--json"], bin_path)
        return json.loads(out)

    clients = {
        "cc": client("cluster-service", "client_credentials"),
        "pw": client("cluster-app", "password,refresh_token"),
        "rs": client("cluster-resource-server", "client_credentials", "--introspect-all"),
        "jwt": client("cluster-jwt", "client_credentials", "--access-token-format", "jwt"),
    }
    users = {}
    for name in ("load", "leaver", "guessed"):
        password = "cluster-" + secrets.token_hex(12)
        cli(["user", "create", "--username", name, "--email", f"{name}@example.com",
             "--first-name", "Cluster", "--last-name", name.title()], bin_path,
            stdin=password + "\n")
        users[name] = password
    return clients, users


# --------------------------------------------------------------------------------------------
# The workload

class Family:
    """A refresh-token family (one password-grant login and its rotations)."""

    def __init__(self, access, refresh, node, t):
        self.access = [(access, node, t)]
        self.refresh = [refresh]
        # live: used by its thread; uncertain: a rotation got no answer (it may have committed),
        # so it is not used again; revoked: its revocation was answered 200; revoke_uncertain:
        # its revocation got no answer.
        self.state = "live"


class Worker(threading.Thread):
    def __init__(self, ctx, seed):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.rng = random.Random(seed)
        self.http = Http(ctx.lb)
        self.cc_tokens = []          # (token, node, t) answered 200
        self.live_cc = []            # indexes into cc_tokens not revoked
        self.revoked_cc = []         # tokens whose revocation was answered 200
        self.revoke_uncertain = []   # tokens whose revocation got no answer
        self.families = []
        self.stats = {}              # op -> {"ok": n, "fail": {reason: n}, "lat": [ms]}
        self.anomalies = []          # wrong answers that are not failures of the kill
        self.failed_at = []          # (monotonic time, operation, reason) of each failure
        self.ok_after_kill = 0       # operations answered as expected after the kill
        self.served = {}             # node -> answers

    def note(self, op, ok, reason, started):
        s = self.stats.setdefault(op, {"ok": 0, "fail": {}, "lat": []})
        if ok:
            s["ok"] += 1
            s["lat"].append((time.monotonic() - started) * 1000)
            if self.ctx.killed_at is not None and started > self.ctx.killed_at:
                self.ok_after_kill += 1
        else:
            s["fail"][reason] = s["fail"].get(reason, 0) + 1
            self.failed_at.append((time.monotonic(), op, reason))

    def node_of(self, resp):
        node = resp.headers.get("X-Latchkey-Node", "?")
        self.served[node] = self.served.get(node, 0) + 1
        return node

    def call(self, fn, *args, **kwargs):
        """One request; (response, None) or (None, reason)."""
        try:
            return fn(*args, **kwargs), None
        except Transport as e:
            return None, "no answer (" + str(e).split(":")[0] + ")"

    def run(self):
        ops = [
            (self.op_client_credentials, 32),
            (self.op_introspect, 28),
            (self.op_refresh, 16),
            (self.op_password, 4),
            (self.op_revoke, 8),
            (self.op_revoke_family, 2),
            (self.op_login, 4),
        ]
        fns = [f for f, _ in ops]
        weights = [w for _, w in ops]
        while self.ctx.take():
            self.rng.choices(fns, weights)[0]()

    # -- operations ----------------------------------------------------------------------------

    def op_client_credentials(self):
        started = time.monotonic()
        resp, err = self.call(self.http.form, "/o/token/", {"grant_type": "client_credentials"},
                              auth=self.ctx.auth["cc"])
        if err or resp.status != 200:
            self.note("client_credentials", False, err or f"HTTP {resp.status}", started)
            return
        node = self.node_of(resp)
        self.live_cc.append(len(self.cc_tokens))
        self.cc_tokens.append((resp.json()["access_token"], node, time.monotonic()))
        self.note("client_credentials", True, None, started)

    def op_introspect(self):
        candidates = [self.cc_tokens[i][0] for i in self.live_cc[-200:]]
        for f in self.families[-20:]:
            if f.state in ("live", "uncertain"):
                candidates.append(f.access[-1][0])
        if not candidates:
            return self.op_client_credentials()
        token = self.rng.choice(candidates)
        started = time.monotonic()
        resp, err = self.call(self.http.form, "/o/introspect/", {"token": token},
                              auth=self.ctx.auth["rs"])
        if err or resp.status != 200:
            self.note("introspection", False, err or f"HTTP {resp.status}", started)
            return
        node = self.node_of(resp)
        if resp.json().get("active") is not True:
            self.anomalies.append(f"a token answered 200 introspected inactive on {node} "
                                  "during the run")
        self.note("introspection", True, None, started)

    def op_password(self):
        started = time.monotonic()
        resp, err = self.call(self.http.form, "/o/token/",
                              {"grant_type": "password", "username": "load",
                               "password": self.ctx.users["load"]},
                              auth=self.ctx.auth["pw"])
        if err or resp.status != 200:
            self.note("password grant", False, err or f"HTTP {resp.status}", started)
            return
        node = self.node_of(resp)
        body = resp.json()
        self.families.append(Family(body["access_token"], body["refresh_token"], node,
                                    time.monotonic()))
        self.note("password grant", True, None, started)

    def op_refresh(self):
        live = [f for f in self.families if f.state == "live"]
        if not live:
            return self.op_password()
        family = self.rng.choice(live[-20:])
        started = time.monotonic()
        resp, err = self.call(self.http.form, "/o/token/",
                              {"grant_type": "refresh_token",
                               "refresh_token": family.refresh[-1]},
                              auth=self.ctx.auth["pw"])
        if err or resp.status >= 500:
            # It may have committed: the old refresh token may be rotated. Never use it again
            # (that would be a reuse, revoking the family).
            family.state = "uncertain"
            self.note("refresh", False, err or f"HTTP {resp.status}", started)
            return
        node = self.node_of(resp)
        if resp.status != 200:
            family.state = "uncertain"
            self.anomalies.append(f"the newest refresh token of a family was refused on {node}: "
                                  f"HTTP {resp.status} {resp.text()[:200]}")
            self.note("refresh", False, f"HTTP {resp.status}", started)
            return
        body = resp.json()
        family.access.append((body["access_token"], node, time.monotonic()))
        family.refresh.append(body["refresh_token"])
        self.note("refresh", True, None, started)

    def op_revoke(self):
        if len(self.live_cc) < 20:
            return self.op_client_credentials()
        # Revoke one of the older live tokens, then ask (through the load balancer, so most
        # likely another node) whether it is still active.
        i = self.live_cc.pop(self.rng.randrange(len(self.live_cc) - 10))
        token = self.cc_tokens[i][0]
        started = time.monotonic()
        resp, err = self.call(self.http.form, "/o/revoke_token/",
                              {"token": token, "token_type_hint": "access_token"},
                              auth=self.ctx.auth["cc"])
        if err or resp.status != 200:
            self.revoke_uncertain.append(token)
            self.note("revocation", False, err or f"HTTP {resp.status}", started)
            return
        self.node_of(resp)
        self.revoked_cc.append(token)
        self.note("revocation", True, None, started)
        resp, err = self.call(self.http.form, "/o/introspect/", {"token": token},
                              auth=self.ctx.auth["rs"])
        if resp is not None and resp.status == 200:
            node = self.node_of(resp)
            if resp.json().get("active") is not False:
                self.anomalies.append(f"a revoked token introspected active on {node}")

    def op_revoke_family(self):
        live = [f for f in self.families if f.state == "live" and len(f.refresh) > 1]
        if not live:
            return self.op_refresh()
        family = self.rng.choice(live)
        started = time.monotonic()
        resp, err = self.call(self.http.form, "/o/revoke_token/",
                              {"token": family.refresh[-1], "token_type_hint": "refresh_token"},
                              auth=self.ctx.auth["pw"])
        if err or resp.status != 200:
            family.state = "revoke_uncertain"
            self.note("family revocation", False, err or f"HTTP {resp.status}", started)
            return
        self.node_of(resp)
        family.state = "revoked"
        self.note("family revocation", True, None, started)

    def op_login(self):
        """A hosted login: the page, the form with its CSRF token, then the account page with
        the session cookie; with round-robin balancing the three requests reach different
        nodes."""
        started = time.monotonic()
        cookies = {}
        resp, err = self.call(self.http.get, "/accounts/login/?next=/account/")
        if err or resp.status != 200:
            self.note("hosted login", False, "login page: " + (err or f"HTTP {resp.status}"),
                      started)
            return
        self.node_of(resp)
        keep_cookies(cookies, resp)
        csrf = csrf_of(resp)
        resp, err = self.call(self.http.form, "/accounts/login/",
                              {"csrf_token": csrf, "next": "/account/", "username": "load",
                               "password": self.ctx.users["load"]}, cookies=cookies)
        if err or resp.status != 303 or resp.headers.get("Location") != "/account/":
            self.note("hosted login", False,
                      "sign-in: " + (err or f"HTTP {resp.status}"), started)
            if resp is not None and resp.status < 500 and resp.status != 303:
                self.anomalies.append(f"a hosted login was refused: HTTP {resp.status}")
            return
        self.node_of(resp)
        keep_cookies(cookies, resp)
        resp, err = self.call(self.http.get, "/account/", cookies=cookies)
        if err or resp.status >= 500:
            self.note("hosted login", False, "account page: " + (err or f"HTTP {resp.status}"),
                      started)
            return
        node = self.node_of(resp)
        if resp.status != 200:
            self.anomalies.append(f"a fresh session was not honoured on {node}: "
                                  f"HTTP {resp.status}")
            self.note("hosted login", False, f"account page: HTTP {resp.status}", started)
            return
        self.note("hosted login", True, None, started)


class Context:
    def __init__(self, lb, clients, users, max_ops, deadline):
        self.lb = lb
        self.clients = clients
        self.users = users
        self.auth = {k: basic(c) for k, c in clients.items()}
        self.lock = threading.Lock()
        self.left = max_ops
        self.deadline = deadline
        self.killed_at = None

    def take(self):
        if time.monotonic() >= self.deadline:
            return False
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


# --------------------------------------------------------------------------------------------
# Checks against one node at a time

class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0
        self.lines = []

    def ok(self, cond, what):
        self.lines.append(("ok  " if cond else "FAIL") + " " + what)
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
        return cond

    def info(self, what):
        self.lines.append("     " + what)


def introspect_all(base, tokens, auth, threads=8):
    """{token: active} as `base` answers, several connections at once. A token whose
    introspection got no 200 maps to an error string."""
    local = threading.local()
    tokens = list(dict.fromkeys(tokens))

    def one(token):
        if not hasattr(local, "http"):
            local.http = Http(base)
        for attempt in range(3):
            try:
                resp = local.http.form("/o/introspect/", {"token": token}, auth=auth)
            except Transport as e:
                # An idle keep-alive connection closed by the server: reconnect (read only).
                if attempt == 2:
                    return token, f"no answer: {e}"
                continue
            if resp.status != 200:
                return token, f"HTTP {resp.status}"
            return token, resp.json().get("active") is True
        return token, "no answer"

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(one, tokens))


def psql(db_url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", db_url, "-c", sql], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"cluster: psql failed: {out.stderr}")
    return [line for line in out.stdout.splitlines() if line]


def wait_ready(base, limit=30.0):
    http_ = Http(base, timeout=2)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            if http_.get("/readyz").status == 200:
                return True
        except Transport:
            pass
        time.sleep(0.1)
    return False


def jwks_kids(base):
    resp = Http(base).get("/.well-known/jwks.json")
    return {k["kid"] for k in resp.json()["keys"]} if resp.status == 200 else None


def jwt_token(base, auth):
    resp = Http(base).form("/o/token/", {"grant_type": "client_credentials"}, auth=auth)
    if resp.status != 200:
        return None
    return resp.json()["access_token"]


def check_login_limits(checks, nodes, ctx):
    """Failed logins are counted in the database: ten wrong passwords for one account through
    the load balancer (spread over the nodes) lock that account, from this address, on every
    node (rate_limits.failed_logins_per_account, 10 by default)."""
    lb = Http(ctx.lb)
    wrong = {"grant_type": "password", "username": "guessed", "password": "not-the-password-1"}
    codes = [lb.form("/o/token/", wrong, auth=ctx.auth["pw"]).status for _ in range(10)]
    checks.ok(codes == [400] * 10, f"ten wrong passwords for one account through the load "
              f"balancer are refused as wrong ({sorted(set(codes))})")
    for name, base in nodes.items():
        status = Http(base).form("/o/token/", wrong, auth=ctx.auth["pw"]).status
        checks.ok(status == 429, f"{name}: the next attempt is refused by the shared limit "
                  f"(HTTP {status})")


def check_secret_rotation(checks, nodes, ctx, bin_path):
    """`latchkey client rotate-secret`: the old secret stops working at once on every node."""
    client_id = ctx.clients["cc"]["client_id"]
    out = json.loads(cli(["client", "rotate-secret", client_id, "--json"], bin_path))
    old, new = ctx.auth["cc"], basic(out)
    for name, base in nodes.items():
        h = Http(base)
        was = h.form("/o/token/", {"grant_type": "client_credentials"}, auth=old).status
        now = h.form("/o/token/", {"grant_type": "client_credentials"}, auth=new).status
        checks.ok(was == 401 and now == 200,
                  f"{name}: right after `latchkey client rotate-secret` the old secret is "
                  f"refused (HTTP {was}) and the new one works (HTTP {now})")


def check_key_rotation(checks, nodes, ctx, bin_path, key_cache):
    """`keys rotate` seen by every node within key_cache seconds; publish before sign;
    `keys revoke` of the old key seen at once."""
    auth_jwt, auth_rs = ctx.auth["jwt"], ctx.auth["rs"]
    before = {}
    for name, base in nodes.items():
        token = jwt_token(base, auth_jwt)
        before[name] = token
    old_kids = {jwt_kid(t) for t in before.values() if t}
    checks.ok(len(old_kids) == 1 and all(before.values()),
              f"before the rotation every node signs JWT access tokens with one key "
              f"({', '.join(sorted(k[:12] for k in old_kids))})")
    old_kid = next(iter(old_kids)) if old_kids else None
    out = cli(["keys", "rotate", "--alg", "all"], bin_path)
    rotated_at = time.monotonic()
    new_kids = set(re.findall(r"new signing key (\S+)", out))
    checks.ok(len(new_kids) == 3, f"`latchkey keys rotate` added {len(new_kids)} keys")
    published = {}   # node -> seconds after the rotation when its JWKS had every new kid
    signing = {}     # node -> seconds after the rotation when it first signed with a new kid
    violations = []
    end = rotated_at + key_cache + 5
    while time.monotonic() < end and (len(published) < len(nodes) or len(signing) < len(nodes)):
        for name, base in nodes.items():
            now = time.monotonic() - rotated_at
            kids = jwks_kids(base) or set()
            if name not in published and new_kids <= kids:
                published[name] = now
            if name not in signing:
                token = jwt_token(base, auth_jwt)
                if token and jwt_kid(token) in new_kids:
                    signing[name] = time.monotonic() - rotated_at
                    unpublished = [n for n in nodes if n not in published]
                    if unpublished:
                        violations.append(f"{name} signed with a new key before "
                                          f"{', '.join(unpublished)} published it")
        time.sleep(0.1)
    new_rs256 = None
    for name, base in nodes.items():
        token = jwt_token(base, auth_jwt)
        if token and jwt_kid(token) in new_kids:
            new_rs256 = jwt_kid(token)
    bound = key_cache
    for name in nodes:
        p, s = published.get(name), signing.get(name)
        checks.ok(p is not None and p <= bound,
                  f"{name}: the new keys are in its JWKS after "
                  f"{'never' if p is None else f'{p:.2f} s'} (bound: oidc.key_cache_seconds = "
                  f"{key_cache} s)")
        checks.ok(s is not None and s <= key_cache + 2,
                  f"{name}: signs with the new key after "
                  f"{'never' if s is None else f'{s:.2f} s'} (activation at {key_cache} s)")
    checks.ok(not violations, "no node signed with a key another node did not publish yet"
              + (": " + "; ".join(violations) if violations else ""))
    if not old_kid:
        return
    # The old key, now retired but still verifying, is revoked as if compromised.
    cli(["keys", "revoke", "--", old_kid], bin_path)
    for name, base in nodes.items():
        kids = jwks_kids(base) or set()
        checks.ok(old_kid not in kids and new_kids <= kids,
                  f"{name}: right after `latchkey keys revoke` the old key has left its JWKS")
        states = introspect_all(base, list(before.values()), auth_rs)
        checks.ok(all(v is False for v in states.values()),
                  f"{name}: the {len(states)} JWT access tokens the revoked key signed "
                  "introspect inactive")
    if not new_rs256:
        return
    # The key that signs now is revoked as if compromised: a replacement signs at once. Each
    # node signs an ID token (password grant, scope openid) and every other node must accept it
    # as an id_token_hint at once, before anything else makes it re-read its keys.
    cli(["keys", "revoke", "--", new_rs256], bin_path)
    hints = {}
    for name, base in nodes.items():
        resp = Http(base).form("/o/token/", {"grant_type": "password", "username": "load",
                                             "password": ctx.users["load"],
                                             "scope": "openid"}, auth=ctx.auth["pw"])
        id_token = (resp.json() or {}).get("id_token") if resp.status == 200 else None
        checks.ok(id_token is not None and jwt_kid(id_token) not in (new_rs256, old_kid),
                  f"{name}: right after `latchkey keys revoke` of the signing key it signs ID "
                  f"tokens with the replacement (HTTP {resp.status})")
        if id_token:
            hints[name] = id_token
        for other, other_base in nodes.items():
            if other == name or not id_token:
                continue
            query = urllib.parse.urlencode({"id_token_hint": id_token})
            status = Http(other_base).get(f"/o/logout/?{query}").status
            checks.ok(status == 200, f"{other} accepts an ID token {name} signed with the "
                      f"replacement as id_token_hint at once (HTTP {status})")


def check_sign_out_everywhere(checks, nodes, ctx, db_url):
    """Two browser sessions and three refresh families of `leaver`; "sign out everywhere" on the
    account page (through the load balancer) while threads refresh the families on the nodes
    directly. Then no session and no token of the user is alive on any node."""
    lb = Http(ctx.lb)
    browsers = []
    for _ in range(2):
        cookies = {}
        resp = lb.get("/accounts/login/?next=/account/")
        keep_cookies(cookies, resp)
        resp = lb.form("/accounts/login/",
                       {"csrf_token": csrf_of(resp), "next": "/account/",
                        "username": "leaver", "password": ctx.users["leaver"]},
                       cookies=cookies)
        keep_cookies(cookies, resp)
        if not checks.ok(resp.status == 303, f"leaver signs in (HTTP {resp.status})"):
            return
        browsers.append(cookies)
    for name, base in nodes.items():
        codes = [Http(base).get("/account/", cookies=b).status for b in browsers]
        checks.ok(codes == [200, 200], f"{name}: both of leaver's sessions are honoured "
                  f"before sign-out ({codes})")
    families = []
    for _ in range(3):
        resp = lb.form("/o/token/", {"grant_type": "password", "username": "leaver",
                                     "password": ctx.users["leaver"]}, auth=ctx.auth["pw"])
        if not checks.ok(resp.status == 200, f"leaver's password grant (HTTP {resp.status})"):
            return
        body = resp.json()
        families.append({"access": [body["access_token"]], "refresh": [body["refresh_token"]]})
    # Refreshes on every node directly, one thread per family, during the sign-out.
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"ok": 0, "refused": 0, "other": 0}
    names = list(nodes)

    def refresher(fam, start):
        conns = [Http(nodes[n]) for n in names]
        i = start
        while not stop.is_set():
            http_ = conns[i % len(conns)]
            i += 1
            try:
                resp = http_.form("/o/token/", {"grant_type": "refresh_token",
                                                "refresh_token": fam["refresh"][-1]},
                                  auth=ctx.auth["pw"])
            except Transport:
                with lock:
                    counts["other"] += 1
                continue
            with lock:
                if resp.status == 200:
                    counts["ok"] += 1
                    body = resp.json()
                    fam["access"].append(body["access_token"])
                    fam["refresh"].append(body["refresh_token"])
                elif resp.status == 400:
                    counts["refused"] += 1
                    return
                else:
                    counts["other"] += 1
    threads = [threading.Thread(target=refresher, args=(f, i)) for i, f in enumerate(families)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stolen = [dict(b) for b in browsers]  # the cookies as they were before the sign-out
    page = lb.get("/account/sessions/end/", cookies=browsers[0])
    keep_cookies(browsers[0], page)
    resp = lb.form("/account/sessions/end/", {"csrf_token": csrf_of(page)},
                   cookies=browsers[0])
    checks.ok(resp.status == 303 and resp.headers.get("Location", "").startswith(
        "/accounts/login"), f"\"sign out everywhere\" on the account page (HTTP {resp.status})")
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    checks.info(f"refreshes racing the sign-out: {counts['ok']} answered 200, "
                        f"{counts['refused']} refused after it, {counts['other']} other")
    tokens = [t for f in families for t in f["access"] + f["refresh"]]
    for name, base in nodes.items():
        codes = [Http(base).get("/account/", cookies=b).status for b in stolen]
        checks.ok(all(c in (302, 303) for c in codes),
                  f"{name}: both of leaver's sessions are signed out ({codes})")
        states = introspect_all(base, tokens, ctx.auth["rs"])
        alive = sum(1 for v in states.values() if v is not False)
        checks.ok(alive == 0, f"{name}: all {len(states)} of leaver's tokens introspect "
                  f"inactive ({alive} not)")
        refused = [Http(base).form("/o/token/", {"grant_type": "refresh_token",
                                                "refresh_token": f["refresh"][-1]},
                                   auth=ctx.auth["pw"]).status for f in families]
        checks.ok(all(c == 400 for c in refused),
                  f"{name}: leaver's newest refresh tokens are refused ({refused})")
    live = psql(db_url, "SELECT count(*) FROM tokens t JOIN users u ON u.id = t.user_id "
                        "WHERE u.username = 'leaver' AND t.revoked_at IS NULL "
                        "AND t.rotated_at IS NULL AND t.expires_at > (now() AT TIME ZONE 'utc')")
    checks.ok(live == ["0"], f"database: leaver has {live[0] if live else '?'} live tokens")


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lb", required=True, help="the load balancer's base URL")
    ap.add_argument("--node", action="append", required=True, metavar="NAME=URL",
                    help="a node, reached directly (repeat)")
    ap.add_argument("--victim", required=True, help="the node to kill")
    ap.add_argument("--victim-pid-file", required=True)
    ap.add_argument("--restart", help="a command that starts the killed node again "
                    "(it writes its pid to --victim-pid-file)")
    ap.add_argument("--bin", required=True, help="the latchkey binary (set-up, key rotation)")
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--requests", type=int, default=50000, help="workload operations at most")
    ap.add_argument("--threads", type=int, default=12)
    ap.add_argument("--kill-at", type=float, default=0.5, help="fraction of --seconds")
    ap.add_argument("--key-cache-seconds", type=int, required=True)
    ap.add_argument("--stats-url", help="HAProxy's CSV statistics")
    args = ap.parse_args()
    nodes = dict(n.split("=", 1) for n in args.node)
    if args.victim not in nodes:
        raise SystemExit("cluster: --victim must name a --node")

    began = time.monotonic()
    clients, users = set_up(args.bin)
    print(f"set-up: {len(clients)} clients and {len(users)} users with the CLI "
          f"({time.monotonic() - began:.1f} s)")

    started = time.monotonic()
    ctx = Context(args.lb, clients, users, args.requests, started + args.seconds)
    workers = [Worker(ctx, seed) for seed in range(args.threads)]
    for w in workers:
        w.start()
    kill_at = started + args.seconds * args.kill_at
    while time.monotonic() < kill_at and any(w.is_alive() for w in workers):
        time.sleep(0.05)
    with open(args.victim_pid_file) as f:
        victim_pid = int(f.read().strip())
    killed_at = time.monotonic()
    try:
        os.kill(victim_pid, signal.SIGKILL)
    except ProcessLookupError:
        raise SystemExit(f"cluster: {args.victim} (pid {victim_pid}) was not running") from None
    ctx.killed_at = killed_at
    print(f"killed {args.victim} (pid {victim_pid}) with SIGKILL after "
          f"{killed_at - started:.1f} s")
    down_after = None
    if args.stats_url:
        stats = Http(args.stats_url)
        while time.monotonic() - killed_at < 15:
            try:
                csv = stats.get(urllib.parse.urlsplit(args.stats_url).path + ";csv").text()
            except Transport:
                break
            row = [line for line in csv.splitlines() if f",{args.victim}," in line]
            if row and ",DOWN" in row[0]:
                down_after = time.monotonic() - killed_at
                break
            time.sleep(0.05)
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started

    # ----------------------------------------------------------------------------- summary
    stats, served, anomalies = {}, {}, []
    for w in workers:
        for op, s in w.stats.items():
            t = stats.setdefault(op, {"ok": 0, "fail": {}, "lat": []})
            t["ok"] += s["ok"]
            t["lat"] += s["lat"]
            for r, n in s["fail"].items():
                t["fail"][r] = t["fail"].get(r, 0) + n
        for n, c in w.served.items():
            served[n] = served.get(n, 0) + c
        anomalies += w.anomalies
    total_ok = sum(s["ok"] for s in stats.values())
    total_fail = sum(sum(s["fail"].values()) for s in stats.values())
    print(f"\nworkload: {args.threads} threads through {args.lb}, {elapsed:.1f} s, "
          f"{total_ok + total_fail} operations, {total_ok} answered as expected "
          f"({total_ok / elapsed:.0f}/s), {total_fail} failed")
    print(f"{'operation':<20} {'ok':>7} {'failed':>7} {'ok/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for op, s in stats.items():
        lat = sorted(s["lat"])
        print(f"{op:<20} {s['ok']:>7} {sum(s['fail'].values()):>7} {s['ok'] / elapsed:>7.0f} "
              f"{percentile(lat, 50):>7.1f} {percentile(lat, 99):>7.1f}")
    for op, s in stats.items():
        for r, n in s["fail"].items():
            print(f"  failed {op}: {n} × {r}")
    print("answers by node: " + ", ".join(f"{n} {c}" for n, c in sorted(served.items())))
    after = sum(w.ok_after_kill for w in workers)
    print(f"answered as expected per second: {(total_ok - after) / (killed_at - started):.0f} "
          f"before the kill ({len(nodes)} nodes), "
          f"{after / max(0.001, started + elapsed - killed_at):.0f} after it")
    if down_after is not None:
        print(f"HAProxy marked {args.victim} DOWN {down_after:.2f} s after the kill")

    # ----------------------------------------------------------------------------- restart
    checked = {n: u for n, u in nodes.items() if n != args.victim}
    restart_began = time.monotonic()
    if args.restart:
        subprocess.run(args.restart, shell=True, check=True)
        if wait_ready(nodes[args.victim]):
            checked[args.victim + " (restarted)"] = nodes[args.victim]
            print(f"restarted {args.victim}: ready after "
                  f"{time.monotonic() - restart_began:.1f} s")
        else:
            print(f"restarting {args.victim} failed")
            anomalies.append(f"{args.victim} did not come back")

    # ----------------------------------------------------------------------------- checks
    checks = Checks()
    checks_began = time.monotonic()
    checks.ok(not anomalies, f"no wrong answer during the run ({len(anomalies)})"
              + "".join(f"\n       {a}" for a in anomalies[:10]))
    # A request fails when the node holding it dies, or reaches it before HAProxy's health
    # checks notice; any other failure is a fault of the cluster.
    ok_after = after
    checks.ok(ok_after > 0, f"the workload went on through the survivors: {ok_after} operations "
              "started after the kill were answered as expected")
    window_end = killed_at + (down_after if down_after is not None else 5.0) + 1.0
    failed_at = sorted(f for w in workers for f in w.failed_at)
    outside = [f for f in failed_at if not killed_at <= f[0] <= window_end]
    checks.ok(not outside, f"the {len(failed_at)} failed requests all failed between the kill "
              f"and {window_end - killed_at:.1f} s after it (outside: {len(outside)})"
              + "".join(f"\n       {t - killed_at:+.2f} s: {op}: {r}" for t, op, r in outside[:10]))
    expect_active, expect_inactive = {}, []
    refresh_current, refresh_rotated, uncertain_latest = [], [], []
    families = [f for w in workers for f in w.families]
    revoked_families = 0
    for w in workers:
        gone = set(w.revoked_cc) | set(w.revoke_uncertain)
        for token, node, t in w.cc_tokens:
            if token not in gone:
                expect_active[token] = (node, t)
        expect_inactive += w.revoked_cc
    for f in families:
        if f.state == "revoked":
            revoked_families += 1
            expect_inactive += [a for a, _, _ in f.access] + f.refresh
        elif f.state == "revoke_uncertain":
            continue
        else:
            for a, node, t in f.access:
                expect_active[a] = (node, t)
            refresh_rotated += f.refresh[:-1]
            if f.state == "live":
                refresh_current.append(f.refresh[-1])
            else:
                uncertain_latest.append(f.refresh[-1])
    last_second = [tok for tok, (node, t) in expect_active.items()
                   if node == args.victim and killed_at - 1.0 <= t <= killed_at]
    by_victim = sum(1 for node, _ in expect_active.values() if node == args.victim)
    print(f"\nchecking {len(expect_active)} access tokens answered 200 (not revoked), "
          f"{len(expect_inactive)} revoked tokens, {len(families)} refresh families "
          f"({revoked_families} revoked) on {', '.join(checked)}")
    auth_rs = ctx.auth["rs"]
    for name, base in checked.items():
        states = introspect_all(base, list(expect_active), auth_rs)
        lost = [t for t, v in states.items() if v is not True]
        checks.ok(not lost, f"{name}: {len(states) - len(lost)} of {len(states)} access tokens "
                  f"answered 200 introspect active (lost: {len(lost)})"
                  + (f"; e.g. {states[lost[0]]}" if lost else ""))
        lost_last = [t for t in last_second if states.get(t) is not True]
        checks.ok(not lost_last, f"{name}: the {len(last_second)} tokens {args.victim} answered "
                  f"in its last second (of {by_victim} it answered) are active")
        states = introspect_all(base, expect_inactive, auth_rs)
        alive = [t for t, v in states.items() if v is not False]
        checks.ok(not alive, f"{name}: {len(states)} revoked tokens introspect inactive "
                  f"(active or unanswered: {len(alive)})")
        states = introspect_all(base, refresh_current + refresh_rotated + uncertain_latest,
                                auth_rs)
        dead = [t for t in refresh_current if states[t] is not True]
        zombies = [t for t in refresh_rotated if states[t] is not False]
        checks.ok(not dead, f"{name}: the newest refresh token of each of "
                  f"{len(refresh_current)} families is active (not: {len(dead)})")
        checks.ok(not zombies, f"{name}: {len(refresh_rotated)} rotated refresh tokens are "
                  f"inactive (active: {len(zombies)})")
        checks.info(f"{name}: {len(uncertain_latest)} families had a rotation that got no "
                    "answer; in "
                    f"{sum(1 for t in uncertain_latest if states[t] is True)} of them the last "
                    "refresh token seen is still active (that rotation did not commit)")
    doubles = psql(args.db_url, "SELECT family_id FROM tokens WHERE kind = 'refresh' "
                                "AND revoked_at IS NULL AND rotated_at IS NULL "
                                "AND expires_at > (now() AT TIME ZONE 'utc') "
                                "GROUP BY family_id HAVING count(*) > 1")
    checks.ok(not doubles, f"database: no refresh family has two live refresh tokens "
              f"({len(doubles)} have)")

    # Reuse detection across nodes: a rotated refresh token presented to one node revokes the
    # family, which every node then sees.
    reused = [f for f in families if f.state == "live" and len(f.refresh) >= 2][:3]
    names = list(checked)
    for i, f in enumerate(reused):
        a, b = names[i % len(names)], names[(i + 1) % len(names)]
        resp = Http(checked[a]).form("/o/token/", {"grant_type": "refresh_token",
                                                   "refresh_token": f.refresh[-2]},
                                     auth=ctx.auth["pw"])
        states = introspect_all(checked[b], [f.refresh[-1]] + [x for x, _, _ in f.access],
                                auth_rs)
        checks.ok(resp.status == 400 and all(v is False for v in states.values()),
                  f"a rotated refresh token replayed on {a} (HTTP {resp.status}) revokes its "
                  f"family on {b} ({sum(1 for v in states.values() if v is False)} of "
                  f"{len(states)} tokens inactive)")

    check_login_limits(checks, checked, ctx)
    check_secret_rotation(checks, checked, ctx, args.bin)
    check_key_rotation(checks, checked, ctx, args.bin, args.key_cache_seconds)
    check_sign_out_everywhere(checks, checked, ctx, args.db_url)

    print()
    for line in checks.lines:
        print(line)
    print(f"\n(checks: {time.monotonic() - checks_began:.1f} s)")
    if checks.failures:
        print(f"cluster: {len(checks.failures)} checks FAILED")
        return 1
    print(f"cluster: all {checks.passed} checks passed; nothing lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
