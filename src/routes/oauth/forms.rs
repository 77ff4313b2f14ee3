//! The form bodies of the protocol endpoints, as OpenAPI schemas (`/api/openapi.json`).
//!
//! The endpoints read their bodies as [`Params`](crate::oauth::Params) — a strict
//! `application/x-www-form-urlencoded` map (RFC 6749 §3.2), not a struct — and each grant takes
//! the parameters it needs from it. These types only describe that map, one per grant, so they
//! are never built; a unit test in `routes/openapi.rs` reads the grants' sources and fails when
//! a grant reads a parameter its type here does not list. A parameter sent empty counts as
//! absent (RFC 6749 §3.1); only `resource` may be repeated (RFC 8707 §2, at most 10).
//!
//! The client authenticates with HTTP Basic (`client_secret_basic`), or with `client_id` and
//! `client_secret` in the body (`client_secret_post`), or — a public client — with `client_id`
//! alone; never two ways at once (RFC 6749 §2.3.1).
// Described, never built: the fields are read by name from `Params`.
#![allow(dead_code)]

use utoipa::ToSchema;

/// A token request (RFC 6749 §3.2): one shape per `grant_type`.
#[derive(ToSchema)]
#[serde(untagged)]
pub(in crate::routes) enum TokenRequest {
    /// RFC 6749 §4.1.3.
    AuthorizationCode(AuthorizationCodeRequest),
    /// RFC 6749 §6.
    RefreshToken(RefreshTokenRequest),
    /// RFC 6749 §4.3.
    Password(PasswordRequest),
    /// The password grant's second step.
    MfaOtp(MfaOtpRequest),
    /// RFC 6749 §4.4.
    ClientCredentials(ClientCredentialsRequest),
    /// RFC 8693.
    TokenExchange(TokenExchangeRequest),
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5).
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct AuthorizationCodeRequest {
    /// `authorization_code`.
    #[schema(required = true, pattern = "^authorization_code$")]
    grant_type: String,
    /// The code of the authorization response (single use, 60 seconds by default).
    #[schema(required = true, min_length = 1)]
    code: String,
    /// Required, and identical, when the authorization request named one; omitted when it
    /// did not (the client registered one redirect URI).
    redirect_uri: String,
    /// The PKCE verifier (RFC 7636 §4.1: 43 to 128 unreserved characters), when the
    /// authorization request had a challenge.
    code_verifier: String,
    /// RFC 8707 resources for the access token: some of the authorization request's.
    #[schema(max_items = 10)]
    resource: Vec<String>,
    /// `client_secret_post`, or a public client.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// `grant_type=refresh_token` (RFC 6749 §6): the refresh token is rotated.
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct RefreshTokenRequest {
    /// `refresh_token`.
    #[schema(required = true, pattern = "^refresh_token$")]
    grant_type: String,
    /// The refresh token.
    #[schema(required = true, min_length = 1)]
    refresh_token: String,
    /// A narrower scope (space-separated); without it, the grant's.
    scope: String,
    /// RFC 8707 resources for the access token: some of the grant's.
    #[schema(max_items = 10)]
    resource: Vec<String>,
    /// `client_secret_post`, or a public client.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// `grant_type=password` (RFC 6749 §4.3), for first-party clients allowed it. A user who must
/// also enter an emailed code gets `403 mfa_required` with an `mfa_token`.
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct PasswordRequest {
    /// `password`.
    #[schema(required = true, pattern = "^password$")]
    grant_type: String,
    /// The username or email address.
    #[schema(required = true, min_length = 1)]
    username: String,
    /// The password.
    #[schema(required = true, min_length = 1)]
    password: String,
    /// Space-separated; without it, the client's allowed scopes except `openid` and
    /// `offline_access`.
    scope: String,
    /// RFC 8707 resources for the access token.
    #[schema(max_items = 10)]
    resource: Vec<String>,
    /// `client_secret_post`, or a public client.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// `grant_type=urn:latchkey:params:oauth:grant-type:mfa-otp`: the emailed code after a
/// password-grant `mfa_required`, from a client allowed the password grant.
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct MfaOtpRequest {
    /// `urn:latchkey:params:oauth:grant-type:mfa-otp`.
    #[schema(
        required = true,
        pattern = "^urn:latchkey:params:oauth:grant-type:mfa-otp$"
    )]
    grant_type: String,
    /// The `mfa_token` of the `mfa_required` answer.
    #[schema(required = true, min_length = 1)]
    mfa_token: String,
    /// The 6-digit code from the email.
    #[schema(required = true, min_length = 1)]
    otp: String,
    /// RFC 8707 resources for the access token.
    #[schema(max_items = 10)]
    resource: Vec<String>,
    /// `client_secret_post`, or a public client.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// `grant_type=client_credentials` (RFC 6749 §4.4): a token for the client itself.
#[derive(Default, ToSchema)]
#[schema(example = json!({"grant_type": "client_credentials"}))]
#[serde(default)]
pub(in crate::routes) struct ClientCredentialsRequest {
    /// `client_credentials`.
    #[schema(required = true, pattern = "^client_credentials$")]
    grant_type: String,
    /// Space-separated; without it, the client's allowed scopes (those a client without a
    /// user may have).
    scope: String,
    /// RFC 8707 resources for the access token.
    #[schema(max_items = 10)]
    resource: Vec<String>,
    /// `client_secret_post`.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693 §2.1): an upstream
/// provider's token for Latchkey tokens.
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct TokenExchangeRequest {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(
        required = true,
        pattern = "^urn:ietf:params:oauth:grant-type:token-exchange$"
    )]
    grant_type: String,
    /// The provider's ID token or access token.
    #[schema(required = true, min_length = 1)]
    subject_token: String,
    /// `urn:ietf:params:oauth:token-type:id_token` or `…:access_token` (Google only).
    #[schema(
        required = true,
        pattern = "^urn:ietf:params:oauth:token-type:(id_token|access_token)$"
    )]
    subject_token_type: String,
    /// When sent, `urn:ietf:params:oauth:token-type:access_token`.
    requested_token_type: String,
    /// The `[upstream.<id>]` provider (Latchkey's parameter); default: the only Google one.
    subject_issuer: String,
    /// Space-separated, as for the password grant.
    scope: String,
    /// RFC 8707 resources for the access token.
    #[schema(max_items = 10)]
    resource: Vec<String>,
    /// Refused: delegation is not supported (`invalid_request`).
    actor_token: String,
    /// Refused, as `actor_token`.
    actor_token_type: String,
    /// `client_secret_post`, or a public client.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// The body of `POST /o/introspect/` (RFC 7662 §2.1) and `POST /o/revoke_token/` (RFC 7009
/// §2.1).
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct TokenForm {
    /// An access or refresh token.
    #[schema(required = true, min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`: accepted and not needed (hashes are unique across
    /// kinds).
    token_type_hint: String,
    /// `client_secret_post`, or a public client.
    client_id: String,
    /// `client_secret_post`.
    client_secret: String,
}

/// The body of `POST /o/userinfo/` (RFC 6750 §2.2), instead of the `Authorization` header.
#[derive(Default, ToSchema)]
#[serde(default)]
pub(in crate::routes) struct UserInfoForm {
    /// The access token; never together with an `Authorization` header.
    access_token: String,
}
