//! The SQLite writer: one thread that owns the one connection allowed to write, and commits the
//! writes of every request waiting at that moment in **one transaction** (group commit).
//!
//! Every commit appends each page it touched to the WAL — the token row, the audit row and all
//! their index pages — and wakes the writer thread; committing one write at a time made those
//! page writes and thread hand-offs the bulk of the token endpoint's cost. Here each write is a
//! job sent down a channel; the thread takes every job queued, runs them one after another
//! inside `BEGIN IMMEDIATE … COMMIT`, and only then answers them. So:
//!
//! * **Nothing is answered before it is committed.** A job's result (success or error) is
//!   handed back only after the batch's `COMMIT` succeeded; if the commit fails, or the batch
//!   has to be abandoned, every job of the batch gets an error instead of its result — never a
//!   success for a row that was not written. With WAL and `synchronous = NORMAL` a commit has
//!   reached the operating system when `COMMIT` returns, so it survives the process being
//!   killed (not a power cut: that takes `synchronous = FULL`).
//! * **A job that fails does not fail the others.** Jobs open their own `conn.transaction`
//!   for what must be atomic; inside the batch that becomes a savepoint, and a job that returns
//!   an error rolls back to it, leaving the rest of the batch alone. Statements a job runs
//!   outside a transaction of its own are committed with the batch, as they were committed on
//!   their own before (SQLite rolls back a failed statement, not the transaction).
//! * **A job that panics** or leaves the connection's transaction state broken abandons the
//!   batch: it is rolled back, every job already run in it gets an error, and the jobs not yet
//!   run go on in the next batch.
//! * **Exclusive jobs** (migrations) run alone, outside any transaction, between batches.
//!
//! Batches hold at most [`MAX_BATCH`] jobs, so a flood of writes still commits (and answers)
//! every few milliseconds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::ManageConnection;

use super::{ConnectionManager, DbConnection, DbError};

/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 128;

/// What a job hands back once its batch is over: given `None` when the batch committed, the
/// error to answer instead when it did not.
type Answer = Box<dyn FnOnce(Option<DbError>) + Send>;

/// A write, type-erased: runs on the writer's connection and returns how to answer.
type Work = Box<dyn FnOnce(&mut DbConnection) -> Answer + Send>;

struct Job {
    work: Work,
    /// Runs alone, outside a transaction (migrations).
    exclusive: bool,
}

/// The handle requests send their writes to. Dropping the last clone ends the thread.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Opens the writer's connection (so a database that cannot be opened fails at start) and
    /// starts its thread.
    ///
    /// # Errors
    /// [`DbError::Writer`] when the connection cannot be opened or the thread started.
    pub fn start(manager: ConnectionManager) -> Result<Self, DbError> {
        let conn = open(&manager)
            .map_err(|e| DbError::Writer(format!("cannot open the SQLite writer: {e}")))?;
        let restart = Arc::new(AtomicBool::new(false));
        let checkpointer = checkpointer(manager.clone(), Arc::clone(&restart))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run(&manager, Some(conn), &queue, &restart);
                // Ends the checkpointer too.
                drop(checkpointer);
            })
            .map_err(|e| DbError::Writer(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the writer's connection inside the next batch's transaction and answers once
    /// that transaction has committed (see the module documentation). With `exclusive`, `f`
    /// runs alone and outside any transaction.
    ///
    /// # Errors
    /// Whatever `f` returns; [`DbError::Writer`] when its batch did not commit or the writer
    /// is gone.
    pub async fn run<T, E, F>(&self, exclusive: bool, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let span = tracing::Span::current();
        let queued = std::time::Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let work: Work = Box::new(move |conn| {
            // The wait for the one writer connection (`latchkey_db_pool_wait_seconds`,
            // `pool="writer"`): the queue and the batches ahead of this write.
            crate::metrics::db_pool_wait(crate::metrics::DbPool::Writer, queued.elapsed());
            let result = span.in_scope(|| f(conn));
            Box::new(move |failure: Option<DbError>| {
                let _ = tx.send(match failure {
                    None => result,
                    Some(e) => Err(E::from(e)),
                });
            })
        });
        self.jobs
            .send(Job { work, exclusive })
            .map_err(|_| E::from(DbError::Closed))?;
        match rx.await {
            Ok(result) => result,
            // Dropped unanswered: it panicked, or its batch could not begin (logged there).
            Err(_) => Err(E::from(DbError::Writer(
                "the write was not committed".into(),
            ))),
        }
    }
}

/// The writer thread: waits for a job, takes every job queued behind it, runs them as one
/// batch; until every sender is gone.
fn run(
    manager: &ConnectionManager,
    mut conn: Option<DbConnection>,
    queue: &mpsc::Receiver<Job>,
    restart: &AtomicBool,
) {
    let mut pending: Vec<Job> = Vec::new();
    loop {
        if pending.is_empty() {
            match queue.recv() {
                Ok(job) => pending.push(job),
                Err(_) => return,
            }
        }
        while pending.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => pending.push(job),
                Err(_) => break,
            }
        }
        let Some(c) = connection(manager, &mut conn) else {
            // Dropped unrun: each waiting request gets `DbError::Writer`.
            pending.clear();
            continue;
        };
        if restart.swap(false, Ordering::Relaxed) {
            // Between batches, so it waits for nothing of ours (see `checkpointer`).
            match checkpoint(c, "RESTART") {
                Ok(done) if done.busy != 0 => {
                    tracing::debug!(frames = done.log, "WAL restart was busy");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
            }
        }
        if pending[0].exclusive {
            let job = pending.remove(0);
            let outcome = catch_unwind(AssertUnwindSafe(|| (job.work)(c)));
            match outcome {
                Ok(answer) => answer(None),
                Err(_) => conn = None,
            }
            continue;
        }
        let split = pending
            .iter()
            .position(|j| j.exclusive)
            .unwrap_or(pending.len());
        let rest = pending.split_off(split);
        let batch = std::mem::replace(&mut pending, rest);
        let left = run_batch(c, batch);
        if left.broken {
            conn = None;
        }
        // Jobs not run because the batch was abandoned go first in the next one.
        let mut next = left.unrun;
        next.append(&mut pending);
        pending = next;
    }
}

/// The writer's connection: as every connection ([`ConnectionManager`]), and
///
/// * with the savepoint journals in memory (`temp_store = MEMORY`). Each job's own
///   transaction is a savepoint inside the batch, and SQLite copies every page a savepoint
///   changes to a statement journal first — in a temporary file by default, which cost about
///   twenty `pwrite` calls per token; in memory it is a copy of a few pages per job;
/// * without automatic checkpoints (`wal_autocheckpoint = 0`): by default the commit that
///   takes the WAL past 1,000 pages copies it into the database and waits for `fsync`, with
///   every request of the next batches waiting behind it (measured: p99 over 100 ms on a busy
///   disk). [`checkpointer`] does it on a thread of its own instead; the WAL file is cut back
///   to 64 MiB after each reset (`journal_size_limit`).
fn open(manager: &ConnectionManager) -> Result<DbConnection, diesel::r2d2::Error> {
    let mut conn = manager.connect()?;
    conn.batch_execute(
        "PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(diesel::r2d2::Error::QueryError)?;
    Ok(conn)
}

/// How often the checkpointer copies the WAL into the database: every 50 ms, so that a WAL
/// restart (below) finds little left to copy (at 200 ms the p99 under sustained load was
/// 48–73 ms, at 50 ms 25–37 ms).
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// WAL frames (4 KiB pages) past which the writer restarts the WAL: 4,096 frames, 16 MiB.
/// Each restart holds writes back while it copies what the last passive checkpoint left and
/// `fsync`s (28–48 ms measured with 200 ms between checkpoints, at 14,000 tokens/s, when the
/// WAL grows by about 200 MB/s). That shows in the p99 under sustained load (2-core Xeon,
/// client-credentials tokens, 32 connections: 25–37 ms, against 20–29 ms without restarts);
/// larger thresholds were worse (256 MiB: 110 ms, 1 GiB: 40–130 ms — a large WAL costs more to
/// cut back and to checkpoint). Without restarts the WAL reached 6.7–9.8 GB after 30 s of
/// load, which a disk does not survive for long. Without load the WAL restarts at the next
/// write after a passive checkpoint caught up; the file is cut back to 64 MiB
/// (`journal_size_limit`).
const RESTART_AFTER_FRAMES: i32 = 4_096;

/// What `PRAGMA wal_checkpoint` answers.
#[derive(diesel::QueryableByName)]
struct Checkpointed {
    /// 1 when the checkpoint could not take the locks it needed (`SQLITE_BUSY`).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// Frames in the WAL since it was last restarted.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

/// Starts the thread that checkpoints the WAL every [`CHECKPOINT_INTERVAL`] on a connection of
/// its own, until the returned sender is dropped. Durability does not depend on it: a
/// committed transaction is in the WAL, which SQLite replays on the next open.
///
/// * `PRAGMA wal_checkpoint(PASSIVE)` copies what no reader still needs and never blocks the
///   writer.
/// * But SQLite writes the WAL from its start again only when a write transaction begins with
///   **every** frame copied — which a writer committing without pause never sees after a
///   passive checkpoint, so under sustained load the WAL grew without bound (measured: 2 GB
///   after 20 s of client-credentials tokens), each commit extending the file (the kernel
///   zeroing new blocks was 30 % of the server's CPU). So once the WAL holds more than
///   [`RESTART_AFTER_FRAMES`], this thread raises `restart`, and the writer thread runs
///   `wal_checkpoint(RESTART)` itself between two batches: it copies the few frames the
///   passive checkpoints left and makes the next batch write the WAL from its start — over
///   blocks that already exist. Writes wait for that one copy and its `fsync`. (Run from this
///   thread instead, `RESTART` waited up to `busy_timeout` for a gap between the writer's
///   batches, with no checkpoint meanwhile.)
fn checkpointer(
    manager: ConnectionManager,
    restart: Arc<AtomicBool>,
) -> Result<mpsc::Sender<()>, DbError> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut conn: Option<DbConnection> = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_INTERVAL)
            {
                let Some(c) = connection_with(&mut conn, || manager.connect()) else {
                    continue;
                };
                match checkpoint(c, "PASSIVE") {
                    Ok(done) if done.log > RESTART_AFTER_FRAMES => {
                        restart.store(true, Ordering::Relaxed);
                    }
                    Ok(done) if done.busy != 0 => {
                        tracing::debug!(frames = done.log, "WAL checkpoint was busy");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                        conn = None;
                    }
                }
            }
        })
        .map_err(|e| DbError::Writer(format!("cannot start the WAL checkpointer: {e}")))?;
    Ok(stop)
}

/// Runs `PRAGMA wal_checkpoint(<mode>)` on `conn`.
fn checkpoint(conn: &mut DbConnection, mode: &str) -> diesel::QueryResult<Checkpointed> {
    use diesel::RunQueryDsl;
    let query = diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})"));
    let rows: Vec<Checkpointed> = match conn {
        DbConnection::Sqlite(c) => query.load(c)?,
        DbConnection::Postgres(_) => return Err(diesel::result::Error::BrokenTransactionManager),
    };
    rows.into_iter()
        .next()
        .ok_or(diesel::result::Error::NotFound)
}

/// The writer's open connection, opened again if the last one was dropped.
fn connection<'a>(
    manager: &ConnectionManager,
    conn: &'a mut Option<DbConnection>,
) -> Option<&'a mut DbConnection> {
    connection_with(conn, || open(manager))
}

/// `conn`, opened with `open` first if it is closed (a failure is logged).
fn connection_with(
    conn: &mut Option<DbConnection>,
    open: impl FnOnce() -> Result<DbConnection, diesel::r2d2::Error>,
) -> Option<&mut DbConnection> {
    if conn.is_none() {
        match open() {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot open a SQLite connection");
                return None;
            }
        }
    }
    conn.as_mut()
}

/// What a batch left behind.
struct Leftover {
    /// Jobs not run: the batch was abandoned before them.
    unrun: Vec<Job>,
    /// The connection must be opened again.
    broken: bool,
}

/// Runs `batch` in one `BEGIN IMMEDIATE … COMMIT` and answers every job it ran.
fn run_batch(conn: &mut DbConnection, batch: Vec<Job>) -> Leftover {
    let began = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgres(_) => Err(diesel::result::Error::BrokenTransactionManager),
    };
    if let Err(e) = began {
        // Nothing ran: every job gets the error (the database is locked by another process
        // past busy_timeout, or the disk failed).
        let message = format!("cannot begin the write transaction: {e}");
        tracing::error!("{message}");
        // Dropped unrun: each waiting request gets `DbError::Writer`.
        drop(batch);
        return Leftover {
            unrun: Vec::new(),
            broken: broken(conn) || transaction_depth(conn).is_some(),
        };
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut abandoned: Option<&'static str> = None;
    for job in jobs.by_ref() {
        match catch_unwind(AssertUnwindSafe(|| (job.work)(conn))) {
            Ok(answer) => {
                answers.push(answer);
                if broken(conn) || transaction_depth(conn) != Some(1) {
                    abandoned = Some("a write left the transaction in a broken state");
                    break;
                }
            }
            Err(_) => {
                abandoned = Some("a write panicked");
                break;
            }
        }
    }
    let unrun: Vec<Job> = jobs.collect();
    if let Some(why) = abandoned {
        tracing::error!(
            "{why}: its batch of {} writes is rolled back",
            answers.len() + 1
        );
        // The failing job may have left a savepoint open: roll back to the outermost level;
        // the connection is closed anyway (closing rolls back whatever is still open).
        while transaction_depth(conn).is_some() && Manager::rollback_transaction(conn).is_ok() {}
        for answer in answers {
            answer(Some(DbError::Writer(format!(
                "rolled back with its batch: {why}"
            ))));
        }
        return Leftover {
            unrun,
            broken: true,
        };
    }
    match Manager::commit_transaction(conn) {
        Ok(()) => {
            for answer in answers {
                answer(None);
            }
            Leftover {
                unrun,
                broken: false,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "the batch's COMMIT failed: {} writes rolled back", answers.len());
            // Closing the connection rolls back what the failed COMMIT left open.
            for answer in answers {
                answer(Some(DbError::Writer(format!("the commit failed: {e}"))));
            }
            Leftover {
                unrun,
                broken: true,
            }
        }
    }
}

type Manager = <DbConnection as diesel::Connection>::TransactionManager;

/// Whether diesel gave up on `conn`'s transaction state. (Not diesel's
/// `is_broken_transaction_manager`, which also calls an open transaction broken: here one is
/// open on purpose.)
fn broken(conn: &mut DbConnection) -> bool {
    Manager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .is_err()
}

/// The depth diesel's transaction manager holds for `conn` (`None` outside a transaction).
fn transaction_depth(conn: &mut DbConnection) -> Option<u32> {
    Manager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map(std::num::NonZero::get)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::db::DatabaseUrl;

    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = BigInt)]
        v: i64,
    }

    fn insert(conn: &mut DbConnection, v: i64) -> diesel::QueryResult<usize> {
        diesel::sql_query("INSERT INTO t (v) VALUES (?)")
            .bind::<BigInt, _>(v)
            .execute(conn)
    }

    async fn writer(dir: &tempfile::TempDir) -> (SqliteWriter, ConnectionManager) {
        let manager = ConnectionManager::new(DatabaseUrl::Sqlite(dir.path().join("w.db")));
        let writer = SqliteWriter::start(manager.clone()).expect("writer");
        writer
            .run(true, |conn| {
                conn.batch_execute("CREATE TABLE t (v INTEGER PRIMARY KEY NOT NULL)")
                    .map_err(DbError::from)
            })
            .await
            .expect("table");
        (writer, manager)
    }

    /// The values stored, read on a connection of its own (what another reader sees).
    fn stored(manager: &ConnectionManager) -> Vec<i64> {
        let mut conn = manager.connect().expect("reader");
        let rows: Vec<Value> = diesel::sql_query("SELECT v FROM t ORDER BY v")
            .load(&mut conn)
            .expect("select");
        rows.into_iter().map(|r| r.v).collect()
    }

    /// Many writes at once, some of which fail inside their own transaction: each answer
    /// matches what is stored — a success only for a committed row, and a failing write takes
    /// only its own rows with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_write_leaves_its_batch_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, manager) = writer(&dir).await;
        let mut tasks = Vec::new();
        for v in 0..400_i64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer
                    .run(false, move |conn| {
                        conn.transaction::<_, DbError, _>(|conn| {
                            insert(conn, v)?;
                            if v % 7 == 0 {
                                return Err(DbError::Writer("refused".into()));
                            }
                            Ok(v)
                        })
                    })
                    .await
            }));
        }
        let mut answered = Vec::new();
        for (v, task) in (0..).zip(tasks) {
            match task.await.expect("task") {
                Ok(got) => {
                    assert_eq!(got, v);
                    answered.push(v);
                }
                Err(_) => assert_eq!(v % 7, 0, "write {v} failed"),
            }
        }
        assert_eq!(stored(&manager), answered);
        assert_eq!(answered.len(), 400 - 58);
    }

    /// A write that panics rolls its batch back: nothing of it is stored, no write of it is
    /// answered with success, writes not yet run go on, and the writer keeps working.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_panicking_write_never_lets_an_unwritten_row_succeed() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, manager) = writer(&dir).await;
        let mut tasks = Vec::new();
        for v in 0..300_i64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer
                    .run(false, move |conn| {
                        insert(conn, v).map_err(DbError::from)?;
                        assert!(v != 150, "a write that panics");
                        Ok::<_, DbError>(v)
                    })
                    .await
            }));
        }
        let mut answered = Vec::new();
        let mut failed = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(v) => answered.push(v),
                Err(_) => failed += 1,
            }
        }
        assert!(failed >= 1);
        assert!(!answered.contains(&150));
        let stored = stored(&manager);
        assert_eq!(stored, answered, "exactly the answered rows are stored");
        // Still writing.
        writer
            .run(false, |conn| insert(conn, 1_000).map_err(DbError::from))
            .await
            .expect("a write after the panic");
        assert!(self::stored(&manager).contains(&1_000));
    }

    /// An exclusive job runs outside any transaction (migrations need that).
    #[tokio::test]
    async fn exclusive_jobs_run_outside_a_transaction() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, _manager) = writer(&dir).await;
        let depth = writer
            .run(true, |conn| Ok::<_, DbError>(transaction_depth(conn)))
            .await
            .expect("exclusive");
        assert_eq!(depth, None);
        let depth = writer
            .run(false, |conn| Ok::<_, DbError>(transaction_depth(conn)))
            .await
            .expect("grouped");
        assert_eq!(depth, Some(1));
    }

    /// Under writes without a pause the WAL is restarted once it holds more than
    /// [`RESTART_AFTER_FRAMES`]: it stays far below what was written (before, a writer that
    /// never paused kept it growing: gigabytes within a minute of load).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_wal_stays_bounded_under_writes_without_a_pause() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, _manager) = writer(&dir).await;
        writer
            .run(true, |conn| {
                conn.batch_execute("CREATE TABLE blobs (b BLOB NOT NULL)")
                    .map_err(DbError::from)
            })
            .await
            .expect("table");
        let wal = dir.path().join("w.db-wal");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // 16 writers of 8 KB rows: at least two frames (4 KiB pages) each, about 3.8 times
        // the restart threshold in all.
        let rows_each = usize::try_from(RESTART_AFTER_FRAMES).expect("frames") / 2;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let writer = writer.clone();
            tasks.spawn(async move {
                for _ in 0..rows_each {
                    if std::time::Instant::now() > deadline {
                        break;
                    }
                    writer
                        .run(false, |conn| {
                            conn.batch_execute("INSERT INTO blobs (b) VALUES (randomblob(8192))")
                                .map_err(DbError::from)
                        })
                        .await
                        .expect("write");
                }
            });
        }
        let mut largest = 0;
        while !tasks.is_empty() {
            if let Ok(meta) = std::fs::metadata(&wal) {
                largest = largest.max(meta.len());
            }
            tokio::select! {
                done = tasks.join_next() => { done.expect("task").expect("writer task"); }
                () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
        let written = 16 * rows_each as u64 * 8192;
        assert!(
            largest < written / 2,
            "the WAL grew to {largest} bytes for {written} bytes written"
        );
    }
}
