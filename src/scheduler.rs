//! Scheduled jobs, shared by every node of a cluster: maintenance (`crate::maintenance`), and
//! whatever a connector registers later.
//!
//! * A job is a name, an interval and an async function; adding one is one
//!   [`Scheduler::register`] call.
//! * Each job has a row in the `jobs` table (next run, lease, last run, last error). A node runs
//!   a due job only after claiming its slot with one conditional `UPDATE`
//!   ([`crate::db::jobs::claim`]: due, and no live lease), which succeeds for exactly one node,
//!   so a cluster runs each slot once. The claim moves the next run one interval ahead and
//!   takes a lease (`scheduler.lease_seconds`) that the node renews while the job runs; a node
//!   that dies mid-run leaves a lease that ends, and the next slot is claimed normally.
//! * A failed run (an error, or a panic) is logged, recorded on the row (shown on the admin
//!   dashboard) and retried after `scheduler.retry_seconds`, doubling with each consecutive
//!   failure but never later than the job's own interval. A success clears the error.
//! * [`Scheduler::start`] runs the loop on the tokio runtime; [`SchedulerHandle::shutdown`]
//!   stops claiming and waits (bounded) for a run in progress, so `serve` stops gracefully.
//! * A job's interval can change at run time: the `jobs` row's `every_seconds` (set by
//!   [`crate::db::jobs::set_interval`], e.g. from the console's Discord page) wins over the
//!   registered one, and every node reads it at its next pass (at most a minute later). A job
//!   can be off ([`Scheduler::register_optional`] with `None`, or `every_seconds` 0): it is
//!   then never due on its own, and runs once when asked ("Run now" makes it due).
//! * Time comes from an injectable clock ([`Scheduler::with_clock`]) so tests can step through
//!   slots without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::config::SchedulerSettings;
use crate::db::jobs::{self, JobRow};
use crate::db::{self, Db, DbError};

/// What a job returns when it fails: any error (its whole cause chain is recorded).
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// What a job returns: a one-line summary for the log (e.g. "deleted 3 tokens"), or an error.
pub type JobResult = Result<String, JobError>;

/// The time source: UTC, microseconds (like [`db::now`], the default).
pub type Clock = Arc<dyn Fn() -> NaiveDateTime + Send + Sync>;

type JobFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = JobResult> + Send>> + Send + Sync>;

/// Longest job name (it is the `jobs` row's key and shown on the dashboard).
pub const MAX_JOB_NAME: usize = 64;

/// Shortest and longest interval a job may be registered with.
pub const INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(366 * 86_400));

/// Longest error message stored for the dashboard, in bytes (the log gets all of it).
const MAX_ERROR_BYTES: usize = 2000;

/// How long [`SchedulerHandle::shutdown`] waits for a run in progress.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// The loop re-reads the `jobs` rows at least this often (another node may have changed them).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A job that cannot be registered (a programming error in the caller).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedulerError {
    /// Names are 1–64 characters of `a-z 0-9 _ . -`.
    #[error("job name {0:?} must be 1 to 64 characters of a-z, 0-9, _, . and -")]
    InvalidName(String),
    /// Each name once.
    #[error("a job named {0:?} is already registered")]
    Duplicate(String),
    /// Between [`INTERVAL_RANGE`]'s bounds.
    #[error("job {0:?}: the interval must be between 1 second and 366 days")]
    InvalidInterval(String),
}

/// One run that [`Scheduler::run_due`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRun {
    /// The job.
    pub name: String,
    /// The job's summary, or its error message (cause chain joined by `: `).
    pub outcome: Result<String, String>,
}

struct Job {
    name: String,
    /// The registered interval; `None`: off unless the row sets one.
    every: Option<Duration>,
    run: JobFn,
}

impl Job {
    /// The interval in effect: the row's `every_seconds` over the registered one; `None` when
    /// off.
    fn interval(&self, row: Option<&JobRow>) -> Option<Duration> {
        match row.and_then(|r| r.every_seconds) {
            None => self.every,
            Some(s) => u64::try_from(s)
                .ok()
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s).clamp(INTERVAL_RANGE.0, INTERVAL_RANGE.1)),
        }
    }
}

/// When an off job is next due on its own: never, in practice (only "Run now" makes it due).
const OFF: Duration = INTERVAL_RANGE.1;

/// When an off job set off at `now` is next due on its own (the `off_until` of
/// [`crate::db::jobs::set_interval`]): one longest interval (366 days) ahead, i.e. never in
/// practice.
#[must_use]
pub fn off_until(now: NaiveDateTime) -> NaiveDateTime {
    now + delta(OFF)
}

/// Runs registered jobs, each slot on exactly one node. Build it, [`register`](Self::register)
/// jobs, then [`start`](Self::start) it (or call [`run_due`](Self::run_due) yourself).
pub struct Scheduler {
    db: Db,
    retry: Duration,
    lease: Duration,
    jobs: Vec<Job>,
    clock: Clock,
    /// This instance's lease owner id (random): only the holder may renew or finish a run.
    owner: String,
    /// Rows created and intervals applied (done on the first pass).
    prepared: AtomicBool,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "jobs",
                &self
                    .jobs
                    .iter()
                    .map(|j| j.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler over `db` with `settings`' retry delay and lease, no jobs yet, on the real
    /// clock.
    #[must_use]
    pub fn new(db: Db, settings: &SchedulerSettings) -> Self {
        Self {
            db,
            retry: settings.retry,
            lease: settings.lease,
            jobs: Vec::new(),
            clock: Arc::new(db::now),
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            prepared: AtomicBool::new(false),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Uses `clock` instead of the system time for due times and leases (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Registers `job` to run every `every` (its first run is due as soon as the scheduler
    /// first sees it). `job` is called once per run and returns a summary or an error.
    ///
    /// # Errors
    /// [`SchedulerError`] for a bad or duplicate name or an interval out of range.
    pub fn register<F, Fut>(
        &mut self,
        name: &str,
        every: Duration,
        job: F,
    ) -> Result<&mut Self, SchedulerError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        self.register_optional(name, Some(every), job)
    }

    /// [`register`](Self::register) for a job that may be off: `None` registers it off (never
    /// due on its own; it runs when asked, and the `jobs` row's `every_seconds` can turn it on
    /// at run time).
    ///
    /// # Errors
    /// [`SchedulerError`] for a bad or duplicate name or an interval out of range.
    pub fn register_optional<F, Fut>(
        &mut self,
        name: &str,
        every: Option<Duration>,
        job: F,
    ) -> Result<&mut Self, SchedulerError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        let valid = !name.is_empty()
            && name.len() <= MAX_JOB_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !valid {
            return Err(SchedulerError::InvalidName(name.to_owned()));
        }
        if self.jobs.iter().any(|j| j.name == name) {
            return Err(SchedulerError::Duplicate(name.to_owned()));
        }
        if every.is_some_and(|every| every < INTERVAL_RANGE.0 || every > INTERVAL_RANGE.1) {
            return Err(SchedulerError::InvalidInterval(name.to_owned()));
        }
        self.jobs.push(Job {
            name: name.to_owned(),
            every,
            run: Arc::new(move || Box::pin(job())),
        });
        Ok(self)
    }

    /// The registered jobs' names, in registration order.
    #[must_use]
    pub fn job_names(&self) -> Vec<&str> {
        self.jobs.iter().map(|j| j.name.as_str()).collect()
    }

    /// One pass: every registered job that is due and not held by another node is claimed and,
    /// if this node won the claim, run to its end (one after the other). Returns the runs made
    /// here; jobs another node claimed are not listed.
    ///
    /// # Errors
    /// Storage failures (the loop logs them and tries again later).
    pub async fn run_due(&self) -> Result<Vec<JobRun>, DbError> {
        let now = (self.clock)();
        let rows = self.prepare(now).await?;
        let mut runs = Vec::new();
        for job in &self.jobs {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Some(row) = rows.iter().find(|r| r.name == job.name) else {
                continue;
            };
            if row.next_run_at > now || row.running_until.is_some_and(|u| u >= now) {
                continue;
            }
            let every = job.interval(Some(row));
            // A job earlier in this pass may have taken a while: claim with the time now.
            let now = (self.clock)();
            let claimed = {
                let (name, owner) = (job.name.clone(), self.owner.clone());
                let next = now + delta(every.unwrap_or(OFF));
                let lease_until = now + delta(self.lease);
                self.db
                    .write(move |conn| {
                        jobs::claim(conn, &name, &owner, now, next, lease_until)
                            .map_err(DbError::from)
                    })
                    .await?
            };
            if !claimed {
                continue;
            }
            let started = std::time::Instant::now();
            let outcome = self.execute(job).await;
            crate::metrics::job_run(&job.name, outcome.is_ok(), started.elapsed());
            let finished = (self.clock)();
            // An off job that failed is not retried on its own either.
            let retry_in = every.map_or(OFF, |every| backoff(self.retry, row.failures, every));
            let failure = outcome
                .as_ref()
                .err()
                .map(|e| (truncate(e), finished + delta(retry_in)));
            let (name, owner) = (job.name.clone(), self.owner.clone());
            let recorded = self
                .db
                .write(move |conn| {
                    let failure = failure.as_ref().map(|(e, at)| (e.as_str(), *at));
                    jobs::finish(conn, &name, &owner, finished, failure).map_err(DbError::from)
                })
                .await?;
            match &outcome {
                Ok(summary) => tracing::info!(job = %job.name, %summary, "scheduled job done"),
                Err(error) => tracing::error!(
                    job = %job.name,
                    %error,
                    retry_in_seconds = retry_in.as_secs(),
                    "scheduled job failed"
                ),
            }
            if !recorded {
                tracing::warn!(
                    job = %job.name,
                    "the job's lease had passed to another node before this run ended"
                );
            }
            runs.push(JobRun {
                name: job.name.clone(),
                outcome,
            });
        }
        Ok(runs)
    }

    /// Creates missing rows (due now) and, on the first pass, pulls each job's next run forward
    /// to at most one interval from now (its interval may have been shortened). Returns the
    /// rows.
    async fn prepare(&self, now: NaiveDateTime) -> Result<Vec<JobRow>, DbError> {
        let rows = self
            .db
            .read(|conn| jobs::all(conn).map_err(DbError::from))
            .await?;
        let first = !self.prepared.load(Ordering::SeqCst);
        // (name, interval in effect, whether the row is missing)
        let wanted: Vec<(String, Option<Duration>, bool)> = self
            .jobs
            .iter()
            .map(|j| {
                let row = rows.iter().find(|r| r.name == j.name);
                (j.name.clone(), j.interval(row), row.is_none())
            })
            .filter(|(_, _, missing)| first || *missing)
            .collect();
        if wanted.is_empty() {
            return Ok(rows);
        }
        let rows = self
            .db
            .write(move |conn| {
                for (name, every, _) in &wanted {
                    match every {
                        Some(every) => {
                            jobs::insert_missing(conn, name, now)?;
                            jobs::pull_forward(conn, name, now + delta(*every))?;
                        }
                        // Off: not due on its own (a "Run now" from before a restart is
                        // dropped).
                        None => {
                            if !jobs::insert_missing(conn, name, now + delta(OFF))? {
                                jobs::push_back(conn, name, now + delta(OFF))?;
                            }
                        }
                    }
                }
                jobs::all(conn).map_err(DbError::from)
            })
            .await?;
        self.prepared.store(true, Ordering::SeqCst);
        Ok(rows)
    }

    /// Runs `job` in a task of its own (a panic becomes an error) while renewing the lease.
    async fn execute(&self, job: &Job) -> Result<String, String> {
        let mut task = tokio::spawn((job.run)());
        let mut beat = tokio::time::interval((self.lease / 3).max(Duration::from_secs(1)));
        beat.tick().await; // The first tick is immediate; the claim has just taken the lease.
        loop {
            tokio::select! {
                joined = &mut task => {
                    return match joined {
                        Ok(Ok(summary)) => Ok(summary),
                        Ok(Err(error)) => Err(describe(error.as_ref())),
                        Err(e) if e.is_panic() => Err("the job panicked".to_owned()),
                        Err(_) => Err("the job was cancelled".to_owned()),
                    };
                }
                _ = beat.tick() => {
                    let (name, owner) = (job.name.clone(), self.owner.clone());
                    let until = (self.clock)() + delta(self.lease);
                    let renewed = self
                        .db
                        .write(move |conn| {
                            jobs::renew(conn, &name, &owner, until).map_err(DbError::from)
                        })
                        .await;
                    if !matches!(renewed, Ok(true)) {
                        tracing::warn!(job = %job.name, "could not renew the job's lease");
                    }
                }
            }
        }
    }

    /// How long the loop may sleep: until the earliest due time (or lease end) among the
    /// registered jobs, between 1 s and [`MAX_SLEEP`].
    async fn until_next(&self) -> Duration {
        let Ok(rows) = self
            .db
            .read(|conn| jobs::all(conn).map_err(DbError::from))
            .await
        else {
            return MAX_SLEEP;
        };
        let now = (self.clock)();
        let next = rows
            .iter()
            .filter(|r| self.jobs.iter().any(|j| j.name == r.name))
            .map(|r| {
                r.running_until
                    .map_or(r.next_run_at, |u| u.max(r.next_run_at))
            })
            .min();
        next.and_then(|t| (t - now).to_std().ok())
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_secs(1), MAX_SLEEP)
    }

    /// Runs the loop on the tokio runtime until [`SchedulerHandle::shutdown`]. Storage
    /// failures are logged and the pass is tried again later.
    #[must_use]
    pub fn start(self) -> SchedulerHandle {
        let stopping = self.stopping.clone();
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = wake.clone();
        tracing::info!(jobs = ?self.job_names(), "scheduler started");
        let task = tokio::spawn(async move {
            while !self.stopping.load(Ordering::SeqCst) {
                if let Err(e) = self.run_due().await {
                    tracing::error!(error = %e, "scheduler pass failed; trying again later");
                }
                if self.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let sleep = self.until_next().await;
                tokio::select! {
                    () = tokio::time::sleep(sleep) => {}
                    () = woken.notified() => {}
                }
            }
        });
        SchedulerHandle {
            stopping,
            wake,
            task,
        }
    }
}

/// A running scheduler loop.
#[derive(Debug)]
pub struct SchedulerHandle {
    stopping: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops claiming new runs and waits for a run in progress to end (at most 30 s; after
    /// that the run is left to finish on its own and its lease to lapse).
    pub async fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.task)
            .await
            .is_err()
        {
            abort.abort();
            tracing::warn!("scheduler stopped while a job was still running; its lease will lapse");
        } else {
            tracing::info!("scheduler stopped");
        }
    }
}

/// The jobs table as the admin dashboard shows it.
#[derive(Clone, Debug)]
pub struct Jobs {
    db: Db,
}

impl Jobs {
    /// The jobs recorded in `db`.
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Every job's row (next run, lease, last run, last error), by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<JobRow>, DbError> {
        self.db
            .read(|conn| jobs::all(conn).map_err(DbError::from))
            .await
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// The delay before retrying after a failure that follows `failures` consecutive failed runs:
/// `retry × 2^failures`, at most `every`.
fn backoff(retry: Duration, failures: i64, every: Duration) -> Duration {
    let doublings = u32::try_from(failures.clamp(0, 30)).unwrap_or(30);
    retry.saturating_mul(1_u32 << doublings).min(every)
}

/// An error and its causes, `: `-separated.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most [`MAX_ERROR_BYTES`] of `text`, cut at a character boundary.
fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let retry = Duration::from_secs(30);
        let every = Duration::from_secs(300);
        let delays: Vec<u64> = (0..6).map(|f| backoff(retry, f, every).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 300, 300]);
        assert_eq!(backoff(retry, i64::MAX, every), every);
        assert_eq!(backoff(retry, -1, every), retry);
    }

    #[test]
    fn errors_keep_their_causes_and_are_cut_on_a_char_boundary() {
        let inner = std::io::Error::other("disk full");
        let outer = DbError::Migration(format!("{inner}"));
        assert_eq!(describe(&outer), "database migration failed: disk full");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_ERROR_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn names_and_intervals_are_checked() {
        let settings = SchedulerSettings {
            enabled: true,
            cleanup_interval: None,
            retry: Duration::from_secs(1),
            lease: Duration::from_secs(10),
        };
        // A pool that is never used: registration touches no database.
        let url = crate::db::DatabaseUrl::Sqlite(
            std::env::temp_dir().join(format!("latchkey-sched-{}.db", uuid::Uuid::new_v4())),
        );
        let db = Db::connect(&url, 1).expect("sqlite");
        let mut s = Scheduler::new(db, &settings);
        let ok = || async { Ok::<_, JobError>(String::new()) };
        assert!(s.register("cleanup", Duration::from_secs(60), ok).is_ok());
        assert_eq!(
            s.register("cleanup", Duration::from_secs(60), ok).err(),
            Some(SchedulerError::Duplicate("cleanup".into()))
        );
        for bad in ["", "Upper", "with space", &"x".repeat(65)] {
            assert_eq!(
                s.register(bad, Duration::from_secs(60), ok).err(),
                Some(SchedulerError::InvalidName(bad.into()))
            );
        }
        assert!(s.register("zero", Duration::ZERO, ok).is_err());
        assert_eq!(s.job_names(), ["cleanup"]);
        if let crate::db::DatabaseUrl::Sqlite(path) = url {
            let _ = std::fs::remove_file(path);
        }
    }
}
