//! Group inserts on PostgreSQL: the token rows and audit events that token responses made
//! ready before asking storage ([`TokenIssue`]) are inserted by one thread, every issue waiting
//! at that moment in **one transaction** with one multi-row `INSERT` per table, and each
//! request is answered only after that transaction committed.
//!
//! A token response stored on its own costs four round trips (`BEGIN`, two `INSERT`s,
//! `COMMIT`) and a commit (a WAL flush) per token; here it is four round trips and one commit
//! per group. The rules are those of the SQLite writer's group commit ([`super::writer`]):
//!
//! * **Nothing is answered before it is committed.** A request's `Ok` is sent only after the
//!   group's `COMMIT` returned; with PostgreSQL's default `synchronous_commit = on` the WAL is
//!   flushed then, so the rows survive the server process — or this node — being killed.
//! * **One issue that fails does not fail the others.** When the group's statement fails (a
//!   client deleted meanwhile: its rows break the foreign key), the group is rolled back and
//!   each issue is inserted again in a transaction of its own, each answered with its own
//!   result.
//! * **A panic** answers every issue of its group with [`DbError::Writer`]; the thread goes on.
//!
//! The thread has a connection of its own (not one of the pool's), opened at start and opened
//! again after any failure. Groups hold at most [`MAX_GROUP`] issues (about 2,200 bound
//! parameters of PostgreSQL's 65,535).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Instant;

use diesel::connection::Connection;
use diesel::r2d2::ManageConnection;

use super::tokens::{self, TokenIssue};
use super::{ConnectionManager, DbConnection, DbError};

/// Most issues inserted in one transaction.
pub const MAX_GROUP: usize = 128;

struct Job {
    issue: TokenIssue,
    queued: Instant,
    answer: tokio::sync::oneshot::Sender<Result<(), DbError>>,
}

/// The handle requests send their issues to. Dropping the last clone ends the thread.
#[derive(Clone)]
pub struct GroupInsert {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GroupInsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupInsert").finish_non_exhaustive()
    }
}

impl GroupInsert {
    /// Opens the thread's connection (so an unreachable database fails at start) and starts
    /// the thread.
    ///
    /// # Errors
    /// [`DbError::Writer`] when the connection cannot be opened or the thread started.
    pub fn start(manager: ConnectionManager) -> Result<Self, DbError> {
        let conn = manager.connect().map_err(|e| {
            DbError::Writer(format!("cannot open the group insert's connection: {e}"))
        })?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pg-group-insert".into())
            .spawn(move || run(&manager, Some(conn), &queue))
            .map_err(|e| DbError::Writer(format!("cannot start the group insert: {e}")))?;
        Ok(Self { jobs })
    }

    /// Inserts `issue`'s rows in the next group and answers once that group committed.
    ///
    /// # Errors
    /// [`DbError::Query`] with the database's error when `issue`'s own rows were refused;
    /// [`DbError::Writer`] when its group did not commit for another reason or the thread is
    /// gone.
    pub async fn insert(&self, issue: TokenIssue) -> Result<(), DbError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                issue,
                queued: Instant::now(),
                answer,
            })
            .map_err(|_| DbError::Closed)?;
        answered
            .await
            .unwrap_or_else(|_| Err(DbError::Writer("the insert was not committed".into())))
    }
}

/// The thread: waits for an issue, takes every issue queued behind it, inserts them as one
/// group; until every sender is gone.
fn run(manager: &ConnectionManager, mut conn: Option<DbConnection>, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        for job in &group {
            crate::metrics::db_pool_wait(crate::metrics::DbPool::Writer, job.queued.elapsed());
        }
        if conn.is_none() {
            match manager.connect() {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "the group insert cannot connect");
                    for job in group {
                        let _ = job.answer.send(Err(DbError::Writer(
                            "no database connection for the insert".into(),
                        )));
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // Answers not sent because of a panic are dropped: `insert` then reports the write as
        // not committed.
        let ok = catch_unwind(AssertUnwindSafe(|| insert_group(c, group))).unwrap_or(false);
        if !ok {
            // After a failure or a panic the connection's state is not trusted.
            conn = None;
        }
    }
}

/// Inserts `group` in one transaction, or, when that fails, each issue in its own. Returns
/// whether the connection is still usable.
fn insert_group(conn: &mut DbConnection, group: Vec<Job>) -> bool {
    let (issues, answers): (Vec<TokenIssue>, Vec<_>) =
        group.into_iter().map(|j| (j.issue, j.answer)).unzip();
    let together = conn.transaction(|c| tokens::insert_issues(c, &issues));
    match together {
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
            let message = format!("the group insert failed: {e}");
            tracing::error!(error = %e, "the group insert failed");
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

/// Whether the database refused the rows (a constraint, a value) on a connection that is
/// still fine, rather than the connection failing.
fn is_refusal(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(kind, _)
            if !matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
    )
}
