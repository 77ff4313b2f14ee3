//! What users have granted, seen from the user's side (`/o/authorized_tokens/`) and the
//! admin's (the token list): remembered consent and active tokens, and revoking them.

use chrono::NaiveDateTime;
use diesel::Connection;

use super::OAuth;
use crate::accounts::privileges::{self, NotAllowed};
use crate::audit::{self, Actor, AuditEvent};
use crate::db::tokens::{self, TokenFilter, TokenRow};
use crate::db::{self, clients, codes, consents, users, DbError};
use crate::domain::{Page, PageRequest};

/// An application the user has authorized: by consent, or by holding its tokens (password
/// grant, `skip_authorization` clients).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedApp {
    /// The client.
    pub client_id: String,
    /// The client's display name.
    pub client_name: String,
    /// Scopes the user consented to (space-separated; empty without a consent).
    pub scope: String,
    /// RFC 8707 resources (APIs) the user consented to (space-separated; often empty).
    pub resources: String,
    /// First consent (UTC); `None` without a consent.
    pub authorized_at: Option<NaiveDateTime>,
    /// Last change of the consent (UTC).
    pub updated_at: Option<NaiveDateTime>,
    /// Active access and refresh tokens the client holds for the user.
    pub active_tokens: i64,
}

/// An active token as the admin list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenListing {
    /// The token row (its hash is not a secret, and is not shown either).
    pub row: TokenRow,
    /// The owner's username; `None` for client-credentials tokens.
    pub username: Option<String>,
    /// Whether the owner is a staff member or superuser (whose tokens only a superuser revokes,
    /// see [`OAuth::revoke_tokens`]); `false` for client-credentials tokens.
    pub owner_is_admin: bool,
}

/// Why [`OAuth::revoke_tokens`] revoked nothing.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The actor may not revoke some of these tokens (`accounts::privileges`: not staff, or a
    /// token of a staff or superuser account and the actor is not a superuser); nothing was
    /// revoked.
    #[error(transparent)]
    Forbidden(#[from] NotAllowed),
    /// Storage failed; nothing was revoked.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RevokeError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl OAuth {
    /// The applications `user_id` has authorized, most recently authorized first; applications
    /// holding tokens without a consent come last, by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn authorized_apps(&self, user_id: &str) -> Result<Vec<AuthorizedApp>, DbError> {
        let user_id = user_id.to_owned();
        self.db
            .read(move |conn| {
                let now = db::now();
                let mut counts = tokens::active_per_client_for_user(conn, &user_id, now)?;
                let mut apps = Vec::new();
                for consent in consents::for_user(conn, &user_id)? {
                    let Some(client) = clients::find(conn, &consent.client_id)? else {
                        continue;
                    };
                    let active = take_count(&mut counts, &consent.client_id);
                    apps.push(AuthorizedApp {
                        client_id: consent.client_id,
                        client_name: client.name,
                        scope: consent.scope,
                        resources: consent.resources,
                        authorized_at: Some(consent.created_at),
                        updated_at: Some(consent.updated_at),
                        active_tokens: active,
                    });
                }
                let mut rest = Vec::new();
                for (client_id, active) in counts {
                    if let Some(client) = clients::find(conn, &client_id)? {
                        rest.push(AuthorizedApp {
                            client_id,
                            client_name: client.name,
                            scope: String::new(),
                            resources: String::new(),
                            authorized_at: None,
                            updated_at: None,
                            active_tokens: active,
                        });
                    }
                }
                rest.sort_by(|a, b| a.client_name.cmp(&b.client_name));
                apps.extend(rest);
                Ok(apps)
            })
            .await
    }

    /// Forgets the user's consent for `client_id`, revokes every token the client holds for
    /// the user and deletes its unexchanged codes (the next authorization request asks for
    /// consent again). Returns whether anything was there to revoke.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn revoke_authorization(
        &self,
        actor: &Actor,
        user_id: &str,
        client_id: &str,
    ) -> Result<bool, DbError> {
        let (user_id, client_id) = (user_id.to_owned(), client_id.to_owned());
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    // The user's row lock first (see the lock rule in `db::tokens`).
                    users::lock(conn, &user_id)?;
                    let had_consent = consents::delete(conn, &user_id, &client_id)?;
                    let revoked =
                        tokens::revoke_for_user(conn, &user_id, Some(&client_id), db::now())?;
                    // A code issued just before must not buy new tokens afterwards.
                    let codes = codes::delete_unused_for_user(conn, &user_id, Some(&client_id))?;
                    if !had_consent && revoked == 0 && codes == 0 {
                        return Ok(false);
                    }
                    audit::record(
                        conn,
                        AuditEvent::new("consent.revoked")
                            .by(&actor)
                            .user(user_id.clone())
                            .client(client_id.clone())
                            .detail("tokens_revoked", revoked),
                    )?;
                    Ok(true)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// A page of active tokens matching `filter`, newest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_tokens(
        &self,
        filter: TokenFilter,
        page: PageRequest,
    ) -> Result<Page<TokenListing>, DbError> {
        self.db
            .read(move |conn| {
                tokens::list_active(conn, &filter, db::now(), page.size, page.offset())
                    .map_err(DbError::from)
            })
            .await
            .map(|(rows, total)| {
                Page::new(rows, page, total).map(|(row, owner)| TokenListing {
                    row,
                    owner_is_admin: owner.as_ref().is_some_and(|o| o.is_admin),
                    username: owner.map(|o| o.username),
                })
            })
    }

    /// Counts every active token.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count_active_tokens(&self) -> Result<i64, DbError> {
        self.db
            .read(|conn| tokens::count_active(conn, db::now()).map_err(DbError::from))
            .await
    }

    /// Revokes the tokens with these row ids (at most 500) together with the rest of their grant
    /// (the access and refresh tokens issued from the same authorization); returns how many
    /// tokens were revoked. The admin console's token list: the actor must be the system or an
    /// active staff member, and revoking a token of a staff or superuser account is a
    /// superuser's, like every other change to their account (`accounts::privileges`, checked
    /// for every owner after their row lock, whoever calls). One refused owner refuses the
    /// whole request.
    ///
    /// # Errors
    /// [`RevokeError::Forbidden`] (nothing revoked); storage failures.
    pub async fn revoke_tokens(
        &self,
        actor: &Actor,
        ids: Vec<String>,
    ) -> Result<usize, RevokeError> {
        let actor = actor.clone();
        let ids: Vec<String> = ids.into_iter().take(500).collect();
        self.db
            .write(move |conn| {
                conn.transaction::<_, RevokeError, _>(|conn| {
                    let rows = tokens::find_ids(conn, &ids)?;
                    // The owners' row locks before any token row is touched (see the lock rule
                    // in `db::tokens`), in a fixed order so that two such revocations cannot
                    // deadlock. Each family is revoked by a statement that starts later, so
                    // it sees every token a concurrent refresh committed.
                    let mut owners: Vec<&str> =
                        rows.iter().filter_map(|r| r.user_id.as_deref()).collect();
                    owners.sort_unstable();
                    owners.dedup();
                    // The actor's flags are read after the owners' locks, so a promotion of an
                    // owner (or a demotion of the actor) that committed first is seen, and one
                    // that commits later waits for this revocation.
                    for owner in owners {
                        if let Some(user) = privileges::lock_target(conn, owner)? {
                            privileges::check_may_change::<RevokeError>(conn, &actor, &user)?;
                        }
                    }
                    privileges::check_staff::<RevokeError>(conn, &actor)?;
                    let now = db::now();
                    let mut revoked = 0;
                    for row in rows.iter().filter(|r| r.revoked_at.is_none()) {
                        // The whole grant goes, as at the revocation endpoint (RFC 7009 §2.1):
                        // a refresh token left behind would mint new access tokens.
                        let count = tokens::revoke_family(conn, &row.family_id, now)?;
                        if count > 0 {
                            revoked += count;
                            audit::record(
                                conn,
                                AuditEvent::new("token.revoked")
                                    .by(&actor)
                                    .client(row.client_id.clone())
                                    .maybe_user(row.user_id.as_deref())
                                    .detail("kind", row.kind.clone())
                                    .detail("tokens_revoked", count)
                                    .detail("via", "admin"),
                            )?;
                        }
                    }
                    Ok(revoked)
                })
            })
            .await
    }
}

/// Removes `client_id`'s entry from `counts` and returns its count (0 when absent).
fn take_count(counts: &mut Vec<(String, i64)>, client_id: &str) -> i64 {
    match counts.iter().position(|(c, _)| c == client_id) {
        Some(i) => counts.swap_remove(i).1,
        None => 0,
    }
}
