//! The `audit_events` table: security events, written in the same transaction as the change
//! they record (see `crate::audit`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::{DbConnection, MultiBackend};

/// A row of `audit_events`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    /// UUID v7 (sorts by time).
    pub id: String,
    /// When it happened (UTC).
    pub occurred_at: NaiveDateTime,
    /// Dotted event name, e.g. `login.failure`, `token.issued`, `user.deactivated`.
    pub event: String,
    /// The user who acted (an admin, or the user themself); `None` for anonymous actors.
    pub actor_id: Option<String>,
    /// The user the event is about.
    pub user_id: Option<String>,
    /// The client involved.
    pub client_id: Option<String>,
    /// The peer IP address.
    pub ip: Option<String>,
    /// More facts as a JSON object (never secrets).
    pub details: String,
}

/// Which events to list; every set field narrows the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Event name, or a prefix ending in `.` (`login.` matches every login event).
    pub event: Option<String>,
    /// Events where this user acted or was acted on.
    pub user_id: Option<String>,
    /// Events involving this client.
    pub client_id: Option<String>,
    /// From this IP address.
    pub ip: Option<String>,
    /// At or after this time (UTC).
    pub since: Option<NaiveDateTime>,
}

/// Inserts an event.
///
/// # Errors
/// Query failures only.
pub fn insert(conn: &mut DbConnection, row: &AuditRow) -> QueryResult<()> {
    let query = diesel::insert_into(audit_events::table).values(row);
    crate::per_backend!(conn, |c| query.execute(c)).map(|_| ())
}

/// Writes an event that is stored (or about to be, in the same transaction) to the `audit`
/// tracing target: `crate::audit::record` and the token endpoint's group inserts
/// ([`super::grouped`]) call it.
pub fn log(row: &AuditRow) {
    tracing::info!(
        target: "audit",
        event = row.event,
        actor_id = row.actor_id.as_deref(),
        user_id = row.user_id.as_deref(),
        client_id = row.client_id.as_deref(),
        ip = row.ip.as_deref(),
        details = %row.details,
    );
}

fn filtered<'a>(filter: &'a AuditFilter) -> audit_events::BoxedQuery<'a, MultiBackend> {
    let mut query = audit_events::table.into_boxed();
    if let Some(event) = filter.event.as_deref().filter(|e| !e.is_empty()) {
        query = if event.ends_with('.') {
            let pattern = format!("{}%", crate::domain::page::escape_like(event));
            query.filter(audit_events::event.like(pattern).escape('\\'))
        } else {
            query.filter(audit_events::event.eq(event))
        };
    }
    if let Some(user) = filter.user_id.as_deref().filter(|u| !u.is_empty()) {
        query = query.filter(
            audit_events::user_id
                .eq(user)
                .or(audit_events::actor_id.eq(user)),
        );
    }
    if let Some(client) = filter.client_id.as_deref().filter(|c| !c.is_empty()) {
        query = query.filter(audit_events::client_id.eq(client));
    }
    if let Some(ip) = filter.ip.as_deref().filter(|i| !i.is_empty()) {
        query = query.filter(audit_events::ip.eq(ip));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::occurred_at.ge(since));
    }
    query
}

/// One page of matching events, newest first, and the number of matches.
///
/// # Errors
/// Query failures only.
pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<AuditRow>, i64)> {
    let total = filtered(filter).count().get_result(conn)?;
    let rows = filtered(filter)
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(AuditRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Counts events named `event` at or after `since`.
///
/// # Errors
/// Query failures only.
pub fn count_since(conn: &mut DbConnection, event: &str, since: NaiveDateTime) -> QueryResult<i64> {
    audit_events::table
        .filter(audit_events::event.eq(event))
        .filter(audit_events::occurred_at.ge(since))
        .count()
        .get_result(conn)
}

/// Deletes events older than `before`; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(audit_events::table.filter(audit_events::occurred_at.lt(before))).execute(conn)
}
