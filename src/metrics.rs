//! Prometheus metrics: every metric's name, what it counts, and the functions that record it.
//! Every layer may call these (the module names no other module of the crate); the web layer
//! renders them at `GET /metrics` (`routes::metrics`).
//!
//! The recorder is the `metrics` crate's global one, installed once per process by [`install`]
//! (`serve` installs it when `metrics.enabled`): a [`PrometheusHandle`] renders it, and nothing
//! of the exporter listens or spawns a thread. Until it is installed (commands other than
//! `serve`, or metrics off) every function here is a no-op costing one atomic load.
//!
//! Names follow Prometheus's conventions: the `latchkey_` prefix, base units in the name
//! (`_seconds`), `_total` on counters. Label values come from small fixed sets (route *patterns*
//! as registered, never request paths; grant types; limit names; job names), so the number of
//! series stays bounded whatever clients send.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | [`HTTP_REQUEST_DURATION`] | histogram | `route`, `method`, `status` | time from the request's arrival to its response head; its `_count` is the request count |
//! | [`TOKENS_ISSUED`] | counter | `grant_type` | successful token responses |
//! | [`LOGINS`] | counter | `via`, `outcome` | password checks at the hosted login page and the password grant |
//! | [`LIMITS_TRIPPED`] | counter | `limit` | attempts a limit refused |
//! | [`DB_POOL_CONNECTIONS`] | gauge | `pool`, `state` | open connections in use or idle |
//! | [`DB_POOL_MAX_CONNECTIONS`] | gauge | `pool` | the pool's size |
//! | [`DB_POOL_WAIT`] | histogram | `pool` | time a query waited for a connection |
//! | [`ARGON2_QUEUE_LENGTH`] | gauge | — | password hashes waiting for a slot |
//! | [`ARGON2_IN_FLIGHT`] | gauge | — | slots held (hashing, or checking limits around a hash) |
//! | [`ARGON2_SLOTS`] | gauge | — | `argon2.max_concurrent` |
//! | [`PASSWORD_POLICY_QUEUE_LENGTH`] | gauge | — | password-policy checks running or waiting |
//! | [`JOB_RUNS`] | counter | `job`, `outcome` | scheduled job runs on this node |
//! | [`JOB_DURATION`] | histogram | `job` | how long each run took |
//! | [`BUILD_INFO`] | gauge | `version` | always 1 |

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use ::metrics::{Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram of request latencies, seconds, by `route` (the matched pattern, or `unmatched`),
/// `method` (GET, POST, … or `other`) and `status` (the numeric code).
pub const HTTP_REQUEST_DURATION: &str = "latchkey_http_request_duration_seconds";
/// Counter of token responses, by `grant_type` (see [`token_issued`]).
pub const TOKENS_ISSUED: &str = "latchkey_tokens_issued_total";
/// Counter of password checks, by `via` (`login_page`, `password_grant`) and `outcome`
/// ([`LoginOutcome`]).
pub const LOGINS: &str = "latchkey_logins_total";
/// Counter of refusals, by `limit`: the limiter's bucket kind (`login:ip`, `client_auth`, …) or
/// `password_policy_queue`.
pub const LIMITS_TRIPPED: &str = "latchkey_limits_tripped_total";
/// Gauge of a pool's open connections, by `pool` and `state` (`in_use`, `idle`), sampled at
/// each scrape.
pub const DB_POOL_CONNECTIONS: &str = "latchkey_db_pool_connections";
/// Gauge of a pool's size, by `pool`.
pub const DB_POOL_MAX_CONNECTIONS: &str = "latchkey_db_pool_max_connections";
/// Histogram of the time a database call waited for a connection, seconds, by `pool`.
pub const DB_POOL_WAIT: &str = "latchkey_db_pool_wait_seconds";
/// Gauge of password hashes (and verifications) waiting for an argon2 slot.
pub const ARGON2_QUEUE_LENGTH: &str = "latchkey_argon2_queue_length";
/// Gauge of argon2 slots held.
pub const ARGON2_IN_FLIGHT: &str = "latchkey_argon2_in_flight";
/// Gauge of argon2 slots (`argon2.max_concurrent`).
pub const ARGON2_SLOTS: &str = "latchkey_argon2_slots";
/// Gauge of password-policy checks running or waiting (at most `argon2.policy_queue`).
pub const PASSWORD_POLICY_QUEUE_LENGTH: &str = "latchkey_password_policy_queue_length";
/// Counter of scheduled job runs on this node, by `job` and `outcome` (`success`, `failure`).
pub const JOB_RUNS: &str = "latchkey_scheduler_job_runs_total";
/// Histogram of scheduled job run times, seconds, by `job`.
pub const JOB_DURATION: &str = "latchkey_scheduler_job_duration_seconds";
/// Gauge, always 1, whose `version` label is the running version.
pub const BUILD_INFO: &str = "latchkey_build_info";

/// Buckets of [`HTTP_REQUEST_DURATION`], seconds: 0.5 ms to 10 s.
pub const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of [`DB_POOL_WAIT`], seconds: 0.1 ms (no wait) to 10 s (the pool's timeout).
pub const DB_WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of [`JOB_DURATION`], seconds.
pub const JOB_BUCKETS: &[f64] = &[0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0];

/// The route label of a request that matched no route (`not_found`).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Why the recorder could not be installed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the metrics recorder could not be installed: {0}")]
pub struct InstallError(String);

static HANDLE: OnceLock<Result<PrometheusHandle, InstallError>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder (once: later calls return
/// the same handle) and describes every metric. Call [`PrometheusHandle::run_upkeep`]
/// periodically: histograms keep their samples until it (or a render) folds them in.
///
/// # Errors
/// [`InstallError`] when another global recorder was installed first.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = [
                (HTTP_REQUEST_DURATION, HTTP_BUCKETS),
                (DB_POOL_WAIT, DB_WAIT_BUCKETS),
                (JOB_DURATION, JOB_BUCKETS),
            ]
            .into_iter()
            .try_fold(builder, |b, (name, buckets)| {
                b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            })
            .map_err(|e| InstallError(e.to_string()))?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            ::metrics::set_global_recorder(recorder).map_err(|e| InstallError(e.to_string()))?;
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Ok(handle)
        })
        .clone()
}

/// `# HELP` lines for every metric.
fn describe() {
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP requests by route pattern, method and status: time to the response head"
    );
    describe_counter!(TOKENS_ISSUED, "Token responses by grant type");
    describe_counter!(
        LOGINS,
        "Password checks at the login page and the password grant, by outcome"
    );
    describe_counter!(LIMITS_TRIPPED, "Attempts refused by a limit, by limit");
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Open database connections by pool and state (in_use, idle)"
    );
    describe_gauge!(DB_POOL_MAX_CONNECTIONS, "Database pool size");
    describe_histogram!(
        DB_POOL_WAIT,
        Unit::Seconds,
        "Time a database call waited for a pooled connection"
    );
    describe_gauge!(
        ARGON2_QUEUE_LENGTH,
        "Password hashes waiting for an argon2 slot"
    );
    describe_gauge!(ARGON2_IN_FLIGHT, "argon2 slots held");
    describe_gauge!(ARGON2_SLOTS, "argon2 slots (argon2.max_concurrent)");
    describe_gauge!(
        PASSWORD_POLICY_QUEUE_LENGTH,
        "Password-policy checks running or waiting (bounded by argon2.policy_queue)"
    );
    describe_counter!(
        JOB_RUNS,
        "Scheduled job runs on this node by job and outcome"
    );
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Scheduled job run time");
    describe_gauge!(BUILD_INFO, "Always 1; the label names the running version");
}

/// A route's histograms on one thread: (method, status, histogram).
type RouteHistograms = Vec<(&'static str, u16, Histogram)>;

thread_local! {
    /// This thread's histogram handles by route pattern, then method and status: after a
    /// combination's first request its recording costs a map lookup and the histogram's own
    /// lock-free push — no label strings, no registry lookup. Bounded: routes are the
    /// registered patterns, methods a fixed set and statuses three digits.
    static HTTP_HISTOGRAMS: RefCell<HashMap<Box<str>, RouteHistograms>> =
        RefCell::new(HashMap::new());
}

/// Records one HTTP request: `route` is the matched pattern (or [`UNMATCHED_ROUTE`]), never a
/// request path; `method` one of a fixed set of names.
pub fn http_request(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    HTTP_HISTOGRAMS.with_borrow_mut(|routes| {
        let known = routes.get(route).and_then(|outcomes| {
            outcomes
                .iter()
                .find(|(m, s, _)| *s == status && *m == method)
        });
        if let Some((_, _, histogram)) = known {
            histogram.record(elapsed);
            return;
        }
        // The first request of this route, method and status on this thread.
        let histogram = histogram!(
            HTTP_REQUEST_DURATION,
            "route" => route.to_owned(),
            "method" => method,
            "status" => status.to_string()
        );
        histogram.record(elapsed);
        routes
            .entry(route.into())
            .or_default()
            .push((method, status, histogram));
    });
}

/// One successful token response of `grant_type`: `authorization_code`, `refresh_token`,
/// `password`, `client_credentials`, `token_exchange` (RFC 8693) or `mfa_otp`.
pub fn token_issued(grant_type: &'static str) {
    counter!(TOKENS_ISSUED, "grant_type" => grant_type).increment(1);
}

/// Where a password was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginVia {
    /// The hosted login page (`POST /accounts/login/`).
    LoginPage,
    /// The token endpoint's password grant.
    PasswordGrant,
}

/// How a password check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password was right (an emailed code may still follow).
    Success,
    /// Unknown account, wrong password or deactivated account.
    Failure,
    /// A login limit refused the attempt before any check.
    Locked,
    /// Right password, unverified address (`accounts.email_verification = "mandatory"`).
    Unverified,
    /// The check could not be made (storage or the password threads failed).
    Error,
}

/// One password check.
pub fn login(via: LoginVia, outcome: LoginOutcome) {
    let via = match via {
        LoginVia::LoginPage => "login_page",
        LoginVia::PasswordGrant => "password_grant",
    };
    let outcome = match outcome {
        LoginOutcome::Success => "success",
        LoginOutcome::Failure => "failure",
        LoginOutcome::Locked => "locked",
        LoginOutcome::Unverified => "unverified",
        LoginOutcome::Error => "error",
    };
    counter!(LOGINS, "via" => via, "outcome" => outcome).increment(1);
}

/// A limit refused an attempt. `bucket` is the limiter's bucket name (`kind:` and a digest, see
/// `limits::bucket`) or a plain limit name: the label is the part before the digest, which the
/// code names (never input), so the label set is fixed.
pub fn limit_tripped(bucket: &str) {
    let limit = match bucket.rsplit_once(':') {
        Some((kind, digest)) if digest.len() == 64 => kind,
        _ => bucket,
    };
    counter!(LIMITS_TRIPPED, "limit" => limit.to_owned()).increment(1);
}

/// A database pool, by what it is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbPool {
    /// SQLite's read pool.
    Reader,
    /// SQLite's writer thread (`db::writer`): its wait is the time a write queued for it; on
    /// PostgreSQL the group insert's thread (`db::grouped`), likewise.
    Writer,
    /// PostgreSQL's one pool for reads and writes.
    Shared,
}

impl DbPool {
    /// The `pool` label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Shared => "shared",
        }
    }
}

/// A database call on `pool` waited `waited` for its connection.
pub fn db_pool_wait(pool: DbPool, waited: Duration) {
    match pool {
        DbPool::Reader => histogram!(DB_POOL_WAIT, "pool" => "reader").record(waited),
        DbPool::Writer => histogram!(DB_POOL_WAIT, "pool" => "writer").record(waited),
        DbPool::Shared => histogram!(DB_POOL_WAIT, "pool" => "shared").record(waited),
    }
}

/// A pool's connections as sampled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool.
    pub pool: DbPool,
    /// Open connections lent out.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The pool's size.
    pub max: u32,
}

/// Sets the pool gauges (at each scrape).
pub fn db_pools(pools: &[PoolUsage]) {
    for usage in pools {
        let pool = usage.pool.as_str();
        gauge!(DB_POOL_CONNECTIONS, "pool" => pool, "state" => "in_use")
            .set(f64::from(usage.in_use));
        gauge!(DB_POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(f64::from(usage.idle));
        gauge!(DB_POOL_MAX_CONNECTIONS, "pool" => pool).set(f64::from(usage.max));
    }
}

/// The password threads' load as sampled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordLoad {
    /// argon2 slots (`argon2.max_concurrent`).
    pub slots: usize,
    /// Slots held.
    pub in_flight: usize,
    /// Hashes waiting for a slot.
    pub waiting: usize,
    /// Password-policy checks running or waiting.
    pub policy_queued: usize,
}

/// Sets the argon2 gauges (at each scrape).
#[allow(clippy::cast_precision_loss)] // counts of tasks, far below 2^52
pub fn password_load(load: PasswordLoad) {
    gauge!(ARGON2_SLOTS).set(load.slots as f64);
    gauge!(ARGON2_IN_FLIGHT).set(load.in_flight as f64);
    gauge!(ARGON2_QUEUE_LENGTH).set(load.waiting as f64);
    gauge!(PASSWORD_POLICY_QUEUE_LENGTH).set(load.policy_queued as f64);
}

/// One scheduled run of `job` (a registered job name) that took `took`.
pub fn job_run(job: &str, succeeded: bool, took: Duration) {
    let outcome = if succeeded { "success" } else { "failure" };
    counter!(JOB_RUNS, "job" => job.to_owned(), "outcome" => outcome).increment(1);
    histogram!(JOB_DURATION, "job" => job.to_owned()).record(took);
}

/// An upkeep loop for `handle`: folds histogram samples in every few seconds, so that memory
/// stays bounded between scrapes. Runs until its task is aborted.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_labels_are_bucket_kinds_never_their_digests() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            limit_tripped(&format!("login:ip:{}", "a".repeat(64)));
            limit_tripped(&format!("client_auth:{}", "b".repeat(64)));
            limit_tripped("password_policy_queue");
        });
        let text = handle.render();
        assert!(text.contains(r#"latchkey_limits_tripped_total{limit="login:ip"} 1"#));
        assert!(text.contains(r#"latchkey_limits_tripped_total{limit="client_auth"} 1"#));
        assert!(text.contains(r#"latchkey_limits_tripped_total{limit="password_policy_queue"} 1"#));
        assert!(!text.contains("aaaa"), "{text}");
    }

    #[test]
    fn logins_and_tokens_have_fixed_labels() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            login(LoginVia::PasswordGrant, LoginOutcome::Locked);
            token_issued("client_credentials");
            token_issued("client_credentials");
        });
        let text = handle.render();
        assert!(text.contains(r#"latchkey_logins_total{via="password_grant",outcome="locked"} 1"#));
        assert!(text.contains(r#"latchkey_tokens_issued_total{grant_type="client_credentials"} 2"#));
    }
}
