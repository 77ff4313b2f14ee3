//! OpenID Connect endpoints: discovery, JWKS, UserInfo and RP-initiated logout.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::oauth::bearer::BearerError;
use crate::oauth::metadata::ServerMetadata;
use crate::oauth::{OAuth, Params};
use crate::oidc::logout::{LogoutError, LogoutPlan};
use crate::oidc::{add_discord_claim, user_claims, OPENID};
use crate::routes::browser::{csrf_ok, current_user};
use crate::routes::chrome::{render, Chrome};
use crate::routes::errors::responses::{BearerRequired, ScopeRequired, Unavailable};
use crate::routes::errors::{ApiError, ApiErrorBody, PageError};
use crate::routes::http::{authorization_header, no_store, read_form, see_other};
use crate::routes::oauth::{preflight_for, request_origin, with_cors};
use crate::routes::WebConfig;
use crate::upstream::{Upstream, DISCORD_SCOPE};

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4) and
/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3): the same document, built from
/// the configuration alone, so it is served from memory and never depends on the database.
/// (RFC 9728 §4's optional `protected_resources` is left out for that reason: it would need a
/// read of every client on each request.)
pub async fn discovery(oauth: web::Data<OAuth>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(ServerMetadata::new(oauth.config()))
}

/// `GET /.well-known/jwks.json` (RFC 7517 §5): the published public keys. Cacheable for five
/// minutes: a rotated-in key is published before it signs, and relying parties re-fetch on an
/// unknown `kid`.
pub async fn jwks(oauth: web::Data<OAuth>) -> HttpResponse {
    match oauth.keys().jwks().await {
        Ok(set) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .content_type("application/jwk-set+json")
            .json(set),
        Err(e) => {
            tracing::error!(error = %e, "signing keys unavailable");
            let mut builder = HttpResponse::ServiceUnavailable();
            no_store(&mut builder).json(serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "the signing keys cannot be read",
            }))
        }
    }
}

/// The UserInfo answer (OIDC Core §5.3.2): `sub`, and the claims the token's scope grants, as
/// [`user_claims`] and [`add_discord_claim`] build them — a JSON object, not this struct, which
/// only describes it in the OpenAPI document (a unit test in `routes/openapi.rs` checks that
/// every claim `user_claims` sends is listed). A claim without a value is left out.
#[derive(utoipa::ToSchema)]
#[schema(
    description = "`sub`, and the claims the token's scope grants (OpenID Connect Core \
    section 5.3.2): `profile`, `email`, and `discord` when the user linked a Discord account. \
    A claim without a value is left out."
)]
#[allow(dead_code)]
pub(super) struct UserInfoClaims {
    /// The user's stable id.
    sub: String,
    /// `profile`: first and last name.
    #[serde(default)]
    name: String,
    /// `profile`.
    #[serde(default)]
    given_name: String,
    /// `profile`.
    #[serde(default)]
    family_name: String,
    /// `profile`.
    #[serde(default)]
    preferred_username: String,
    /// `email`.
    #[serde(default)]
    email: String,
    /// `email`.
    #[serde(default)]
    email_verified: bool,
    /// `discord`, when the user linked a Discord account.
    #[serde(default)]
    #[schema(value_type = crate::upstream::discord::DiscordClaim)]
    discord: serde_json::Value,
}

/// `GET` or `POST /o/userinfo/` (OIDC Core §5.3): the claims the access token's scope grants.
/// The token comes in the `Authorization: Bearer` header, or for `POST` as `access_token` in a
/// form body (RFC 6750 §2.2), never both (§2). It must carry `openid` and belong to a user:
/// client-credentials tokens describe no user and get 403 `insufficient_scope`. The `discord`
/// scope adds the user's Discord profile (`discord`) when they linked a Discord account.
///
/// CORS as at the token endpoint: a browser at an origin gets `Access-Control-Allow-Origin`
/// when the client the token was issued to registered that origin; an error (no valid token,
/// so no client) gets it when some client registered the origin, as a preflight does.
///
/// (The OpenAPI document lists `POST` as a second operation with the form body.)
#[utoipa::path(
    get,
    path = "/o/userinfo/",
    tag = "oidc",
    security(("bearer" = ["openid"])),
    responses(
        (status = 200, description = "The user's claims.", body = UserInfoClaims),
        (status = 400, description = "`invalid_request`: the `Authorization` header is not \
            `Bearer` with a well-formed token; for `POST`, a body that is not a form or cannot \
            be read, or a token sent both in the header and in the body.", body = ApiErrorBody),
        (status = 401, response = BearerRequired),
        (status = 403, response = ScopeRequired),
        (status = 503, response = Unavailable),
    )
)]
pub async fn userinfo(
    req: HttpRequest,
    payload: web::Payload,
    oauth: web::Data<OAuth>,
    clients: web::Data<Clients>,
    upstream: web::Data<Upstream>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (response, client_id) = userinfo_response(&req, payload, &oauth, &upstream, &web).await;
    let origin = match request_origin(&req) {
        Some(origin) => match clients.origin_allowed(origin, client_id.as_deref()).await {
            Ok(true) => Some(origin.to_owned()),
            _ => None,
        },
        None => None,
    };
    with_cors(response, origin)
}

/// `OPTIONS /o/userinfo/`: the CORS preflight, answered like the token endpoint's.
pub async fn userinfo_preflight(req: HttpRequest, clients: web::Data<Clients>) -> HttpResponse {
    preflight_for(&req, &clients, "GET, POST").await
}

/// The UserInfo answer, and the client the presented token was issued to (when it was valid).
async fn userinfo_response(
    req: &HttpRequest,
    payload: web::Payload,
    oauth: &OAuth,
    upstream: &Upstream,
    web: &WebConfig,
) -> (HttpResponse, Option<String>) {
    let header_value = authorization_header(req).map(str::to_owned);
    let form_token = if req.method() == actix_web::http::Method::POST {
        match read_form(req, payload, web.max_body_bytes).await {
            Ok(form) => form.get("access_token").map(str::to_owned),
            Err(response) => return (response, None),
        }
    } else {
        None
    };
    let authorization = match (header_value, form_token) {
        (Some(_), Some(_)) => {
            return (
                bearer_error(BearerError::InvalidRequest(
                    "send the access token in one place only (RFC 6750 section 2)",
                )),
                None,
            )
        }
        (Some(h), None) => Some(h),
        (None, Some(t)) => Some(format!("Bearer {t}")),
        (None, None) => None,
    };
    let grant = match oauth
        .validate_bearer(authorization.as_deref(), Some(OPENID))
        .await
    {
        Ok(g) => g,
        Err(e) => return (bearer_error(e), None),
    };
    let Some(user) = grant.user else {
        return (
            bearer_error(BearerError::UserRequired),
            Some(grant.client_id),
        );
    };
    let mut claims = user_claims(&user, &grant.scope);
    if grant.scope.contains(DISCORD_SCOPE) {
        match upstream.discord_account(&user.id).await {
            Ok(discord) => {
                add_discord_claim(
                    &mut claims,
                    &grant.scope,
                    discord.as_ref().map(|d| &d.profile),
                );
            }
            Err(e) => {
                return (
                    actix_web::ResponseError::error_response(&ApiError::from(e)),
                    Some(grant.client_id),
                )
            }
        }
    }
    let mut builder = HttpResponse::Ok();
    (no_store(&mut builder).json(claims), Some(grant.client_id))
}

/// An RFC 6750 §3 answer: status, `WWW-Authenticate` challenge and JSON body, written as the
/// JSON APIs write theirs.
fn bearer_error(e: BearerError) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::from(e))
}

/// "Sign out?": an application asked to end the session without proving it is the signed-in
/// user's (OpenID Connect RP-Initiated Logout 1.0 §2, "the OP SHOULD ask the End-User").
#[derive(Template)]
#[template(path = "oidc/logout_confirm.html")]
struct LogoutConfirmPage<'a> {
    /// The signed-in user's (their name, the form's CSRF token); no navigation, and a
    /// pending notice stays pending.
    chrome: Chrome,
    fields: Vec<(String, String)>,
    client_name: Option<&'a str>,
}

/// "You are signed out", after RP-initiated logout when the browser does not go back to the
/// application.
#[derive(Template)]
#[template(path = "oidc/logged_out.html")]
struct LoggedOutPage<'a> {
    /// A visitor's: the session was just purged (and no new one is started for this page).
    chrome: Chrome,
    client_name: Option<&'a str>,
    redirect_refused: Option<&'a str>,
}

/// The logout request parameters carried through the confirmation form.
const LOGOUT_PARAMS: [&str; 5] = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
];

/// `GET` or `POST /o/logout/` (OpenID Connect RP-Initiated Logout 1.0 §2). A request
/// authenticated by an `id_token_hint` for the logged-in user (or made with no one logged in)
/// ends the session at once; any other asks the user to confirm. The confirmation form posts
/// back here with `csrf_token` and `confirm=yes`. Where the browser goes afterwards is
/// [`OAuth::plan_logout`]'s decision (for portal clients: only back to the application whose
/// hint names the user who was signed in).
pub async fn end_session(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    oauth: web::Data<OAuth>,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = if req.method() == actix_web::http::Method::POST {
        read_form(&req, payload, web.max_body_bytes)
            .await
            .map_err(|_| PageError::bad_request("Bad request", "The form could not be read."))?
    } else {
        Params::from_query(req.query_string())
            .map_err(|e| PageError::bad_request("Invalid logout request", e.description.as_str()))?
    };
    let confirmed = match params.get("csrf_token") {
        Some(presented) if csrf_ok(&session, Some(presented)) => {
            params.get("confirm") == Some("yes")
        }
        Some(_) => return Err(PageError::CsrfFailed),
        None => false,
    };
    let user = current_user(&session, &accounts, &web).await?;
    let plan: LogoutPlan = match oauth
        .plan_logout(&params, user.as_ref().map(|u| u.id.as_str()))
        .await
    {
        Ok(plan) => plan,
        Err(LogoutError::Invalid(message)) => {
            return Err(PageError::bad_request(
                "Invalid logout request",
                format!("The application sent an invalid logout request: {message}. You are still signed in."),
            ))
        }
        Err(LogoutError::Db(e)) => return Err(e.into()),
        Err(LogoutError::Keys(e)) => {
            tracing::error!(error = %e, "signing keys unavailable");
            return Err(PageError::Unavailable);
        }
    };
    let authenticated_by_hint = match (&user, &plan.hinted_subject) {
        (None, _) => true,
        (Some(user), Some(sub)) => &user.id == sub,
        (Some(_), None) => false,
    };
    if let (Some(user), false, false) = (&user, authenticated_by_hint, confirmed) {
        let fields = LOGOUT_PARAMS
            .iter()
            .filter_map(|k| params.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
            .collect();
        return Ok(render(
            StatusCode::OK,
            &LogoutConfirmPage {
                chrome: Chrome::without_notice(&session, Some(user), &web.brand),
                fields,
                client_name: plan.client_name.as_deref(),
            },
        ));
    }
    if let Some(user) = &user {
        crate::routes::browser::log_out(&req, &session, &accounts, &user.id, true).await?;
    }
    session.purge();
    Ok(match plan.redirect {
        Some(location) => see_other(&location),
        None => render(
            StatusCode::OK,
            &LoggedOutPage {
                chrome: Chrome::anonymous(&web.brand),
                client_name: plan.client_name.as_deref(),
                redirect_refused: plan.redirect_refused,
            },
        ),
    })
}
