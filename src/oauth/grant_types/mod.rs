//! One module per grant type, and the runner they share: it opens a transaction on the writer
//! connection, lets the grant check its grant and mint tokens ([`super::mint`]) — directly, or
//! through oxide-auth's state machine for the authorization-code and refresh-token grants —
//! and turns what happened into an RFC 6749 §5.1 response or §5.2 error, with an ID token where
//! OpenID Connect asks for one.

pub mod authorization_code;
pub mod client_credentials;
pub mod mfa_otp;
pub mod password;
pub mod refresh_token;
pub mod token_exchange;

use diesel::Connection;

use super::error::OAuthError;
use super::mint::{Issued, Issuing, MintError, Minted, Refusal, TokenGrant, TokenResponse};
use super::params::Params;
use super::{OAuth, OAuthConfig};
use crate::accounts::PasswordLogin;
use crate::clients::Client;
use crate::clients::GrantType;
use crate::db::tokens::TokenIssue;
use crate::db::users;
use crate::db::{DbConnection, DbError};
use crate::domain::ScopeSet;
use crate::oidc::keys::KeyError;
use crate::oidc::Authentication;
use crate::oidc::{id_token_claims, IdTokenRequest, ID_TOKEN_TYP, OFFLINE_ACCESS, OPENID};
use crate::upstream::discord::account_of;
use crate::upstream::DISCORD_SCOPE;

/// Runs `grant` in a transaction on the writer connection and answers with its tokens, plus an
/// ID token when the granted scope holds `openid` (OIDC Core §3.1.3.3; on refresh too, §12.2,
/// with the original `auth_time` and without a nonce).
pub(crate) async fn run<F>(
    oauth: &OAuth,
    client: Client,
    grant: F,
) -> Result<TokenResponse, OAuthError>
where
    F: for<'a> FnOnce(&mut DbConnection, &Issuing<'a>) -> Result<Issued, Refusal> + Send + 'static,
{
    let cfg = oauth.cfg.clone();
    let signer = if client.jwt_access_tokens() {
        Some(
            oauth
                .keys
                .signer(client.signing_alg())
                .await
                .map_err(signing_failed)?,
        )
    } else {
        None
    };
    let alg = client.signing_alg();
    let client_id = client.id().to_owned();
    // The ID token's key as cached (no read of its own): confirmed below in the grant's
    // transaction, when the grant turns out to need an ID token. `None` when the keys cannot
    // be loaded now: `KeyStore::sign` then tries again after the transaction.
    let id_signer = oauth.keys.cached_signer().await.ok();
    let confirming = id_signer.clone();
    let client_id_check = client_id.clone();
    let issued = oauth
        .db
        .write(move |conn| {
            let mut refused = None;
            let result = conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let issuing = Issuing {
                    cfg: &cfg,
                    client: &client,
                    signer: signer.as_ref(),
                };
                match grant(conn, &issuing) {
                    Ok(issued) => {
                        let confirmed = match &confirming {
                            Some(id_signer) if issued.wants_id_token() => {
                                id_signer.confirm(conn, alg)?
                            }
                            _ => false,
                        };
                        Ok(Ok((issued, confirmed)))
                    }
                    Err(Refusal::Commit(e)) => Ok(Err(e)),
                    Err(Refusal::Rollback(e)) => {
                        refused = Some(e);
                        Err(diesel::result::Error::RollbackTransaction)
                    }
                    Err(Refusal::Db(e)) => Err(e),
                }
            });
            match (result, refused) {
                (Ok(answer), _) => Ok(answer),
                (Err(_), Some(e)) => Ok(Err(e)),
                (Err(e), None) if is_foreign_key_violation(&e) => {
                    deleted_client(conn, &client_id_check, e).map(Err)
                }
                (Err(e), None) => Err(OAuthError::from(e)),
            }
        })
        .await?;
    let (issued, id_key_confirmed) = match issued {
        Ok(issued) => issued,
        Err(e) => {
            if e.status() == 401 {
                oauth.clients.forget_cached();
            }
            return Err(e);
        }
    };
    let Issued { minted, auth } = issued;
    let mut response = TokenResponse::from(minted);
    let scope = ScopeSet::from_stored(&response.scope);
    if let (true, Some(auth)) = (scope.contains(OPENID), auth) {
        // The `discord` claim's profile, read after the grant's transaction like the rest of
        // the ID token's making.
        let discord = if scope.contains(DISCORD_SCOPE) {
            let user_id = auth.user.id.clone();
            oauth
                .db
                .read(move |conn| account_of(conn, &user_id).map_err(DbError::from))
                .await?
        } else {
            None
        };
        let claims = id_token_claims(
            &auth,
            &IdTokenRequest {
                issuer: &oauth.cfg.issuer,
                client_id: &client_id,
                scope: &scope,
                access_token: &response.access_token,
                alg,
                lifetime_seconds: i64::try_from(oauth.cfg.lifetimes.id_token.as_secs())
                    .unwrap_or(3600),
                discord: discord.as_ref().map(|d| &d.profile),
            },
        );
        let signed = match id_signer.filter(|_| id_key_confirmed) {
            Some(id_signer) => id_signer.sign(alg, ID_TOKEN_TYP, &claims).await,
            None => oauth.keys.sign(alg, ID_TOKEN_TYP, &claims).await,
        };
        response.id_token = Some(signed.map_err(signing_failed)?);
    }
    Ok(response)
}

/// Issues tokens whose rows are all made before storage is asked — the client-credentials
/// grant with opaque access tokens: no user to lock, no key to hold, nothing to read — so
/// storage only inserts them ([`crate::db::Db::insert_issued`]: in a group commit on SQLite,
/// a group insert on PostgreSQL), and answers once they are committed.
pub(crate) async fn run_prepared<F>(
    oauth: &OAuth,
    client: Client,
    prepare: F,
) -> Result<TokenResponse, OAuthError>
where
    F: for<'a> FnOnce(&Issuing<'a>) -> Result<(Minted, TokenIssue), MintError>,
{
    let issuing = Issuing {
        cfg: oauth.config(),
        client: &client,
        signer: None,
    };
    let (minted, issue) = prepare(&issuing).map_err(|e| match Refusal::from(e) {
        Refusal::Commit(e) | Refusal::Rollback(e) => e,
        Refusal::Db(e) => OAuthError::from(e),
    })?;
    match oauth.db.insert_issued(issue).await {
        Ok(()) => {}
        Err(DbError::Query(e)) if is_foreign_key_violation(&e) => {
            let client_id = client.id().to_owned();
            let refused = oauth
                .db
                .read(move |conn| Ok::<_, OAuthError>(deleted_client(conn, &client_id, e)))
                .await?
                .unwrap_or_else(|e| e);
            if refused.status() == 401 {
                oauth.clients.forget_cached();
            }
            return Err(refused);
        }
        Err(e) => return Err(OAuthError::from(e)),
    }
    Ok(TokenResponse::from(minted))
}

/// The answer when a token row was refused by its client's foreign key `e`: the client
/// authenticated from a row this node keeps for a few seconds
/// (`Clients::find_for_authentication`) and was deleted meanwhile, so its tokens cannot
/// reference it — a failed authentication (`Ok(invalid_client)`), not a storage failure.
/// `Err` with the storage failure when the client is still there or cannot be read.
fn deleted_client(
    conn: &mut DbConnection,
    client_id: &str,
    e: diesel::result::Error,
) -> Result<OAuthError, OAuthError> {
    match crate::db::clients::find(conn, client_id) {
        Ok(None) => Ok(OAuthError::invalid_client("client authentication failed")),
        Ok(Some(_)) => Err(OAuthError::from(e)),
        Err(read) => Err(OAuthError::from(read)),
    }
}

fn is_foreign_key_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _
        )
    )
}

fn signing_failed(e: KeyError) -> OAuthError {
    tracing::error!(error = %e, "signing failed");
    OAuthError::server_error()
}

/// Issues tokens to `client` for a user who has logged in by `amr` (RFC 8176 values,
/// space-separated): the password grant's issuing path, shared with the mfa-otp grant. A
/// refresh token when the client may use the `refresh_token` grant; an ID token when `scope`
/// holds `openid`. The RFC 8707 `resource`s of `params` are the token's audience.
///
/// Under the user's row lock the login must still hold ([`PasswordLogin::still_holds`]): a
/// password change or reset, "sign out everywhere" or deactivation that committed while the
/// password was being checked answers `invalid_grant` (RFC 6749 §5.2), as a wrong password
/// does.
pub(crate) async fn issue_for_login(
    oauth: &OAuth,
    client: Client,
    params: Params,
    login: PasswordLogin,
    scope: ScopeSet,
    amr: &'static str,
) -> Result<TokenResponse, OAuthError> {
    let resources = oauth.requested_resources(&params).await?;
    let with_refresh = client.allows(GrantType::RefreshToken);
    run(oauth, client, move |conn, issuing| {
        // The user's row lock before minting (see the lock rule in `db::tokens`): a
        // deactivation, password change or "sign out everywhere" then runs wholly before or
        // after this, and one that ran before shows in the row.
        match users::lock(conn, &login.user().id)? {
            Some(user) if !user.is_active => {
                return Err(Refusal::Commit(OAuthError::invalid_grant(
                    "the user's account is disabled",
                )))
            }
            Some(user) if login.still_holds(&user) => {}
            // RFC 6749 §5.2: the password checked is no longer the user's (or their sessions
            // were ended meanwhile): the same answer as a wrong password.
            _ => {
                return Err(Refusal::Commit(OAuthError::invalid_grant(
                    "invalid username or password",
                )))
            }
        }
        let auth = Authentication {
            user: login.user().clone(),
            auth_time: crate::db::now(),
            amr: amr.to_owned(),
            idp: None,
            nonce: None,
            session_id: None,
        };
        let family = uuid::Uuid::now_v7().to_string();
        let minted = issuing.mint(Some(&auth), &resources, None).mint(
            conn,
            &TokenGrant {
                user_id: Some(&auth.user.id),
                scope: &scope,
                family_id: &family,
                grant_type: GrantType::Password.as_str(),
                refresh_scope: with_refresh.then_some(&scope),
            },
        )?;
        Ok(Issued {
            minted,
            auth: Some(auth),
        })
    })
    .await
}

/// RFC 6749 §3.3 scope negotiation shared by every grant: no scope (or an empty one) means the
/// client's allowed scopes; anything beyond them is `invalid_scope`.
pub(crate) fn negotiate_scope(
    client: &Client,
    cfg: &OAuthConfig,
    requested: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    let allowed: ScopeSet = client
        .allowed_scopes
        .iter()
        .filter(|s| cfg.scopes.contains_key(*s))
        .map(str::to_owned)
        .collect();
    let requested = match requested {
        Some(raw) => ScopeSet::parse(raw).map_err(OAuthError::invalid_scope)?,
        None => ScopeSet::default(),
    };
    if requested.is_empty() {
        // `openid` and `offline_access` change what the client gets (an ID token, a refresh
        // token that outlives the session): only an explicit request grants them.
        return Ok(allowed
            .iter()
            .filter(|s| *s != OPENID && *s != OFFLINE_ACCESS)
            .map(str::to_owned)
            .collect());
    }
    if !requested.is_subset(&allowed) {
        return Err(OAuthError::invalid_scope(format!(
            "scope not allowed for this client: {}",
            requested.difference(&allowed)
        )));
    }
    Ok(requested)
}
