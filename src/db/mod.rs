//! Storage: one diesel codebase over SQLite and PostgreSQL.
//!
//! * [`DbConnection`] is a `diesel::MultiConnection` over both backends; the backend is chosen by
//!   [`DatabaseUrl::parse`] from the URL scheme (never by trying each backend in turn).
//! * [`Db`] owns the r2d2 pools and is the **one** way to touch the database: [`Db::read`] and
//!   [`Db::write`] run a closure with a connection and carry the caller's tracing span. Reads
//!   run on tokio's blocking pool with a pooled connection. On SQLite all writes go to one
//!   thread that owns the one connection allowed to write (SQLite has one writer, so writers
//!   queue instead of failing with `SQLITE_BUSY`) and commits the writes waiting at that moment
//!   together, answering each only after the commit ([`writer`]); reads use a separate pool and
//!   run concurrently thanks to WAL. On PostgreSQL both share one pool.
//! * Error policy: the table modules return `diesel::QueryResult`; [`DbError`] adds pool and
//!   task failures; services wrap it in their own `thiserror` enums.

pub mod audit_events;
pub mod clients;
pub mod codes;
pub mod consents;
pub mod discord_accounts;
pub mod discord_connector;
pub mod grouped;
pub mod groups;
pub mod held_secrets;
pub mod jobs;
pub mod one_time_codes;
pub mod rate_limits;
#[allow(missing_docs)] // diesel-generated table and column items
pub mod schema;
pub mod signing_keys;
pub mod tokens;
pub mod upstream_email_vouches;
pub mod upstream_links;
pub mod upstream_providers;
pub mod upstream_used_states;
pub mod user_sessions;
pub mod users;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// Migrations for SQLite, embedded at compile time from `migrations/sqlite`.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Migrations for PostgreSQL, embedded at compile time from `migrations/postgres`.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub use connection::{DbConnection, MultiBackend};

mod connection {
    // The derive generates public helper items (the `MultiBackend` and its query builder) that
    // carry no documentation of their own.
    #![allow(missing_docs)]

    /// A connection to either supported backend. Queries written once against this type run on
    /// both.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        /// An embedded SQLite database (WAL mode, foreign keys on).
        Sqlite(diesel::SqliteConnection),
        /// A PostgreSQL server.
        Postgres(diesel::PgConnection),
    }
}

/// Runs a diesel expression on the concrete connection inside a [`DbConnection`], so that the
/// same query text is written once and compiled for both backends.
///
/// Used for the hottest queries, with [`first_of`] instead of `.first()`. Measured on SQLite
/// (lookup by primary key of a 20-column row): 31 µs through the `MultiConnection` wrapper with
/// `.first()`, 9 µs through the wrapper with `.load()`, 3 µs on the concrete connection with
/// `.load()` — the wrapper re-serialises the SQL on every call, and diesel re-prepares
/// statements that carry `LIMIT` instead of taking them from its statement cache.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Postgres($c) => $body,
        }
    };
}

/// Loads a `SELECT` and, on PostgreSQL, locks the rows it returns until the transaction ends
/// (`FOR NO KEY UPDATE`: the lock an `UPDATE` of non-key columns takes, so it conflicts with
/// such updates and with itself, but not with the `FOR KEY SHARE` that foreign-key checks take
/// when rows referencing it are inserted). SQLite has no row locks and needs none: it has one
/// writer, so a write transaction is serialised already. Expands to a `QueryResult<Vec<_>>`.
/// Like [`per_backend!`], `$query` is an expression written out in each arm (its `as_select`
/// is typed per backend), so pass the query itself, not a variable holding it.
///
/// Used to serialise minting and revoking tokens per user (see [`users::lock`]). Must be
/// called before the transaction touches any token or code row, so that every transaction
/// takes its locks in the same order (user row first) and none can deadlock.
#[macro_export]
macro_rules! load_locked {
    ($conn:expr, $query:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite(c) => diesel::RunQueryDsl::load($query, c),
            $crate::db::DbConnection::Postgres(c) => {
                diesel::RunQueryDsl::load(diesel::QueryDsl::for_no_key_update($query), c)
            }
        }
    };
}

diesel::define_sql_function! {
    /// SQL `lower(text)`, for case-insensitive search on both backends (PostgreSQL's `LIKE` is
    /// case-sensitive, SQLite's only for non-ASCII).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The first row of a lookup by a unique key (used with `.load()`, see [`per_backend!`]).
#[must_use]
pub fn first_of<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// The current time in UTC, truncated to microseconds so that it survives a round trip through
/// either backend unchanged (PostgreSQL `TIMESTAMP` keeps microseconds).
#[must_use]
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// Where the database lives, parsed from the `database.url` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, or a bare file path.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to libpq unchanged.
    Postgres(String),
}

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseUrlError {
    /// The scheme is neither `sqlite` nor `postgres`/`postgresql`.
    #[error("unsupported database URL scheme `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedScheme(String),
    /// The URL is empty or names no file.
    #[error("the database URL is empty")]
    Empty,
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `postgres://…`, `postgresql://…`, or a bare path
    /// (anything without a `scheme:` prefix is taken as a SQLite file).
    ///
    /// # Errors
    /// [`DatabaseUrlError::UnsupportedScheme`] for any other scheme (e.g. `mysql://`),
    /// [`DatabaseUrlError::Empty`] for an empty string or `sqlite://` without a path.
    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DatabaseUrlError::Empty);
        }
        match raw.split_once(':') {
            Some((scheme, rest))
                if scheme.len() > 1
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.') =>
            {
                match scheme.to_ascii_lowercase().as_str() {
                    "sqlite" => {
                        let path = rest.strip_prefix("//").unwrap_or(rest);
                        if path.is_empty() {
                            return Err(DatabaseUrlError::Empty);
                        }
                        Ok(Self::Sqlite(PathBuf::from(path)))
                    }
                    "postgres" | "postgresql" => Ok(Self::Postgres(raw.to_owned())),
                    other => Err(DatabaseUrlError::UnsupportedScheme(other.to_owned())),
                }
            }
            // No scheme (or a Windows drive letter): a file path.
            _ => Ok(Self::Sqlite(PathBuf::from(raw))),
        }
    }

    /// A description safe to log: the SQLite path, or the PostgreSQL URL without its password.
    #[must_use]
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    parsed.to_string()
                }
                Err(_) => "postgres://(unparseable)".to_owned(),
            },
        }
    }
}

/// Opens connections for r2d2, choosing the backend from the parsed URL.
#[derive(Clone, Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`; nothing is opened until the pool asks.
    #[must_use]
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // busy_timeout first: switching to WAL itself needs the lock.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConnection::Postgres)
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        diesel::r2d2::R2D2Connection::ping(conn).map_err(diesel::r2d2::Error::QueryError)
    }

    /// A connection whose server went away or whose transaction state is broken is dropped
    /// when it returns to the pool.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Failures of the storage layer as seen by services.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    /// No connection could be had from the pool within its timeout.
    #[error("no database connection available")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// The blocking task panicked or was cancelled.
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The pool was shut down.
    #[error("the database pool is closed")]
    Closed,
    /// A write was not committed: its group commit failed or was abandoned, or the SQLite
    /// writer could not open its connection (see [`writer`]).
    #[error("database write failed: {0}")]
    Writer(String),
}

impl DbError {
    /// Whether the database refused a text value of the request itself rather than failing:
    /// PostgreSQL refuses a NUL in text with SQLSTATE 22021 (`character_not_in_repertoire`,
    /// "invalid byte sequence for encoding "UTF8": 0x00") — the one byte sequence a Rust string
    /// can hold that PostgreSQL's UTF-8 does not take. The edges refuse NUL before a query sees
    /// it (form and query parsing, JSON bodies, paths); this lets routes answer 400 instead of
    /// 503 for anything that still slips through. diesel reports that SQLSTATE as
    /// `DatabaseErrorKind::Unknown` without the code, so it is recognised by the server's
    /// message, which is English unless the server's `lc_messages` says otherwise (then it
    /// stays a storage failure). SQLite stores NUL and never answers this.
    #[must_use]
    pub fn is_refused_text(&self) -> bool {
        match self {
            Self::Query(diesel::result::Error::DatabaseError(_, info)) => info
                .message()
                .starts_with("invalid byte sequence for encoding"),
            _ => false,
        }
    }
}

/// A pool with an async gate in front: at most `max_size` closures are handed to the blocking
/// pool at once, so surplus requests wait as cheap futures instead of as parked threads fighting
/// over the pool's mutex (measured: 75 threads and ~35% of CPU in futex/scheduler calls at 32
/// concurrent introspections without the gate).
#[derive(Clone)]
struct GatedPool {
    pool: Pool<ConnectionManager>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    /// The pool's name in metrics.
    name: crate::metrics::DbPool,
}

impl GatedPool {
    fn new(pool: Pool<ConnectionManager>, name: crate::metrics::DbPool) -> Self {
        let permits = pool.max_size() as usize;
        Self {
            pool,
            gate: std::sync::Arc::new(tokio::sync::Semaphore::new(permits)),
            name,
        }
    }

    fn usage(&self) -> crate::metrics::PoolUsage {
        let state = self.pool.state();
        crate::metrics::PoolUsage {
            pool: self.name,
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }
}

type DbPool = GatedPool;

/// Where writes go: SQLite's writer thread, or PostgreSQL's shared pool (and the threads
/// that insert token issues and look tokens up in groups, [`grouped`]).
#[derive(Clone)]
enum Writer {
    Sqlite(writer::SqliteWriter),
    Pool(DbPool, grouped::GroupInsert, grouped::GroupLookup),
}

/// The database handle shared by every request: cheap to clone.
#[derive(Clone)]
pub struct Db {
    writer: Writer,
    reader: DbPool,
    url: DatabaseUrl,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.url.redacted())
            .finish()
    }
}

impl Db {
    /// Opens the pools (and, for SQLite, creates the file's directory and starts the writer
    /// thread). `max_connections` bounds the read pool on SQLite and the shared pool on
    /// PostgreSQL; SQLite writes use one connection. Blocks while connecting: call it from
    /// startup code, not from a request.
    ///
    /// # Errors
    /// [`DbError::Pool`] when the first connection cannot be opened within 10 seconds.
    pub fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Self, DbError> {
        let manager = ConnectionManager::new(url.clone());
        let build = |size: u32| {
            let pool = Pool::builder()
                .max_size(size.max(1))
                // No idle minimum: r2d2 refills a minimum from a background thread, and a
                // process that exits while that thread is inside libpq's connect crashes in
                // libpq's exit handlers (seen as SIGSEGV after `latchkey check`). Connections
                // are then only opened for a caller that waits for them.
                .min_idle(Some(0))
                // r2d2 would run `SELECT 1` before every checkout; a broken connection shows up
                // as a query error instead, and `/readyz` checks the database explicitly.
                .test_on_check_out(false)
                .connection_timeout(Duration::from_secs(10))
                .build(manager.clone())?;
            // Open the first connection now, so an unreachable database fails at startup.
            drop(pool.get()?);
            Ok::<_, DbError>(pool)
        };
        match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if !dir.exists() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            DbError::Migration(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                let writer = Writer::Sqlite(writer::SqliteWriter::start(manager.clone())?);
                let reader =
                    GatedPool::new(build(max_connections)?, crate::metrics::DbPool::Reader);
                Ok(Self {
                    writer,
                    reader,
                    url: url.clone(),
                })
            }
            DatabaseUrl::Postgres(_) => {
                let pool = GatedPool::new(build(max_connections)?, crate::metrics::DbPool::Shared);
                let insert = grouped::GroupInsert::start(manager.clone())?;
                let lookup = grouped::GroupLookup::start(manager)?;
                Ok(Self {
                    writer: Writer::Pool(pool.clone(), insert, lookup),
                    reader: pool,
                    url: url.clone(),
                })
            }
        }
    }

    /// The URL this handle was opened with.
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Each pool's connections now (SQLite: the readers — writes go to the writer thread's one
    /// connection, which is no pool; PostgreSQL: the shared pool), for the metrics.
    #[must_use]
    pub fn pool_usage(&self) -> Vec<crate::metrics::PoolUsage> {
        vec![self.reader.usage()]
    }

    /// Runs `f` with a connection meant for reading. See [`Db::write`].
    ///
    /// # Errors
    /// Whatever `f` returns, or [`DbError`] (converted into `E`) when no connection or thread
    /// could be had.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        Self::run(self.reader.clone(), f).await
    }

    /// Runs `f`, a lookup by an indexed key (a few microseconds on SQLite), with a connection
    /// meant for reading — on SQLite **on the calling thread** when a pooled connection is idle
    /// at once, instead of handing it to the blocking pool and back. Under introspection load
    /// those two thread hand-offs were about a third of the server's CPU (`perf`: the
    /// scheduler's `finish_task_switch` alone 25 %), more than the query. A WAL reader does not
    /// wait for the writer's lock; a read that begins while the writer restarts the WAL
    /// (`writer::checkpointer`) retries inside SQLite for a moment. When no connection is
    /// idle, and always on PostgreSQL (a network round trip), it is [`Db::read`]. Not for
    /// queries whose cost grows with the data.
    ///
    /// # Errors
    /// As [`Db::read`].
    pub async fn lookup<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if matches!(self.url, DatabaseUrl::Sqlite(_)) {
            if let Ok(_permit) = self.reader.gate.try_acquire() {
                if let Some(mut conn) = self.reader.pool.try_get() {
                    crate::metrics::db_pool_wait(self.reader.name, Duration::ZERO);
                    return f(&mut conn);
                }
            }
        }
        self.read(f).await
    }

    /// The token whose SHA-256 is `token_hash` when it is usable at `now`, with its owner
    /// ([`tokens::find_usable`]): on SQLite a [`Db::lookup`], on PostgreSQL in a group lookup
    /// ([`grouped::GroupLookup`]: one query for every lookup waiting at that moment).
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub async fn find_usable_token(
        &self,
        token_hash: String,
        now: NaiveDateTime,
    ) -> Result<grouped::Usable, DbError> {
        match &self.writer {
            Writer::Pool(_, _, lookup) => lookup.find_usable(token_hash, now).await,
            Writer::Sqlite(_) => {
                self.lookup(move |conn| {
                    tokens::find_usable(conn, &token_hash, None, now).map_err(DbError::from)
                })
                .await
            }
        }
    }

    /// Runs `f` with the connection that may write. Use a transaction inside `f` for anything
    /// that writes more than one row: on SQLite `f` runs inside a group commit (see
    /// [`writer`]), where `f`'s own transaction is a savepoint that an error rolls back alone,
    /// and the answer comes only after the group committed. On PostgreSQL `f` runs on the
    /// blocking pool with a pooled connection, as [`Db::read`].
    ///
    /// # Errors
    /// As [`Db::read`]; [`DbError::Writer`] when the group `f` ran in did not commit.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &self.writer {
            Writer::Sqlite(writer) => writer.run(false, f).await,
            Writer::Pool(pool, _, _) => Self::run(pool.clone(), f).await,
        }
    }

    /// Stores a token response's rows made ready beforehand ([`tokens::TokenIssue`]), all or
    /// nothing, and answers once they are committed: on SQLite as any write (in the writer's
    /// group commit), on PostgreSQL in a group insert ([`grouped`]) — with the issues of
    /// other requests waiting at that moment, in one transaction.
    ///
    /// # Errors
    /// [`DbError::Query`] when the rows were refused (a foreign key: the client is gone);
    /// [`DbError::Writer`] when they were not committed for another reason.
    pub async fn insert_issued(&self, issue: tokens::TokenIssue) -> Result<(), DbError> {
        match &self.writer {
            Writer::Sqlite(writer) => {
                // The audit line is written here, after the commit, not in the writer thread.
                let issue = writer
                    .run(false, move |conn| {
                        conn.transaction(|c| issue.insert(c))?;
                        Ok::<_, DbError>(issue)
                    })
                    .await?;
                audit_events::log(&issue.audit);
                Ok(())
            }
            Writer::Pool(_, insert, _) => insert.insert(issue).await,
        }
    }

    /// Runs `f` alone with the connection that may write, outside any transaction of the
    /// group commit (migrations, which manage their own).
    async fn write_alone<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &self.writer {
            Writer::Sqlite(writer) => writer.run(true, f).await,
            Writer::Pool(pool, _, _) => Self::run(pool.clone(), f).await,
        }
    }

    async fn run<T, E, F>(pool: DbPool, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let span = tracing::Span::current();
        // The wait for a connection: the gate, the blocking pool's thread and r2d2's checkout.
        let waiting = std::time::Instant::now();
        let Ok(_permit) = pool.gate.acquire().await else {
            return Err(E::from(DbError::Closed));
        };
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.pool.get().map_err(|e| E::from(DbError::Pool(e)))?;
            crate::metrics::db_pool_wait(pool.name, waiting.elapsed());
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Task(e)))?
    }

    /// Applies pending migrations and returns the names of those applied. On PostgreSQL an
    /// advisory lock keeps two nodes starting at once from migrating concurrently.
    ///
    /// # Errors
    /// [`DbError::Migration`] with the migration's own message.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        self.write_alone(|conn| run_migrations(conn).map_err(DbError::Migration))
            .await
    }

    /// `SELECT 1` through the read pool: used by `/readyz` and `latchkey check`.
    ///
    /// # Errors
    /// [`DbError`] when the database cannot be reached.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
    }
}

/// Serialises one-time set-up work (creating the first signing keys) between nodes: on
/// PostgreSQL a transaction-scoped advisory lock; SQLite has a single writer already. Call it
/// first inside a transaction.
///
/// # Errors
/// Query failures.
pub fn lock_for_setup(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(_) => Ok(()),
        DbConnection::Postgres(c) => c.batch_execute("SELECT pg_advisory_xact_lock(7418812)"),
    }
}

/// Applies pending migrations on one connection; the names applied are returned.
///
/// # Errors
/// The migration harness's message.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let names = |v: Vec<diesel::migration::MigrationVersion<'_>>| {
        v.into_iter().map(|m| m.to_string()).collect::<Vec<_>>()
    };
    match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(names)
            .map_err(|e| e.to_string()),
        DbConnection::Postgres(c) => {
            const LOCK: &str = "SELECT pg_advisory_lock(7418811)";
            const UNLOCK: &str = "SELECT pg_advisory_unlock(7418811)";
            c.batch_execute(LOCK).map_err(|e| e.to_string())?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(names)
                .map_err(|e| e.to_string());
            let _ = c.batch_execute(UNLOCK);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/latchkey.db"),
            Ok(DatabaseUrl::Sqlite("data/latchkey.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("data/x.db"),
            Ok(DatabaseUrl::Sqlite("data/x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://postgres@127.0.0.1/x"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("mysql://root@localhost/x"),
            Err(DatabaseUrlError::UnsupportedScheme("mysql".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Err(DatabaseUrlError::Empty)
        );
        assert_eq!(DatabaseUrl::parse(""), Err(DatabaseUrlError::Empty));
    }

    #[test]
    fn redacts_passwords() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").expect("valid");
        assert!(!url.redacted().contains("secret"));
    }
}
