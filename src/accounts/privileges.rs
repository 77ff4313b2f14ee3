//! Who may change whose account: the one rule every service that changes a user applies
//! (`Accounts::update_profile`, `set_flags`, `end_sessions_and_tokens`, `set_login_code`,
//! `delete_user`, `send_password_reset_for`, `resend_verification_for`;
//! `Groups::add_member`, `remove_member`, `delete`, `update`; `OAuth::revoke_tokens`), inside the
//! transaction of the change, so it holds whoever calls the service (admin console, account
//! page, JSON API, command line).
//!
//! * The system — the command line and background jobs, an [`Actor`] without a user — may
//!   change any account.
//! * Anyone may change their own account (the account page asks for the current password where
//!   it matters: email address, password, sign-in codes off).
//! * An active superuser may change any other account.
//! * Active staff may change *ordinary* accounts (neither staff nor superuser): profile, email,
//!   active flag, sessions, "sign out everywhere", groups. The account of another staff member
//!   or a superuser is the superuser's alone: otherwise a staff member could set a superuser's
//!   email address to their own and take the account over with a password reset.
//! * Only a superuser grants or removes staff or superuser status, their own included.
//! * Deleting an account ([`check_may_delete`]) follows the account rule, except that nobody
//!   deletes their own.
//! * The admin powers that are not about one account — groups, the console's token list — are
//!   staff's ([`check_staff`]): a user who is not active staff is refused whoever calls.
//! * The powers that decide who can sign in at all — the upstream sign-in providers the console
//!   stores — and those that reach outside Latchkey — the Discord connector's settings, role
//!   mappings and syncs — are a superuser's ([`check_superuser`]).
//! * Group memberships ([`check_may_change_groups`]) follow the account rule, except that a
//!   staff member does not change their own (they would pick the groups that upstream
//!   connectors turn into outside roles); a superuser does. Renaming a group that has a staff or
//!   superuser member is a superuser's ([`check_may_rename_group`]).
//!
//! The target's row is locked first ([`lock_target`]) and the actor's flags are read after it
//! on the same connection, so on PostgreSQL a promotion or demotion that committed before the
//! lock is seen, and one that commits later waits for this change (SQLite has one writer).

use crate::audit::Actor;
use crate::db::users::{self, UserRow};
use crate::db::DbConnection;

/// Why an actor may not make a change to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    /// The actor is not an active staff member or superuser, and the account is not theirs.
    #[error("only staff can change another user's account")]
    NotStaff,
    /// The account is a staff or superuser account, and the actor is not a superuser.
    #[error("only a superuser can change the account of a staff member or superuser")]
    AdminAccount,
    /// Granting or removing staff or superuser status, by an actor who is not a superuser.
    #[error("only a superuser can grant or remove staff or superuser status")]
    Promotion,
    /// An admin power (groups, the console's token list) used by an actor who is not an active
    /// staff member or superuser.
    #[error("only staff can do this")]
    StaffOnly,
    /// A staff member who is not a superuser changing their own group memberships.
    #[error("only a superuser can change their own group memberships")]
    OwnGroups,
    /// Renaming a group that has a staff or superuser member, by an actor who is not a
    /// superuser.
    #[error("only a superuser can rename a group that has staff or superuser members")]
    AdminGroup,
    /// Deleting one's own account (from the console or any other caller): an admin would lock
    /// themselves out, the last admin the console too.
    #[error("you cannot delete your own account")]
    OwnAccount,
    /// A superuser's power — the sign-in providers (who may change them decides who can sign
    /// in), the Discord connector's settings, role mappings and syncs (they reach outside
    /// Latchkey) — used by an actor who is not an active superuser.
    #[error("only a superuser can do this")]
    SuperuserOnly,
}

/// Locks the user's row until the transaction ends (PostgreSQL; SQLite has one writer) and
/// reads it afresh. `None` when there is no such user.
///
/// # Errors
/// Query failures.
pub fn lock_target(conn: &mut DbConnection, id: &str) -> diesel::QueryResult<Option<UserRow>> {
    users::lock(conn, id)
}

/// The actor's account as stored now: `None` for the system, or for a user who no longer
/// exists (who then has no powers).
fn actor_row(conn: &mut DbConnection, actor: &Actor) -> diesel::QueryResult<Option<UserRow>> {
    match &actor.user_id {
        Some(id) => users::find(conn, id),
        None => Ok(None),
    }
}

/// Whether `actor` is the system or an active superuser, read on `conn`.
///
/// # Errors
/// Query failures.
pub fn is_superuser(conn: &mut DbConnection, actor: &Actor) -> diesel::QueryResult<bool> {
    if actor.user_id.is_none() {
        return Ok(true);
    }
    Ok(actor_row(conn, actor)?.is_some_and(|a| a.is_active && a.is_superuser))
}

/// Checks that `actor` may change `target`'s account (profile, email, active flag, sessions,
/// tokens, groups), by the rules of this module. Call it inside the change's transaction, after
/// [`lock_target`].
///
/// # Errors
/// `E::from(NotAllowed)` when refused; query failures.
pub fn check_may_change<E>(
    conn: &mut DbConnection,
    actor: &Actor,
    target: &UserRow,
) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    let Some(actor_id) = actor.user_id.as_deref() else {
        return Ok(());
    };
    if actor_id == target.id {
        return Ok(());
    }
    let Some(acting) = actor_row(conn, actor)?.filter(|a| a.is_active) else {
        return Err(NotAllowed::NotStaff.into());
    };
    decide(&acting, target).map_err(E::from)
}

/// Checks that `actor` may delete `target`'s account (`Accounts::delete_user`): the system;
/// an active superuser any other account; active staff another *ordinary* account. Nobody
/// deletes their own ([`NotAllowed::OwnAccount`]). Call it inside the deletion's transaction,
/// after [`lock_target`].
///
/// # Errors
/// `E::from(NotAllowed)` when refused; query failures.
pub fn check_may_delete<E>(
    conn: &mut DbConnection,
    actor: &Actor,
    target: &UserRow,
) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    if actor.user_id.as_deref() == Some(target.id.as_str()) {
        return Err(NotAllowed::OwnAccount.into());
    }
    check_may_change(conn, actor, target)
}

/// Checks that `actor` is the system or an active staff member or superuser, read on `conn`
/// (inside the change's transaction): the admin powers that concern no single account, or
/// several (groups, the console's token list).
///
/// # Errors
/// `E::from(NotAllowed::StaffOnly)` when refused; query failures.
pub fn check_staff<E>(conn: &mut DbConnection, actor: &Actor) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    as_staff(conn, actor, |_| Ok(()))
}

/// Checks that `actor` is the system or an active superuser, read on `conn` (inside the
/// change's transaction): the powers that decide who can sign in at all (the upstream
/// providers the console stores) and those that reach outside Latchkey (the Discord
/// connector's role mappings and syncs, whose effects land in another service).
///
/// # Errors
/// `E::from(NotAllowed::SuperuserOnly)` when refused; query failures.
pub fn check_superuser<E>(conn: &mut DbConnection, actor: &Actor) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    if is_superuser(conn, actor)? {
        Ok(())
    } else {
        Err(NotAllowed::SuperuserOnly.into())
    }
}

/// Checks that `actor` may add `target` to a group or take them out of one (also by deleting
/// the group): the system; an active superuser; active staff for an ordinary account other
/// than their own. Call it inside the change's transaction, after [`lock_target`].
///
/// # Errors
/// `E::from(NotAllowed)` when refused ([`NotAllowed::StaffOnly`], [`NotAllowed::OwnGroups`],
/// [`NotAllowed::AdminAccount`]); query failures.
pub fn check_may_change_groups<E>(
    conn: &mut DbConnection,
    actor: &Actor,
    target: &UserRow,
) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    as_staff(conn, actor, |acting| decide_groups(acting, target))
}

/// Checks that `actor` may rename a group whose members are `members`: the system or an active
/// superuser always, active staff only when no member is a staff member or superuser (their
/// groups are the superuser's, like the rest of their account).
///
/// # Errors
/// `E::from(NotAllowed)` when refused ([`NotAllowed::StaffOnly`], [`NotAllowed::AdminGroup`]);
/// query failures.
pub fn check_may_rename_group<E>(
    conn: &mut DbConnection,
    actor: &Actor,
    members: &[UserRow],
) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    as_staff(conn, actor, |acting| {
        if acting.is_superuser || !members.iter().any(UserRow::has_staff_access) {
            Ok(())
        } else {
            Err(NotAllowed::AdminGroup)
        }
    })
}

/// The staff powers' common check: the system passes; an actor who is not an active staff
/// member or superuser gets [`NotAllowed::StaffOnly`]; an active one is held to `rule`.
fn as_staff<E>(
    conn: &mut DbConnection,
    actor: &Actor,
    rule: impl FnOnce(&UserRow) -> Result<(), NotAllowed>,
) -> Result<(), E>
where
    E: From<NotAllowed> + From<diesel::result::Error>,
{
    if actor.user_id.is_none() {
        return Ok(());
    }
    match acting_admin(conn, actor)? {
        Some(acting) => rule(&acting).map_err(E::from),
        None => Err(NotAllowed::StaffOnly.into()),
    }
}

/// The actor's account when it is an active staff member or superuser; `None` otherwise (and
/// for the system, which callers handle first).
fn acting_admin(conn: &mut DbConnection, actor: &Actor) -> diesel::QueryResult<Option<UserRow>> {
    Ok(actor_row(conn, actor)?.filter(|a| a.is_active && a.has_staff_access()))
}

/// The group-membership rule, on the two accounts as stored (the actor active staff or
/// superuser).
fn decide_groups(actor: &UserRow, target: &UserRow) -> Result<(), NotAllowed> {
    if actor.is_superuser {
        Ok(())
    } else if actor.id == target.id {
        Err(NotAllowed::OwnGroups)
    } else {
        decide(actor, target)
    }
}

/// The rule itself, on the two accounts as stored (the actor active and not the target).
fn decide(actor: &UserRow, target: &UserRow) -> Result<(), NotAllowed> {
    if actor.is_superuser {
        Ok(())
    } else if !actor.has_staff_access() {
        Err(NotAllowed::NotStaff)
    } else if target.has_staff_access() {
        Err(NotAllowed::AdminAccount)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{decide, decide_groups, NotAllowed};
    use crate::db::users::UserRow;

    fn user(staff: bool, superuser: bool) -> UserRow {
        UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            username: "u".into(),
            email: "u@example.com".into(),
            first_name: String::new(),
            last_name: String::new(),
            password_hash: None,
            is_active: true,
            is_staff: staff,
            is_superuser: superuser,
            email_verified: true,
            date_joined: crate::db::now(),
            last_login: None,
            sessions_valid_after: None,
            mfa_enabled: false,
        }
    }

    #[test]
    fn staff_manage_ordinary_users_and_superusers_everyone() {
        let (ordinary, staff, root) = (user(false, false), user(true, false), user(true, true));
        // A superuser flag without the staff flag still counts as an administrator.
        let bare_root = user(false, true);
        assert_eq!(decide(&staff, &ordinary), Ok(()));
        for target in [&staff, &root, &bare_root] {
            assert_eq!(decide(&staff, target), Err(NotAllowed::AdminAccount));
            assert_eq!(decide(&root, target), Ok(()));
            assert_eq!(decide(&bare_root, target), Ok(()));
        }
        assert_eq!(decide(&root, &ordinary), Ok(()));
        for target in [&ordinary, &staff, &root] {
            assert_eq!(decide(&ordinary, target), Err(NotAllowed::NotStaff));
        }
    }

    #[test]
    fn staff_change_the_groups_of_ordinary_users_but_not_their_own() {
        let (ordinary, staff, other_staff, root) = (
            user(false, false),
            user(true, false),
            user(true, false),
            user(true, true),
        );
        assert_eq!(decide_groups(&staff, &ordinary), Ok(()));
        assert_eq!(decide_groups(&staff, &staff), Err(NotAllowed::OwnGroups));
        for target in [&other_staff, &root] {
            assert_eq!(decide_groups(&staff, target), Err(NotAllowed::AdminAccount));
        }
        for target in [&ordinary, &staff, &root] {
            assert_eq!(decide_groups(&root, target), Ok(()));
        }
    }
}
