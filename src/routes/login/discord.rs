//! The paths of the Discord logins Latchkey replaces (issue 11), kept for the applications
//! moving over: seed 000's `GET /oauth2/login/` starts a Discord sign-in, and seed 000's
//! `GET /oauth2/login/redirect/` and seed 003's `GET /discord/sso/callback` finish one, like
//! `/accounts/upstream/<id>/login/` and `/accounts/upstream/<id>/callback/` do (same checks,
//! same outcomes, see [`super::upstream`]). The seed's `/auth/` is in
//! [`crate::routes::api`]'s `discord`.
//!
//! Who may call: anyone. The provider is the one enabled Discord provider (`404` page when
//! there is none, or several). `/oauth2/login/` sends the provider's `callback_path` as the
//! redirect URI, or `/oauth2/login/redirect/` when none is set; the callback must come back to
//! the path the sign-in named, and the code exchange sends the same redirect URI (RFC 6749
//! §4.1.3).

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};

use super::upstream::{failure, finish, redirect_to_provider, take_pending};
use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::oauth::Params;
use crate::routes::browser::safe_next;
use crate::routes::errors::PageError;
use crate::routes::WebConfig;
use crate::upstream::Upstream;

/// `GET /oauth2/login/?next=PATH` (seed 000): starts a sign-in with the Discord provider.
pub async fn start_legacy_sign_in(
    req: HttpRequest,
    session: Session,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let provider = upstream.legacy_discord().map_err(|_| {
        PageError::not_found(
            "No Discord sign-in",
            "This server has no Discord sign-in at this address. Sign in from the sign-in page.",
        )
    })?;
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let next = safe_next(params.get("next"));
    let (url, pending) = upstream
        .begin_legacy_discord(&provider, next)
        .await
        .map_err(failure)?;
    redirect_to_provider(&session, &url, &pending)
}

/// `GET /oauth2/login/redirect/?code=…&state=…` (seed 000) and `GET /discord/sso/callback`
/// (seed 003): finishes the Discord sign-in this browser started with either path as its
/// redirect URI.
pub async fn finish_legacy_sign_in(
    req: HttpRequest,
    session: Session,
    upstream: web::Data<Upstream>,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let pending = take_pending(&session, &req);
    // The seeds' paths name no provider: the pending sign-in does (whose callback path must be
    // this one, checked by `finish`), else the Discord provider, for the page's words.
    let provider = match &pending {
        Some(pending) => upstream.provider(&pending.provider),
        None => upstream.legacy_discord(),
    }
    .map_err(failure)?;
    finish(
        &req,
        &session,
        &provider,
        pending,
        (&upstream, &accounts, &clients),
        &web,
    )
    .await
}
