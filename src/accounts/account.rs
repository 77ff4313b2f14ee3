//! [`Account`]: a user as the layers above the services see it.
//!
//! The stored row (`db::users::UserRow`) also carries the password hash and the session
//! cut-off (`sessions_valid_after`); both stay inside the services, which read the row
//! themselves whenever a rule needs them (password checks, reset links, session liveness).
//! Routes, templates, the protocol's claims and the CLI get this view instead, so a page can
//! never show or log either one.

use chrono::NaiveDateTime;

use super::AccountFlags;
use crate::db::users::UserRow;

/// A user account as read from storage at one moment, without its secrets: a snapshot for
/// display and for deciding what a page offers. Services that change an account, or check a
/// privilege, read the row again under its lock; nothing is trusted from an `Account` but the
/// user's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Stable subject identifier (UUID v4 text); never reused. The OIDC `sub` claim.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Unique email address, lower-cased.
    pub email: String,
    /// Given name, may be empty.
    pub first_name: String,
    /// Family name, may be empty.
    pub last_name: String,
    /// May log in and hold tokens.
    pub is_active: bool,
    /// May use the admin console.
    pub is_staff: bool,
    /// Has every permission.
    pub is_superuser: bool,
    /// Whether the email address was confirmed.
    pub email_verified: bool,
    /// When the account was created (UTC).
    pub date_joined: NaiveDateTime,
    /// Last completed sign-in (UTC); `None` before the first.
    pub last_login: Option<NaiveDateTime>,
    /// The user switched on emailed sign-in codes (the policy may require them regardless:
    /// [`Accounts::needs_login_code`](super::Accounts::needs_login_code)).
    pub mfa_enabled: bool,
    /// Whether the account has a password at all (accounts created without one cannot sign in
    /// with a password). The hash itself never leaves the services.
    pub has_password: bool,
}

impl Account {
    /// Whether the user may use the admin console and the admin API (staff or superuser).
    #[must_use]
    pub fn has_staff_access(&self) -> bool {
        self.is_staff || self.is_superuser
    }

    /// The first and last name joined by a space, trimmed; empty when both are empty.
    #[must_use]
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name.trim(), self.last_name.trim())
            .trim()
            .to_owned()
    }

    /// How emails greet the user: their first name, else their username
    /// ([`crate::mail::greeting_name`]).
    #[must_use]
    pub fn greeting_name(&self) -> String {
        crate::mail::greeting_name(&self.first_name, &self.username)
    }

    /// The active, staff and superuser flags, as an admin's flags form shows them.
    #[must_use]
    pub fn flags(&self) -> AccountFlags {
        AccountFlags {
            is_active: self.is_active,
            is_staff: self.is_staff,
            is_superuser: self.is_superuser,
        }
    }
}

impl From<&UserRow> for Account {
    fn from(row: &UserRow) -> Self {
        Self {
            id: row.id.clone(),
            username: row.username.clone(),
            email: row.email.clone(),
            first_name: row.first_name.clone(),
            last_name: row.last_name.clone(),
            is_active: row.is_active,
            is_staff: row.is_staff,
            is_superuser: row.is_superuser,
            email_verified: row.email_verified,
            date_joined: row.date_joined,
            last_login: row.last_login,
            mfa_enabled: row.mfa_enabled,
            has_password: row.password_hash.is_some(),
        }
    }
}

impl From<UserRow> for Account {
    fn from(row: UserRow) -> Self {
        Self {
            has_password: row.password_hash.is_some(),
            id: row.id,
            username: row.username,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            is_active: row.is_active,
            is_staff: row.is_staff,
            is_superuser: row.is_superuser,
            email_verified: row.email_verified,
            date_joined: row.date_joined,
            last_login: row.last_login,
            mfa_enabled: row.mfa_enabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> UserRow {
        UserRow {
            id: "3f0c6a2e-1111-4222-8333-444455556666".into(),
            username: "ann".into(),
            email: "ann@example.com".into(),
            first_name: " Ann ".into(),
            last_name: String::new(),
            password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            is_active: true,
            is_staff: false,
            is_superuser: true,
            email_verified: true,
            date_joined: crate::db::now(),
            last_login: None,
            sessions_valid_after: Some(crate::db::now()),
            mfa_enabled: false,
        }
    }

    #[test]
    fn the_view_keeps_no_secret_and_both_conversions_agree() {
        let row = row();
        let account = Account::from(&row);
        assert_eq!(account, Account::from(row.clone()));
        assert!(account.has_password);
        assert!(
            !Account::from(UserRow {
                password_hash: None,
                ..row
            })
            .has_password
        );
        // The hash appears nowhere in the view, not even in its debug form.
        assert!(!format!("{account:?}").contains("argon2"));
    }

    #[test]
    fn names_and_flags() {
        let account = Account::from(row());
        assert_eq!(account.full_name(), "Ann");
        assert_eq!(account.greeting_name(), "Ann");
        assert!(account.has_staff_access());
        assert_eq!(
            account.flags(),
            AccountFlags {
                is_active: true,
                is_staff: false,
                is_superuser: true,
            }
        );
        let blank = Account {
            first_name: "  ".into(),
            ..account
        };
        assert_eq!(blank.full_name(), "");
        assert_eq!(blank.greeting_name(), "ann");
    }
}
