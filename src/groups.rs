//! Groups of users, managed by admins. Groups are Latchkey's own; upstream connectors map them
//! to outside roles (the Discord connector: a group ↔ a guild role) in tables of their own, so
//! a group never needs to know which connectors use it.
//!
//! A membership change (adding, removing, deleting a group) queues, in its own transaction, a
//! check of each Discord role mapped to the group for the user's linked Discord account
//! ([`discord_connector::queue_for_membership`]); the Discord connector applies it. So
//! whoever calls this service — the console today, any API, command or group source later —
//! keeps Discord in step.
//!
//! Every change is checked here, inside its transaction, whoever calls ([`privileges`]): only
//! the system or an active staff member or superuser changes groups at all; memberships follow
//! the account rule (staff change those of ordinary users, not their own nor an admin's); a
//! group that has a staff or superuser member is renamed or deleted only by a superuser.

use diesel::Connection;

use crate::accounts::privileges::{self, NotAllowed};
use crate::accounts::Account;
use crate::audit::{self, Actor, AuditEvent};
use crate::db::discord_connector;
use crate::db::groups::{self, GroupRow};
use crate::db::{self, users, Db, DbError};
use crate::domain::{Page, PageRequest};

/// Why a group change was refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The input is invalid; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// Another group already has this name (names are compared case-insensitively).
    #[error("a group with this name already exists")]
    Taken,
    /// No such group or user.
    #[error("no such group or user")]
    NotFound,
    /// The actor may not make this change ([`privileges`]: not staff, their own memberships, an
    /// admin's memberships, a group with admins in it); nothing changed.
    #[error(transparent)]
    Forbidden(#[from] NotAllowed),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for GroupError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Self::Taken,
            other => Self::Db(DbError::Query(other)),
        }
    }
}

/// A group with its member count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub group: GroupRow,
    /// How many users belong to it.
    pub members: i64,
}

/// The groups service.
#[derive(Clone, Debug)]
pub struct Groups {
    db: Db,
}

/// Checks a group name: 1 to 150 characters, no control characters; returns it trimmed.
fn parse_name(name: &str) -> Result<String, GroupError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 150 {
        return Err(GroupError::Invalid(
            "a group name must have 1 to 150 characters".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(GroupError::Invalid(
            "a group name cannot contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn parse_description(description: &str) -> Result<String, GroupError> {
    let description = description.trim();
    if description.chars().count() > 1000 {
        return Err(GroupError::Invalid(
            "a description may have at most 1000 characters".into(),
        ));
    }
    Ok(description.to_owned())
}

impl Groups {
    /// The service over `db`.
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// A page of groups whose name contains `search` (case-insensitive), by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(
        &self,
        search: Option<String>,
        page: PageRequest,
    ) -> Result<Page<GroupSummary>, DbError> {
        self.db
            .read(move |conn| {
                groups::list(conn, search.as_deref(), page.size, page.offset())
                    .map_err(DbError::from)
            })
            .await
            .map(|(rows, total)| {
                Page::new(rows, page, total).map(|(group, members)| GroupSummary { group, members })
            })
    }

    /// Every group, by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn all(&self) -> Result<Vec<GroupRow>, DbError> {
        self.db
            .read(|conn| groups::all(conn).map_err(DbError::from))
            .await
    }

    /// A group and its members (by username).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn find(&self, id: &str) -> Result<Option<(GroupRow, Vec<Account>)>, DbError> {
        let id = id.to_owned();
        self.db
            .read(move |conn| {
                let Some(group) = groups::find(conn, &id)? else {
                    return Ok(None);
                };
                let members = groups::members(conn, &id)?;
                Ok(Some((
                    group,
                    members.into_iter().map(Account::from).collect(),
                )))
            })
            .await
    }

    /// The groups `user_id` belongs to, by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn of_user(&self, user_id: &str) -> Result<Vec<GroupRow>, DbError> {
        let id = user_id.to_owned();
        self.db
            .read(move |conn| groups::of_user(conn, &id).map_err(DbError::from))
            .await
    }

    /// Creates a group (staff only).
    ///
    /// # Errors
    /// [`GroupError::Invalid`], [`GroupError::Taken`], [`GroupError::Forbidden`].
    pub async fn create(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
    ) -> Result<GroupRow, GroupError> {
        let name = parse_name(name)?;
        let description = parse_description(description)?;
        let now = db::now();
        let row = GroupRow {
            id: uuid::Uuid::new_v4().to_string(),
            name_key: name.to_lowercase(),
            name,
            description,
            created_at: now,
            updated_at: now,
        };
        let stored = row.clone();
        let event = AuditEvent::new("group.created")
            .by(actor)
            .detail("group_id", row.id.clone())
            .detail("name", row.name.clone());
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, GroupError, _>(|conn| {
                    privileges::check_staff::<GroupError>(conn, &actor)?;
                    groups::insert(conn, &stored)?;
                    audit::record(conn, event)?;
                    Ok(())
                })
            })
            .await?;
        Ok(row)
    }

    /// Renames a group and sets its description (staff only). Renaming a group that has a staff
    /// or superuser member is a superuser's ([`privileges::check_may_rename_group`]); its
    /// description stays staff's.
    ///
    /// # Errors
    /// [`GroupError::Invalid`], [`GroupError::Taken`], [`GroupError::NotFound`],
    /// [`GroupError::Forbidden`].
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        description: &str,
    ) -> Result<(), GroupError> {
        let name = parse_name(name)?;
        let description = parse_description(description)?;
        let id = id.to_owned();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction(|conn| {
                    privileges::check_staff::<GroupError>(conn, &actor)?;
                    let Some(old) = groups::find(conn, &id)? else {
                        return Err(GroupError::NotFound);
                    };
                    if old.name != name {
                        let members = groups::members(conn, &id)?;
                        privileges::check_may_rename_group::<GroupError>(conn, &actor, &members)?;
                    }
                    groups::update(conn, &id, &name, &description, db::now())?;
                    let mut event = AuditEvent::new("group.updated")
                        .by(&actor)
                        .detail("group_id", id.clone())
                        .detail("name", name.clone());
                    if old.name != name {
                        event = event.detail("previous_name", old.name);
                    }
                    audit::record(conn, event)?;
                    Ok(())
                })
            })
            .await
    }

    /// Deletes a group and its memberships (staff only). Deleting takes every member out of the
    /// group, so a group with a staff or superuser member — the acting staff member included —
    /// is deleted only by a superuser (or the system), like any other change to their
    /// memberships ([`privileges::check_may_change_groups`]).
    ///
    /// # Errors
    /// [`GroupError::NotFound`], [`GroupError::Forbidden`].
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<(), GroupError> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction(|conn| {
                    privileges::check_staff::<GroupError>(conn, &actor)?;
                    let Some(old) = groups::find(conn, &id)? else {
                        return Err(GroupError::NotFound);
                    };
                    let now = db::now();
                    for member in groups::members(conn, &id)? {
                        privileges::check_may_change_groups::<GroupError>(conn, &actor, &member)?;
                        // Checked once the group is gone: its roles go unless another group
                        // still gives them.
                        discord_connector::queue_for_membership(conn, &id, &member.id, now)?;
                    }
                    groups::delete(conn, &id)?;
                    audit::record(
                        conn,
                        AuditEvent::new("group.deleted")
                            .by(&actor)
                            .detail("group_id", id.clone())
                            .detail("name", old.name),
                    )?;
                    Ok(())
                })
            })
            .await
    }

    /// Adds the user called `username` (or with that email) to a group; returns whether they
    /// were added (false: already a member). Staff add ordinary users only, not themselves; a
    /// staff or superuser account's groups are changed by a superuser
    /// ([`privileges::check_may_change_groups`]).
    ///
    /// # Errors
    /// [`GroupError::NotFound`] for an unknown group or user, [`GroupError::Forbidden`].
    pub async fn add_member(
        &self,
        actor: &Actor,
        group_id: &str,
        username: &str,
    ) -> Result<bool, GroupError> {
        let (group_id, username) = (group_id.to_owned(), username.trim().to_owned());
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction(|conn| {
                    // Refused before the lookups: a user who is not staff learns nothing about
                    // which groups and users exist.
                    privileges::check_staff::<GroupError>(conn, &actor)?;
                    let (Some(group), Some(found)) = (
                        groups::find(conn, &group_id)?,
                        users::find_by_login(conn, &username)?,
                    ) else {
                        return Err(GroupError::NotFound);
                    };
                    let Some(user) = privileges::lock_target(conn, &found.id)? else {
                        return Err(GroupError::NotFound);
                    };
                    privileges::check_may_change_groups::<GroupError>(conn, &actor, &user)?;
                    let now = db::now();
                    let added = groups::add_member(conn, &group.id, &user.id, now)?;
                    if added {
                        discord_connector::queue_for_membership(conn, &group.id, &user.id, now)?;
                        audit::record(
                            conn,
                            AuditEvent::new("group.member_added")
                                .by(&actor)
                                .user(user.id)
                                .detail("group_id", group.id)
                                .detail("group", group.name),
                        )?;
                    }
                    Ok(added)
                })
            })
            .await
    }

    /// Removes a user from a group; returns whether they were a member. The same rule as
    /// [`Groups::add_member`] applies.
    ///
    /// # Errors
    /// [`GroupError::Forbidden`]; storage failures.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        group_id: &str,
        user_id: &str,
    ) -> Result<bool, GroupError> {
        let (group_id, user_id) = (group_id.to_owned(), user_id.to_owned());
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction(|conn| {
                    privileges::check_staff::<GroupError>(conn, &actor)?;
                    // A user who no longer exists has no memberships left to protect.
                    if let Some(user) = privileges::lock_target(conn, &user_id)? {
                        privileges::check_may_change_groups::<GroupError>(conn, &actor, &user)?;
                    }
                    let removed = groups::remove_member(conn, &group_id, &user_id)?;
                    if removed {
                        discord_connector::queue_for_membership(
                            conn,
                            &group_id,
                            &user_id,
                            db::now(),
                        )?;
                        audit::record(
                            conn,
                            AuditEvent::new("group.member_removed")
                                .by(&actor)
                                .user(user_id.clone())
                                .detail("group_id", group_id.clone()),
                        )?;
                    }
                    Ok(removed)
                })
            })
            .await
    }
}
