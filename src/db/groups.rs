//! The `groups` and `group_members` tables. Upstream connectors (the Discord connector maps
//! groups to guild roles) keep their mappings in tables of their own that reference `groups.id`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{group_members, groups, users};
use super::users::UserRow;
use super::{lower, DbConnection};

/// A row of `groups`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = groups)]
pub struct GroupRow {
    /// Stable id (UUID v4 text).
    pub id: String,
    /// Display name.
    pub name: String,
    /// `name` lower-cased: unique, so names differ regardless of case.
    pub name_key: String,
    /// Free text for admins.
    pub description: String,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
}

/// Inserts a group.
///
/// # Errors
/// `DatabaseError(UniqueViolation, …)` when the name is taken.
pub fn insert(conn: &mut DbConnection, row: &GroupRow) -> QueryResult<()> {
    diesel::insert_into(groups::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The group with this id.
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<GroupRow>> {
    groups::table
        .find(id)
        .select(GroupRow::as_select())
        .first(conn)
        .optional()
}

/// Renames a group and sets its description; returns whether it exists.
///
/// # Errors
/// `DatabaseError(UniqueViolation, …)` when the new name is taken.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    description: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(groups::table.find(id))
        .set((
            groups::name.eq(name),
            groups::name_key.eq(name.to_lowercase()),
            groups::description.eq(description),
            groups::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes a group (memberships go with it); returns whether it existed.
///
/// # Errors
/// Query failures only.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(group_members::table.filter(group_members::group_id.eq(id))).execute(conn)?;
    diesel::delete(groups::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// One page of groups whose name contains `search` (case-insensitive), by name, with member
/// counts, and the number of matches.
///
/// # Errors
/// Query failures only.
pub fn list(
    conn: &mut DbConnection,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<(GroupRow, i64)>, i64)> {
    let filtered = || {
        let mut query = groups::table.into_boxed();
        if let Some(s) = search.filter(|s| !s.trim().is_empty()) {
            query = query.filter(
                groups::name_key
                    .like(crate::domain::page::contains_pattern(s))
                    .escape('\\'),
            );
        }
        query
    };
    let total = filtered().count().get_result(conn)?;
    let rows: Vec<GroupRow> = filtered()
        .order(groups::name_key.asc())
        .limit(limit)
        .offset(offset)
        .select(GroupRow::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let members = group_members::table
            .filter(group_members::group_id.eq(&row.id))
            .count()
            .get_result(conn)?;
        out.push((row, members));
    }
    Ok((out, total))
}

/// Every group, by name (for pickers).
///
/// # Errors
/// Query failures only.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<GroupRow>> {
    groups::table
        .order(groups::name_key.asc())
        .select(GroupRow::as_select())
        .load(conn)
}

/// The members of a group, by username.
///
/// # Errors
/// Query failures only.
pub fn members(conn: &mut DbConnection, group_id: &str) -> QueryResult<Vec<UserRow>> {
    group_members::table
        .inner_join(users::table)
        .filter(group_members::group_id.eq(group_id))
        .order(lower(users::username).asc())
        .select(UserRow::as_select())
        .load(conn)
}

/// The groups a user belongs to, by name.
///
/// # Errors
/// Query failures only.
pub fn of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<GroupRow>> {
    group_members::table
        .inner_join(groups::table)
        .filter(group_members::user_id.eq(user_id))
        .order(groups::name_key.asc())
        .select(GroupRow::as_select())
        .load(conn)
}

/// Adds a member (no-op if already one); returns whether a row was added.
///
/// # Errors
/// Query failures only (a foreign-key error for unknown ids).
pub fn add_member(
    conn: &mut DbConnection,
    group_id: &str,
    user_id: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let exists: i64 = group_members::table
        .filter(group_members::group_id.eq(group_id))
        .filter(group_members::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Ok(false);
    }
    diesel::insert_into(group_members::table)
        .values((
            group_members::group_id.eq(group_id),
            group_members::user_id.eq(user_id),
            group_members::added_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Removes a member; returns whether they were one.
///
/// # Errors
/// Query failures only.
pub fn remove_member(conn: &mut DbConnection, group_id: &str, user_id: &str) -> QueryResult<bool> {
    diesel::delete(
        group_members::table
            .filter(group_members::group_id.eq(group_id))
            .filter(group_members::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|n| n == 1)
}
