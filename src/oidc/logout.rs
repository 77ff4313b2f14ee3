//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–§3): which client asks, whether
//! the request is authenticated by an `id_token_hint`, and where the browser may go afterwards.
//! The route ends the session and renders the pages.

use url::Url;

use super::keys::{JwtVerifyError, KeyStore};
use super::{IdTokenHint, ID_TOKEN_TYP};
use crate::clients::Clients;
use crate::db::DbError;

/// The parameters of a logout request (RP-Initiated Logout §2), as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    /// `id_token_hint`: an ID token this server issued (expired is fine).
    pub id_token_hint: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `post_logout_redirect_uri`.
    pub post_logout_redirect_uri: Option<String>,
    /// `state`, appended to the redirect.
    pub state: Option<String>,
}

/// What a logout request asks for, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutPlan {
    /// The `sub` of a valid `id_token_hint` (the user the relying party believes is logged in).
    pub hinted_subject: Option<String>,
    /// The name of the client that asked, when it is known.
    pub client_name: Option<String>,
    /// Where to send the browser afterwards: a registered `post_logout_redirect_uri` of that
    /// client, with `state` appended (§3). `None` shows the logged-out page instead.
    pub redirect: Option<String>,
    /// Why a `post_logout_redirect_uri` given was not used, for the logged-out page.
    pub redirect_refused: Option<&'static str>,
}

/// A logout request that cannot be honoured as asked.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// Malformed or contradictory parameters (shown on an error page, §2).
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Signing keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] super::keys::KeyError),
}

/// Checks a logout request's `id_token_hint`, `client_id`, `post_logout_redirect_uri` and
/// `state` (§2) for a browser in which `signed_in` (a user id) is signed in, if anyone. An
/// `id_token_hint` must be one of our ID tokens (expired is fine, §2); with a `client_id`
/// too, that client must be among its audiences. A `post_logout_redirect_uri` is used only
/// when it exactly matches one the client registered, and for a client registered through
/// the developer portal only when the hint's `sub` is the signed-in user: anyone can get an
/// ID token of their own (even an expired one does) from a client they registered, so a
/// hint proves nothing about the person who follows the link — without a session, or for
/// another user's session, it would make `/o/logout/` an open redirector (RFC 9700
/// §4.11.2). Operator clients keep §3's rules (a hint or `client_id` identifies them).
///
/// # Errors
/// [`LogoutError::Invalid`] for a bad hint or a `client_id` that contradicts it;
/// [`LogoutError::Db`] when storage fails.
pub async fn plan_logout(
    keys: &KeyStore,
    clients: &Clients,
    issuer: &str,
    request: &LogoutRequest,
    signed_in: Option<&str>,
) -> Result<LogoutPlan, LogoutError> {
    let mut hinted_subject = None;
    let mut client_id = request.client_id.clone();
    if let Some(hint) = request.id_token_hint.as_deref() {
        let claims: IdTokenHint = match keys.verify(hint, ID_TOKEN_TYP, issuer, true).await {
            Ok(c) => c,
            Err(JwtVerifyError::Invalid(reason)) => {
                return Err(LogoutError::Invalid(format!(
                    "the id_token_hint is not a valid ID token from this server ({reason})"
                )))
            }
            Err(JwtVerifyError::Keys(e)) => return Err(LogoutError::Keys(e)),
        };
        match &client_id {
            Some(id) if !claims.aud.contains(id) => {
                return Err(LogoutError::Invalid(
                    "client_id does not match the id_token_hint's audience".into(),
                ))
            }
            Some(_) => {}
            None => client_id = claims.aud.single().map(str::to_owned),
        }
        hinted_subject = Some(claims.sub);
    }
    let client = match &client_id {
        Some(id) => clients.find(id).await?,
        None => None,
    };
    let mut plan = LogoutPlan {
        hinted_subject,
        client_name: client.as_ref().map(|c| c.name().to_owned()),
        redirect: None,
        redirect_refused: None,
    };
    let Some(uri) = request.post_logout_redirect_uri.as_deref() else {
        return Ok(plan);
    };
    let Some(client) = client else {
        plan.redirect_refused =
            Some("the application was not identified (send client_id or id_token_hint)");
        return Ok(plan);
    };
    // A client any user registered through the developer portal could otherwise turn this
    // endpoint into an open redirector (RFC 9700 §4.11.2): its redirect needs an ID token
    // of the user signed in here (RP-Initiated Logout §3 "other means" are only trusted
    // for clients the operators registered). Its owner can mint hints for themselves only.
    if client.is_portal_client() {
        let refused = match (plan.hinted_subject.as_deref(), signed_in) {
            (None, _) => Some("the application did not send the id_token_hint this redirect needs"),
            (Some(_), None) => {
                Some("you were not signed in here, so nothing shows that the request came from you")
            }
            (Some(sub), Some(user)) if sub != user => {
                Some("the sign-in it named (id_token_hint) is of another account")
            }
            (Some(_), Some(_)) => None,
        };
        if refused.is_some() {
            plan.redirect_refused = refused;
            return Ok(plan);
        }
    }
    let registered = client.post_logout_redirect_uris();
    // Exact string comparison, as for redirect URIs (§3).
    if !registered.iter().any(|r| r == uri) {
        plan.redirect_refused = Some("the address it asked to return to is not registered for it");
        return Ok(plan);
    }
    match Url::parse(uri) {
        Ok(mut url) => {
            if let Some(state) = request.state.as_deref() {
                url.query_pairs_mut().append_pair("state", state);
            }
            plan.redirect = Some(url.into());
        }
        Err(_) => plan.redirect_refused = Some("the registered address is invalid"),
    }
    Ok(plan)
}
