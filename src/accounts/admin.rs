//! What an administrator does to another user's account besides editing it (the admin
//! console's user actions, as Keycloak offers them): email the user a password-reset link,
//! email the verification code and link again, and delete the account.
//!
//! Each is checked by [`privileges`] in the service, whoever calls (console, CLI, a future
//! API): staff act on ordinary accounts, a superuser on any; nobody deletes their own account
//! this way ([`NotAllowed::OwnAccount`]) — they would lock themselves out, and the console
//! would lose its last admin by a slip.
//!
//! * **Password reset** sends the same email as "forgot your password?" (the signed link of
//!   [`super::reset`], valid for `accounts.password_reset_seconds`), recorded as
//!   `password_reset.requested` with the admin as actor. The per-address cooldown and hourly
//!   limit of the reset page apply, so a console cannot flood a mailbox.
//! * **Verification** sends a new code and activation link to an unverified address (the older
//!   code stops working), under the per-user cooldown of [`Accounts::send_verification`];
//!   recorded as `email.verification_sent`.
//! * **Deletion** removes, in one transaction, the user with their tokens, authorization codes,
//!   browser sessions, one-time codes, consents and group memberships, and the clients they
//!   registered (a client without an owner would pass for an operator's), each with its own
//!   tokens, codes and consents ([`users::delete_with_clients`]). Recorded as `user.deleted`
//!   with the username, and `client.deleted` per client; earlier audit events keep the ids.
//!   Their linked Discord accounts lose every mapped role: the Discord connector's removals are
//!   queued in the same transaction
//!   ([`crate::db::discord_connector::queue_removals_for_user`]).

use diesel::Connection;

use super::privileges::{self, NotAllowed};
use super::registration::ResendError;
use super::{Account, Accounts};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::EmailVerification;
use crate::db::users::{self, UserRow};
use crate::db::DbError;
use crate::domain::Email;
use crate::limits::{LimitError, RetryAfter};
use crate::mail::MailError;

/// Why an admin action on a user was not done.
#[derive(Debug, thiserror::Error)]
pub enum UserActionError {
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// The actor may not act on this account ([`privileges`]); nothing was done.
    #[error(transparent)]
    Forbidden(#[from] NotAllowed),
    /// The action does not apply to this account; the message is for the admin.
    #[error("{0}")]
    Invalid(String),
    /// A cooldown or limit refused the email; retry after the given seconds.
    #[error("an email was sent to this user a moment ago; try again in {} seconds", .0.0)]
    TooSoon(RetryAfter),
    /// The mail server did not take the message (logged).
    #[error(transparent)]
    Mail(#[from] MailError),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UserActionError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl Accounts {
    /// The user `user_id`, once `actor` is checked to be allowed to act on the account
    /// ([`privileges::check_may_change`]).
    async fn target_for(&self, actor: &Actor, user_id: &str) -> Result<UserRow, UserActionError> {
        let (actor, id) = (actor.clone(), user_id.to_owned());
        self.db
            .read(move |conn| {
                let target = users::find(conn, &id)?.ok_or(UserActionError::NotFound)?;
                privileges::check_may_change::<UserActionError>(conn, &actor, &target)?;
                Ok(target)
            })
            .await
    }

    /// Emails the user a password-reset link, as the "forgot your password?" page would, on an
    /// admin's request.
    ///
    /// # Errors
    /// [`UserActionError::NotFound`]; [`UserActionError::Forbidden`] by [`privileges`];
    /// [`UserActionError::Invalid`] for a deactivated account (its link would not work);
    /// [`UserActionError::TooSoon`] within the reset limits of the address;
    /// [`UserActionError::Mail`]; [`UserActionError::Db`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn send_password_reset_for(
        &self,
        actor: &Actor,
        user_id: &str,
    ) -> Result<(), UserActionError> {
        let user = self.target_for(actor, user_id).await?;
        if !user.is_active {
            return Err(UserActionError::Invalid(
                "the account is deactivated: reactivate it first, or its reset link will not work"
                    .into(),
            ));
        }
        let address = Email::parse(&user.email).map_err(UserActionError::Invalid)?;
        self.reset_limits(&address, None)
            .await
            .map_err(|e| match e {
                LimitError::Limited(retry) | LimitError::Reached(retry) => {
                    UserActionError::TooSoon(retry)
                }
                LimitError::Db(e) => UserActionError::Db(e),
            })?;
        self.audit
            .record(
                AuditEvent::new("password_reset.requested")
                    .by(actor)
                    .user(user.id.clone())
                    .detail("by_admin", true),
            )
            .await?;
        Ok(self.email_reset_link(&user).await?)
    }

    /// Emails the user a new verification code and activation link for their unverified
    /// address, on an admin's request.
    ///
    /// # Errors
    /// [`UserActionError::NotFound`]; [`UserActionError::Forbidden`] by [`privileges`];
    /// [`UserActionError::Invalid`] when the address is verified already or verification is
    /// off; [`UserActionError::TooSoon`] within the user's cooldown; [`UserActionError::Mail`];
    /// [`UserActionError::Db`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn resend_verification_for(
        &self,
        actor: &Actor,
        user_id: &str,
    ) -> Result<(), UserActionError> {
        if self.settings().email_verification == EmailVerification::Off {
            return Err(UserActionError::Invalid(
                "email verification is switched off".into(),
            ));
        }
        let user = self.target_for(actor, user_id).await?;
        if user.email_verified {
            return Err(UserActionError::Invalid(
                "the email address is verified already".into(),
            ));
        }
        self.send_verification_code(&user, true)
            .await
            .map_err(|e| match e {
                ResendError::Limited(retry) => UserActionError::TooSoon(retry),
                ResendError::Disabled => {
                    UserActionError::Invalid("email verification is switched off".into())
                }
                ResendError::Mail(e) => UserActionError::Mail(e),
                ResendError::Db(e) => UserActionError::Db(e),
            })?;
        self.audit
            .record(
                AuditEvent::new("email.verification_sent")
                    .by(actor)
                    .user(user.id.clone()),
            )
            .await?;
        Ok(())
    }

    /// Deletes the user and everything that is theirs (see the module documentation) in one
    /// transaction; returns the deleted account as it was.
    ///
    /// # Errors
    /// [`UserActionError::NotFound`]; [`UserActionError::Forbidden`] by [`privileges`]
    /// ([`NotAllowed::OwnAccount`] for one's own account, [`NotAllowed::AdminAccount`] for a
    /// staff member deleting an admin); [`UserActionError::Db`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn delete_user(
        &self,
        actor: &Actor,
        user_id: &str,
    ) -> Result<Account, UserActionError> {
        let (actor, id) = (actor.clone(), user_id.to_owned());
        let deleted = self
            .db
            .write(move |conn| {
                conn.transaction::<_, UserActionError, _>(|conn| {
                    let target =
                        privileges::lock_target(conn, &id)?.ok_or(UserActionError::NotFound)?;
                    privileges::check_may_delete::<UserActionError>(conn, &actor, &target)?;
                    // Their Discord accounts lose the mapped roles, though the links go now.
                    crate::db::discord_connector::queue_removals_for_user(
                        conn,
                        &id,
                        crate::db::now(),
                    )?;
                    let clients = users::delete_with_clients(conn, &id)?;
                    for (client_id, name) in &clients {
                        audit::record(
                            conn,
                            AuditEvent::new("client.deleted")
                                .by(&actor)
                                .client(client_id.clone())
                                .user(id.clone())
                                .detail("name", name.clone())
                                .detail("owner_deleted", true),
                        )?;
                    }
                    audit::record(
                        conn,
                        AuditEvent::new("user.deleted")
                            .by(&actor)
                            .user(id.clone())
                            .detail("username", target.username.clone())
                            .detail("clients_deleted", clients.len()),
                    )?;
                    Ok(target)
                })
            })
            .await;
        // The user's clients are gone: they stop authenticating here at once.
        if let Some(cache) = &self.client_cache {
            cache.forget_all();
        }
        deleted.map(Account::from)
    }
}
