//! The browser's session with Latchkey: signing in and out (a `user_sessions` row per login,
//! its random handle in the encrypted cookie), who is signed in, the CSRF token every form
//! carries, and where to continue after signing in.

use actix_session::Session;
use actix_web::http::header;
use actix_web::HttpRequest;

use super::http::peer_ip;
use super::WebConfig;
use crate::accounts::sessions::NewSession;
use crate::accounts::{Account, Accounts, VerifiedHash};
use crate::db::DbError;
use crate::secret;

/// Session key: the signed-in user's id.
pub const SESSION_USER: &str = "uid";
/// Session key: Unix time of the last password login.
pub const SESSION_AUTH_TIME: &str = "auth_time";

/// Session key: RFC 8176 authentication methods of the login, space-separated.
pub const SESSION_AMR: &str = "amr";

/// Session key: the upstream identity provider of the login (`[upstream.<id>]`), when it went
/// through one.
pub const SESSION_IDP: &str = "idp";

/// Session key: how fresh a login the pending authorization request asked for, in seconds
/// (`prompt=login`: 0; `max_age`), for an upstream sign-in to ask of its provider.
pub const SESSION_FRESH_LOGIN: &str = "fresh_login";

/// Session key: an authorization request asked for a new login (`prompt=login`, `max_age`).
/// Until the user logs in again (which clears the session), the old login does not count for
/// authorization requests, so opening the resume URL without logging in gains nothing.
pub const SESSION_REAUTH: &str = "reauth";

const SESSION_CSRF: &str = "csrf";

/// Session key: the random handle of this browser's server-side session (the `user_sessions`
/// row's id is its SHA-256). The cookie is encrypted, so the handle never shows.
const SESSION_HANDLE: &str = "sid";

/// Why a session could not be started or kept.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The cookie could not be written.
    #[error(transparent)]
    Cookie(#[from] actix_session::SessionInsertError),
    /// The session could not be recorded.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The login no longer holds: the password changed, or the user's sessions were ended or
    /// the account deactivated, while it was under way. Nothing was recorded; the user signs
    /// in again.
    #[error("the login was overtaken by a password change or sign-out")]
    Outdated,
}

/// What a new session rests on: when its login began and, for a password checked just now,
/// the hash verified (see [`NewSession`]).
#[derive(Clone, Debug, Default)]
pub struct LoginBasis {
    /// When the login's password check began; `None`: now.
    pub began: Option<chrono::NaiveDateTime>,
    /// The password hash the login verified (sealed: only the accounts service compares it).
    pub verified_hash: Option<VerifiedHash>,
    /// The upstream identity provider the login went through (`[upstream.<id>]`): the ID
    /// token's `idp` claim. `None` for a local login.
    pub idp: Option<String>,
}

impl From<&crate::accounts::PasswordLogin> for LoginBasis {
    fn from(login: &crate::accounts::PasswordLogin) -> Self {
        Self {
            began: Some(login.began),
            verified_hash: login.verified_hash(),
            idp: None,
        }
    }
}

/// Starts a fresh session for `user_id` after a login by `amr` (RFC 8176 values): a new session
/// id (no fixation), a new CSRF token, and a `user_sessions` row with the request's IP address
/// and `User-Agent` (the browser's earlier session, if any, ends). `basis` says when the login
/// began and what it verified: one overtaken by a password change, reset or sign-out gets no
/// session ([`SessionError::Outdated`]).
///
/// # Errors
/// When the session cannot be recorded or written, or the login no longer holds; the browser
/// is then signed out.
pub async fn start_session(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    user_id: &str,
    amr: &str,
    basis: LoginBasis,
) -> Result<(), SessionError> {
    let replacing = session_handle(session);
    session.renew();
    session.clear();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let handle = accounts
        .start_browser_session(
            NewSession {
                user_id: user_id.to_owned(),
                ip: peer_ip(req),
                user_agent,
                amr: amr.to_owned(),
                began: basis.began,
                verified_hash: basis.verified_hash,
                idp: basis.idp.clone(),
            },
            replacing,
        )
        .await?
        .ok_or(SessionError::Outdated)?;
    session.insert(SESSION_USER, user_id)?;
    session.insert(SESSION_AUTH_TIME, chrono::Utc::now().timestamp())?;
    session.insert(SESSION_AMR, amr)?;
    if let Some(idp) = &basis.idp {
        session.insert(SESSION_IDP, idp)?;
    }
    session.insert(SESSION_HANDLE, handle)?;
    Ok(())
}

/// The handle of this browser's server-side session, if it has one.
#[must_use]
pub fn session_handle(session: &Session) -> Option<String> {
    session.get::<String>(SESSION_HANDLE).ok().flatten()
}

/// Keeps this session alive across the cut-off `cut` its own user just made (a password
/// change ends the user's *other* sessions): the session counts as started just after `cut`,
/// so any later cut-off still ends it.
///
/// # Errors
/// When the session cannot be recorded or written.
pub async fn keep_session(
    session: &Session,
    accounts: &Accounts,
    user_id: &str,
    cut: chrono::NaiveDateTime,
) -> Result<(), SessionError> {
    session.renew();
    if let Some(handle) = session_handle(session) {
        accounts.keep_browser_session(user_id, &handle, cut).await?;
    }
    Ok(())
}

/// Signs this browser out: ends its server-side session, records the `logout` event and
/// clears the cookie. `rp_initiated`: an application asked (RP-Initiated Logout).
///
/// # Errors
/// Storage failures (the cookie is then left as it was).
pub async fn log_out(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    user_id: &str,
    rp_initiated: bool,
) -> Result<(), DbError> {
    accounts
        .log_out(
            user_id,
            session_handle(session).as_deref(),
            peer_ip(req),
            rp_initiated,
        )
        .await?;
    session.purge();
    Ok(())
}

/// The logged-in, active user of this session. A session older than
/// `server.session_max_age_seconds`, without a live `user_sessions` row (ended, unknown, or
/// begun before the user's `sessions_valid_after` cut-off), or naming a deleted or deactivated
/// user, is cleared. The row is the only state that decides, so ending it works on every node.
pub async fn current_user(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<Option<Account>, DbError> {
    let Some(id) = session.get::<String>(SESSION_USER).ok().flatten() else {
        return Ok(None);
    };
    let auth_time = session
        .get::<i64>(SESSION_AUTH_TIME)
        .ok()
        .flatten()
        .unwrap_or(0);
    if chrono::Utc::now().timestamp().saturating_sub(auth_time) > web.session_max_age_seconds {
        session.purge();
        return Ok(None);
    }
    let Some(handle) = session_handle(session) else {
        session.purge();
        return Ok(None);
    };
    match accounts.browser_session_user(&handle, &id).await? {
        Some(user) => Ok(Some(user)),
        None => {
            session.purge();
            Ok(None)
        }
    }
}

/// The session's login as OIDC sees it: the user, when they logged in and how.
///
/// # Errors
/// [`DbError`] when the user cannot be loaded.
pub async fn current_login(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<Option<crate::oidc::Authentication>, DbError> {
    let Some(user) = current_user(session, accounts, web).await? else {
        return Ok(None);
    };
    if session.get::<bool>(SESSION_REAUTH).ok().flatten() == Some(true) {
        return Ok(None);
    }
    let auth_time = session
        .get::<i64>(SESSION_AUTH_TIME)
        .ok()
        .flatten()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(crate::db::now, |t| t.naive_utc());
    let amr = session
        .get::<String>(SESSION_AMR)
        .ok()
        .flatten()
        .unwrap_or_else(|| "pwd".to_owned());
    Ok(Some(crate::oidc::Authentication {
        user,
        auth_time,
        amr,
        idp: session.get::<String>(SESSION_IDP).ok().flatten(),
        nonce: None,
        session_id: session_handle(session).map(|h| crate::accounts::sessions::session_id(&h)),
    }))
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(SESSION_CSRF) {
        return token;
    }
    let token = secret::new_token();
    let _ = session.insert(SESSION_CSRF, &token);
    token
}

/// Whether `presented` equals the session's CSRF token (constant-time).
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    match (
        session.get::<String>(SESSION_CSRF).ok().flatten(),
        presented,
    ) {
        (Some(expected), Some(presented)) => {
            secret::ct_eq(expected.as_bytes(), presented.as_bytes())
        }
        _ => false,
    }
}

/// Longest `next` kept, in bytes: it is stored in the session cookie on the way through a
/// login code or a registration, and a cookie over 4 KB cannot be sent (the answer would be a
/// 500). A longer one falls back to `/`.
pub const MAX_NEXT_BYTES: usize = 2048;

/// Whether `next` is a safe local path to continue to after login (no open redirect).
#[must_use]
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.len() <= MAX_NEXT_BYTES
                && n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_must_be_local() {
        assert_eq!(safe_next(Some("/o/authorize/?a=b")), "/o/authorize/?a=b");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
