//! OAuth error responses: the codes of RFC 6749 §4.1.2.1 / §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
//! RFC 8707 §2, and the HTTP status each one is sent with.

use serde::Serialize;

/// An RFC-registered OAuth error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed request (RFC 6749 §5.2).
    InvalidRequest,
    /// Client authentication failed (RFC 6749 §5.2), sent with 401.
    InvalidClient,
    /// Bad, expired, revoked or replayed code or refresh token, or PKCE failure (RFC 6749 §5.2,
    /// RFC 7636 §4.6).
    InvalidGrant,
    /// The client may not use this grant or response type.
    UnauthorizedClient,
    /// Unknown `grant_type`.
    UnsupportedGrantType,
    /// Scope unknown or beyond what the client may have.
    InvalidScope,
    /// A `resource` that is malformed, unknown, or beyond the grant's resources (RFC 8707 §2).
    InvalidTarget,
    /// The resource owner said no (RFC 6749 §4.1.2.1).
    AccessDenied,
    /// Only `code` is supported (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// An unexpected failure on our side (storage).
    ServerError,
    /// Bad bearer token (RFC 6750 §3.1), sent with 401.
    InvalidToken,
    /// The token lacks a needed scope (RFC 6750 §3.1), sent with 403.
    InsufficientScope,
    /// `prompt=none` but the user must log in (OIDC Core §3.1.2.6).
    LoginRequired,
    /// `prompt=none` but the user must consent (OIDC Core §3.1.2.6).
    ConsentRequired,
    /// The password was right but the user must also enter the code emailed to them; the
    /// answer carries an `mfa_token` for the mfa-otp grant (sent with 403). Latchkey's own
    /// code, in the style of the Auth0 / Okta MFA grant extensions.
    MfaRequired,
}

impl ErrorCode {
    /// The registered name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::MfaRequired => "mfa_required",
        }
    }
}

/// An error to send to an OAuth client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// A sentence for the client's developer (never secret material).
    pub description: String,
    /// Set when a rate limit refused the request: seconds until retrying makes sense (429).
    pub retry_after: Option<u64>,
    /// With [`ErrorCode::MfaRequired`]: the handle the client sends back with the code.
    pub mfa_token: Option<String>,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl OAuthError {
    /// An error with `code` and `description`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
            mfa_token: None,
        }
    }

    /// `mfa_required` (403) with the `mfa_token` that the mfa-otp grant takes back.
    pub fn mfa_required(description: impl Into<String>, mfa_token: String) -> Self {
        Self {
            mfa_token: Some(mfa_token),
            ..Self::new(ErrorCode::MfaRequired, description)
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_scope`.
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    /// `invalid_target` (RFC 8707 §2).
    pub fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    /// `unauthorized_client`.
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    /// `server_error`, for storage failures (logged by the caller with the cause).
    #[must_use]
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request; try again later",
        )
    }

    /// The same error, refused by a rate limit for `seconds`.
    #[must_use]
    pub fn rate_limited(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The HTTP status: 401 for `invalid_client` / `invalid_token`, 403 for
    /// `insufficient_scope` and `mfa_required`, 429 when rate limited, 500 for `server_error`,
    /// else 400 (RFC 6749 §5.2, RFC 6750 §3.1).
    #[must_use]
    pub fn status(&self) -> u16 {
        if self.retry_after.is_some() {
            return 429;
        }
        match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope | ErrorCode::MfaRequired => 403,
            ErrorCode::ServerError => 500,
            _ => 400,
        }
    }

    /// The JSON body (RFC 6749 §5.2).
    #[must_use]
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
            mfa_token: self.mfa_token.as_deref(),
        }
    }
}

/// `{"error": …, "error_description": …}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The code.
    pub error: &'static str,
    /// The description.
    pub error_description: &'a str,
    /// With `mfa_required` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<&'a str>,
}

impl From<crate::db::DbError> for OAuthError {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "storage failure");
        Self::server_error()
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        Self::from(crate::db::DbError::Query(e))
    }
}
