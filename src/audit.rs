//! The audit log: security events (logins, consent, tokens, admin changes) stored in the
//! database with actor, time, IP and details, and mirrored to the `audit` tracing target.
//!
//! Services record events with [`record`] on the connection they change data with, inside the
//! same transaction, so an event exists exactly when its change does. Pages never write events.
//! Details never hold secrets (no passwords, tokens, codes or client secrets).

use std::net::IpAddr;

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::audit_events::{self, AuditFilter, AuditRow};
use crate::db::{self, Db, DbConnection, DbError};
use crate::domain::{Page, PageRequest};

/// Who caused a change: a signed-in user (an admin, or the user themself) with their address,
/// or the system (CLI, background jobs) when `user_id` is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    /// The acting user's id.
    pub user_id: Option<String>,
    /// The acting user's IP address.
    pub ip: Option<IpAddr>,
}

impl Actor {
    /// A signed-in user acting from `ip`.
    #[must_use]
    pub fn user(id: impl Into<String>, ip: Option<IpAddr>) -> Self {
        Self {
            user_id: Some(id.into()),
            ip,
        }
    }

    /// The system itself (command line, maintenance).
    #[must_use]
    pub fn system() -> Self {
        Self::default()
    }
}

/// One event, built up before it is recorded.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    event: &'static str,
    actor_id: Option<String>,
    user_id: Option<String>,
    client_id: Option<String>,
    ip: Option<IpAddr>,
    details: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    /// An event named `event` (dotted: `login.failure`, `user.deactivated`, …).
    #[must_use]
    pub fn new(event: &'static str) -> Self {
        Self {
            event,
            actor_id: None,
            user_id: None,
            client_id: None,
            ip: None,
            details: serde_json::Map::new(),
        }
    }

    /// Caused by `actor` (sets the actor and the IP).
    #[must_use]
    pub fn by(mut self, actor: &Actor) -> Self {
        self.actor_id.clone_from(&actor.user_id);
        if actor.ip.is_some() {
            self.ip = actor.ip;
        }
        self
    }

    /// About this user.
    #[must_use]
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// About this user, if any.
    #[must_use]
    pub fn maybe_user(mut self, user_id: Option<&str>) -> Self {
        self.user_id = user_id.map(str::to_owned);
        self
    }

    /// Involving this client.
    #[must_use]
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// From this address.
    #[must_use]
    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// A fact for the details object (never a secret).
    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The event name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.event
    }
}

/// Stores `event` on `conn` (call it inside the transaction of the change it records) and
/// writes it to the `audit` tracing target.
///
/// # Errors
/// Query failures only.
pub fn record(conn: &mut DbConnection, event: AuditEvent) -> QueryResult<()> {
    let row = event.into_row();
    audit_events::log(&row);
    audit_events::insert(conn, &row)
}

impl AuditEvent {
    /// The row this event is stored as: a new UUID v7 id, the time now, the details as a JSON
    /// object. For writes made ready before they are handed to storage (the token endpoint's
    /// group inserts, `db::Db::insert_issued`); [`record`] does this itself.
    #[must_use]
    pub fn into_row(self) -> AuditRow {
        AuditRow {
            id: uuid::Uuid::now_v7().to_string(),
            occurred_at: db::now(),
            event: self.event.to_owned(),
            actor_id: self.actor_id,
            user_id: self.user_id,
            client_id: self.client_id,
            ip: self.ip.map(|ip| ip.to_string()),
            details: serde_json::Value::Object(self.details).to_string(),
        }
    }
}

/// Reading the audit log, and recording events that change nothing else.
#[derive(Clone, Debug)]
pub struct Audit {
    db: Db,
}

impl Audit {
    /// The audit log in `db`.
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records an event on its own (a failed login changes no other row).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn record(&self, event: AuditEvent) -> Result<(), DbError> {
        self.db
            .write(move |conn| record(conn, event).map_err(DbError::from))
            .await
    }

    /// A page of events matching `filter`, newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(
        &self,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRow>, DbError> {
        self.db
            .read(move |conn| {
                audit_events::list(conn, &filter, page.size, page.offset()).map_err(DbError::from)
            })
            .await
            .map(|(rows, total)| Page::new(rows, page, total))
    }

    /// How many `event`s happened at or after `since` (UTC).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count_since(
        &self,
        event: &'static str,
        since: NaiveDateTime,
    ) -> Result<i64, DbError> {
        self.db
            .read(move |conn| audit_events::count_since(conn, event, since).map_err(DbError::from))
            .await
    }
}
