//! `GET /auth/` (seed 000's `get_authenticated_user`): the signed-in user's Discord profile as
//! JSON, for the applications moving over from the seed's Discord login.
//!
//! Who may call: a browser with a Latchkey session (the session cookie; no CORS, so only
//! Latchkey's own origin can read the answer). `401 login_required` when no one is signed in,
//! `404 not_found` when the user linked no Discord account.

use actix_session::Session;
use actix_web::{web, HttpResponse};

use crate::accounts::Accounts;
use crate::routes::browser::current_user;
use crate::routes::errors::{ApiError, ApiErrorCode};
use crate::routes::http::no_store;
use crate::routes::WebConfig;
use crate::upstream::Upstream;

/// `GET /auth/`: `{id, username, tag, global_name, avatar, avatar_url, public_flags, flags,
/// locale, mfa_enabled, email, verified, last_login}` (the `discord` claim with the latest
/// Discord sign-in, RFC 3339), `Cache-Control: no-store`.
pub async fn show_discord_profile(
    session: Session,
    accounts: web::Data<Accounts>,
    upstream: web::Data<Upstream>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, ApiError> {
    let user = current_user(&session, &accounts, &web)
        .await?
        .ok_or_else(|| ApiError::new(ApiErrorCode::LoginRequired, "sign in first"))?;
    let account = upstream.discord_account(&user.id).await?.ok_or_else(|| {
        ApiError::new(
            ApiErrorCode::NotFound,
            "no Discord account is linked to this account",
        )
    })?;
    Ok(no_store(&mut HttpResponse::Ok()).json(account.to_json()))
}
