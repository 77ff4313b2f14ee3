//! Grouped statements on PostgreSQL: requests hand their work to a thread that takes every
//! request waiting at that moment and serves them all with one statement per table, so that a
//! round trip (and, for writes, a commit) is paid per group instead of per request.
//!
//! * [`GroupInsert`] — token responses' rows made ready beforehand ([`TokenIssue`]): every
//!   issue waiting goes into **one transaction** with one multi-row `INSERT` per table, and
//!   each request is answered only after that transaction committed. A token response stored
//!   on its own costs four round trips (`BEGIN`, two `INSERT`s, `COMMIT`) and a WAL flush; here
//!   that is paid once per group.
//! * [`GroupLookup`] — introspection's token lookups: every hash waiting is looked up with one
//!   `SELECT … WHERE token_hash = ANY($1)` (and one for the tokens' users).
//!
//! The rules are those of the SQLite writer's group commit ([`super::writer`]):
//!
//! * **Nothing is answered before it is committed.** An insert's `Ok` is sent only after the
//!   group's `COMMIT` returned; with PostgreSQL's default `synchronous_commit = on` the WAL is
//!   flushed then, so the rows survive the server process — or this node — being killed.
//! * **One issue that fails does not fail the others.** When the group's statement fails (a
//!   client deleted meanwhile: its rows break the foreign key), the group is rolled back and
//!   each issue is inserted again in a transaction of its own, each answered with its own
//!   result.
//! * **A panic** answers every request of its group with an error; the thread goes on.
//!
//! Each thread has a connection of its own (not one of the pool's), opened for its first group
//! and again after any failure. Groups hold at most [`MAX_GROUP`] requests (an insert group binds
//! about 2,200 parameters of PostgreSQL's 65,535).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Instant;

use chrono::NaiveDateTime;
use diesel::connection::Connection;
use diesel::r2d2::ManageConnection;

use super::tokens::{self, TokenIssue, TokenRow};
use super::users::UserRow;
use super::{ConnectionManager, DbConnection, DbError};

/// Most requests served by one group.
pub const MAX_GROUP: usize = 128;

/// A thread serving groups of `J` with `serve`, which gets the thread's connection (`None`
/// when it cannot be opened: answer every job with an error) and returns whether the
/// connection is still usable.
struct Grouped<J> {
    jobs: mpsc::Sender<J>,
}

impl<J> Clone for Grouped<J> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<J> std::fmt::Debug for Grouped<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grouped").finish_non_exhaustive()
    }
}

impl<J: Send + 'static> Grouped<J> {
    /// Starts the thread. Its connection is opened for the first group, not here: a process
    /// that never sends one (the command line) opens none.
    fn start(
        name: &str,
        manager: ConnectionManager,
        serve: fn(Option<&mut DbConnection>, Vec<J>) -> bool,
    ) -> Result<Self, DbError> {
        let (jobs, queue) = mpsc::channel::<J>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut conn: Option<DbConnection> = None;
                while let Ok(first) = queue.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    if conn.is_none() {
                        match manager.connect() {
                            Ok(c) => conn = Some(c),
                            Err(e) => tracing::error!(error = %e, "a grouped-statement thread cannot connect"),
                        }
                    }
                    // Answers not sent because of a panic are dropped: the caller reports the
                    // request as failed.
                    let usable =
                        catch_unwind(AssertUnwindSafe(|| serve(conn.as_mut(), group))).unwrap_or(false);
                    if !usable {
                        // After a failure or a panic the connection's state is not trusted.
                        conn = None;
                    }
                }
            })
            .map_err(|e| DbError::Writer(format!("cannot start {name}: {e}")))?;
        Ok(Self { jobs })
    }

    /// Sends the job `job` makes around its answer's sender, and waits for the answer; a job
    /// dropped unanswered (its group panicked) is [`DbError::Writer`] with `lost`.
    async fn ask<T>(
        &self,
        job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, DbError>>) -> J,
        lost: &'static str,
    ) -> Result<T, DbError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs.send(job(answer)).map_err(|_| DbError::Closed)?;
        answered
            .await
            .unwrap_or_else(|_| Err(DbError::Writer(lost.into())))
    }
}

/// Whether the database refused the statement (a constraint, a value) on a connection that is
/// still fine, rather than the connection failing.
fn is_refusal(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(kind, _)
            if !matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
    )
}

struct InsertJob {
    issue: TokenIssue,
    queued: Instant,
    answer: tokio::sync::oneshot::Sender<Result<(), DbError>>,
}

/// Inserts token responses' rows in groups (see the module documentation). Cheap to clone;
/// dropping the last clone ends the thread.
#[derive(Clone, Debug)]
pub struct GroupInsert(Grouped<InsertJob>);

impl GroupInsert {
    /// Starts the `pg-group-insert` thread.
    ///
    /// # Errors
    /// [`DbError::Writer`] when the thread cannot be started.
    pub fn start(manager: ConnectionManager) -> Result<Self, DbError> {
        Grouped::start("pg-group-insert", manager, insert_group).map(Self)
    }

    /// Inserts `issue`'s rows in the next group and answers once that group committed.
    ///
    /// # Errors
    /// [`DbError::Query`] with the database's error when `issue`'s own rows were refused;
    /// [`DbError::Writer`] when its group did not commit for another reason or the thread is
    /// gone.
    pub async fn insert(&self, issue: TokenIssue) -> Result<(), DbError> {
        let queued = Instant::now();
        self.0
            .ask(
                |answer| InsertJob {
                    issue,
                    queued,
                    answer,
                },
                "the insert was not committed",
            )
            .await
    }
}

/// Inserts `group` in one transaction, or, when that fails, each issue in its own. Returns
/// whether the connection is still usable.
fn insert_group(conn: Option<&mut DbConnection>, group: Vec<InsertJob>) -> bool {
    for job in &group {
        crate::metrics::db_pool_wait(crate::metrics::DbPool::Writer, job.queued.elapsed());
    }
    let (issues, answers): (Vec<TokenIssue>, Vec<_>) =
        group.into_iter().map(|j| (j.issue, j.answer)).unzip();
    let Some(conn) = conn else {
        for answer in answers {
            let _ = answer.send(Err(DbError::Writer(
                "no database connection for the insert".into(),
            )));
        }
        return false;
    };
    match conn.transaction(|c| tokens::insert_issues(c, &issues)) {
        Ok(()) => {
            for (issue, answer) in issues.iter().zip(answers) {
                super::audit_events::log(&issue.audit);
                let _ = answer.send(Ok(()));
            }
            true
        }
        Err(e) if issues.len() == 1 => {
            let usable = is_refusal(&e);
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(DbError::Query(e)));
            }
            usable
        }
        Err(e) if !is_refusal(&e) => {
            tracing::error!(error = %e, "the group insert failed");
            let message = format!("the group insert failed: {e}");
            for answer in answers {
                let _ = answer.send(Err(DbError::Writer(message.clone())));
            }
            false
        }
        Err(_) => {
            let mut usable = true;
            for (issue, answer) in issues.iter().zip(answers) {
                let own =
                    conn.transaction(|c| tokens::insert_issues(c, std::slice::from_ref(issue)));
                match &own {
                    Ok(()) => super::audit_events::log(&issue.audit),
                    Err(e) => usable &= is_refusal(e),
                }
                let _ = answer.send(own.map_err(DbError::Query));
            }
            usable
        }
    }
}

/// A usable token and its owner, as [`tokens::find_usable`] answers.
pub type Usable = Option<(TokenRow, Option<UserRow>)>;

struct LookupJob {
    token_hash: String,
    now: NaiveDateTime,
    queued: Instant,
    answer: tokio::sync::oneshot::Sender<Result<Usable, DbError>>,
}

/// Looks tokens up by hash in groups (see the module documentation). Cheap to clone;
/// dropping the last clone ends the thread.
#[derive(Clone, Debug)]
pub struct GroupLookup(Grouped<LookupJob>);

impl GroupLookup {
    /// Starts the `pg-group-lookup` thread.
    ///
    /// # Errors
    /// [`DbError::Writer`] when the thread cannot be started.
    pub fn start(manager: ConnectionManager) -> Result<Self, DbError> {
        Grouped::start("pg-group-lookup", manager, lookup_group).map(Self)
    }

    /// The token whose SHA-256 is `token_hash` when it is usable at `now`, with its owner —
    /// exactly what [`tokens::find_usable`] answers — looked up in the next group.
    ///
    /// # Errors
    /// [`DbError::Query`] or [`DbError::Writer`] when the group's query failed or the thread
    /// is gone.
    pub async fn find_usable(
        &self,
        token_hash: String,
        now: NaiveDateTime,
    ) -> Result<Usable, DbError> {
        let queued = Instant::now();
        self.0
            .ask(
                |answer| LookupJob {
                    token_hash,
                    now,
                    queued,
                    answer,
                },
                "the lookup was not answered",
            )
            .await
    }
}

/// Looks up every hash of `group` with one query for the tokens and one for their users.
fn lookup_group(conn: Option<&mut DbConnection>, group: Vec<LookupJob>) -> bool {
    for job in &group {
        crate::metrics::db_pool_wait(crate::metrics::DbPool::Shared, job.queued.elapsed());
    }
    let Some(conn) = conn else {
        for job in group {
            let _ = job.answer.send(Err(DbError::Writer(
                "no database connection for the lookup".into(),
            )));
        }
        return false;
    };
    let hashes: Vec<&str> = group.iter().map(|j| j.token_hash.as_str()).collect();
    let found = tokens::find_many_with_owners(conn, &hashes);
    match found {
        Ok((rows, owners)) => {
            let rows: HashMap<&str, &TokenRow> =
                rows.iter().map(|r| (r.token_hash.as_str(), r)).collect();
            let owners: HashMap<&str, &UserRow> =
                owners.iter().map(|u| (u.id.as_str(), u)).collect();
            for job in group {
                let usable = rows
                    .get(job.token_hash.as_str())
                    .filter(|row| row.is_active(job.now))
                    .and_then(|row| match &row.user_id {
                        None => Some(((*row).clone(), None)),
                        Some(id) => owners
                            .get(id.as_str())
                            .filter(|u| u.is_active)
                            .map(|u| ((*row).clone(), Some((*u).clone()))),
                    });
                let _ = job.answer.send(Ok(usable));
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "the group lookup failed");
            let usable = is_refusal(&e);
            let message = format!("the group lookup failed: {e}");
            for job in group {
                let _ = job.answer.send(Err(DbError::Writer(message.clone())));
            }
            usable
        }
    }
}
