//! OAuth error responses: the codes of RFC 6749 §4.1.2.1 / §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
//! RFC 8707 §2, and the HTTP status each one is sent with. Every description is an
//! [`ErrorDescription`], whose text is within the character set those RFCs allow.

use serde::Serialize;

/// An `error_description` value: by construction only the characters RFC 6749 §5.2 (and
/// §4.1.2.1) allow, `%x20-21 / %x23-5B / %x5D-7E` — printable ASCII without `"` and `\` — which
/// is also safe inside the quoted-string of a `WWW-Authenticate` challenge (RFC 6750 §3).
/// Strict client libraries reject answers with anything else.
///
/// Any text can be turned into one; [`ErrorDescription::new`] cleans it: `"` becomes `'`, `\`
/// becomes `/`, `§` becomes `section`, tabs and line breaks become spaces, any other character
/// outside the set (controls, non-ASCII) becomes `?`, and text longer than
/// [`ErrorDescription::MAX_CHARS`] is cut short with `...` (it may echo client input). Our own
/// messages are written in the allowed set, so for them cleaning changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDescription(String);

impl ErrorDescription {
    /// Longest description sent, in characters (bytes: the text is ASCII).
    pub const MAX_CHARS: usize = 512;

    /// Whether RFC 6749 §5.2 allows `c` in an `error_description`.
    #[must_use]
    pub fn is_allowed(c: char) -> bool {
        matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
    }

    /// `text`, cleaned as described on the type.
    #[must_use]
    pub fn new(text: &str) -> Self {
        let mut out = String::with_capacity(text.len().min(Self::MAX_CHARS));
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                c if Self::is_allowed(c) => out.push(c),
                '"' => out.push('\''),
                '\\' => out.push('/'),
                '§' => {
                    out.push_str("section");
                    if chars.peek().is_some_and(|n| !n.is_whitespace()) {
                        out.push(' ');
                    }
                }
                '\t' | '\n' | '\r' => out.push(' '),
                _ => out.push('?'),
            }
            if out.len() > Self::MAX_CHARS {
                break;
            }
        }
        if out.len() > Self::MAX_CHARS {
            out.truncate(Self::MAX_CHARS - 3);
            out.push_str("...");
        }
        Self(out)
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for ErrorDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ErrorDescription {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// In the OpenAPI document (`/api/openapi.json`): a string of at most
/// [`ErrorDescription::MAX_CHARS`] characters whose `pattern` is built from
/// [`ErrorDescription::is_allowed`], so the document states exactly what the type enforces.
impl utoipa::PartialSchema for ErrorDescription {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "For the developer, never for programs to parse: printable ASCII without '\"' \
                 and '\\' (RFC 6749 section 5.2), at most 512 characters.",
            ))
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(Self::pattern()))
            .into()
    }
}

impl utoipa::ToSchema for ErrorDescription {}

impl ErrorDescription {
    /// The allowed characters as a regular expression over the whole text
    /// (`^[\x20-\x21\x23-\x5B\x5D-\x7E]*$`), derived from [`ErrorDescription::is_allowed`].
    fn pattern() -> String {
        fn close(class: &mut String, (first, last): (u8, u8)) {
            class.push_str(&format!("\\x{first:02X}"));
            if last > first {
                class.push_str(&format!("-\\x{last:02X}"));
            }
        }
        let mut class = String::new();
        let mut run: Option<(u8, u8)> = None;
        for b in 0..=0x7Fu8 {
            run = match (Self::is_allowed(char::from(b)), run) {
                (true, Some((first, _))) => Some((first, b)),
                (true, None) => Some((b, b)),
                (false, Some(r)) => {
                    close(&mut class, r);
                    None
                }
                (false, None) => None,
            };
        }
        if let Some(r) = run {
            close(&mut class, r);
        }
        format!("^[{class}]*$")
    }
}

impl From<&str> for ErrorDescription {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for ErrorDescription {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

/// An RFC-registered OAuth error code. In the OpenAPI document its names are
/// [`ErrorCode::as_str`]'s (a unit test compares them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(
    as = OAuthErrorCode,
    rename_all = "snake_case",
    description = "An OAuth error code: RFC 6749 sections 4.1.2.1 and 5.2, RFC 6750 section \
        3.1, RFC 8707 section 2, OpenID Connect Core section 3.1.2.6; and Latchkey's \
        `mfa_required` (the password was right, an emailed code is needed)."
)]
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
    /// A service this request depends on (an upstream identity provider) cannot be reached
    /// just now; sent with 503. RFC 6749 §4.1.2.1's code, used at the token endpoint for
    /// RFC 8693 token exchange, which calls the provider.
    TemporarilyUnavailable,
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
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An error to send to an OAuth client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// A sentence for the client's developer (never secret material), in the RFC's character
    /// set.
    pub description: ErrorDescription,
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
            description: ErrorDescription::new(&description.into()),
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
            ErrorCode::TemporarilyUnavailable => 503,
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

/// `{"error": …, "error_description": …}`: RFC 6749 §5.2's error body, the answer of the token,
/// introspection and revocation endpoints to every refusal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OAuthError)]
pub struct ErrorBody<'a> {
    /// The code.
    #[schema(value_type = ErrorCode)]
    pub error: &'static str,
    /// The description.
    pub error_description: &'a ErrorDescription,
    /// With `mfa_required` only: the handle the mfa-otp grant takes back with the emailed code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub mfa_token: Option<&'a str>,
}

impl From<crate::db::DbError> for OAuthError {
    /// `server_error`, or `invalid_request` when the database refused the request's text
    /// ([`crate::db::DbError::is_refused_text`]: a NUL that reached PostgreSQL; `Params`
    /// refuses `%00` first, so this is a second line).
    fn from(e: crate::db::DbError) -> Self {
        if e.is_refused_text() {
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "the database refused a text of the request");
            return Self::invalid_request(
                "the request holds a character that cannot be stored (NUL)",
            );
        }
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "storage failure");
        Self::server_error()
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        Self::from(crate::db::DbError::Query(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> bool {
        text.chars().all(ErrorDescription::is_allowed)
    }

    #[test]
    fn clean_text_is_kept_as_it_is() {
        let text = "code_verifier must be 43 to 128 unreserved characters (RFC 7636 section 4.1)";
        assert_eq!(ErrorDescription::new(text).as_str(), text);
    }

    #[test]
    fn forbidden_characters_are_replaced() {
        assert_eq!(
            ErrorDescription::new("unsupported grant_type \"foo\": see RFC 7636 §4.6").as_str(),
            "unsupported grant_type 'foo': see RFC 7636 section 4.6"
        );
        assert_eq!(ErrorDescription::new("a § b").as_str(), "a section b");
        assert_eq!(ErrorDescription::new("a\\b\tc\nd\0e").as_str(), "a/b c d?e");
        assert_eq!(ErrorDescription::new("café ☕").as_str(), "caf? ?");
        assert_eq!(ErrorDescription::new("").as_str(), "");
    }

    #[test]
    fn long_text_is_cut_short() {
        let long = "x".repeat(10_000);
        let d = ErrorDescription::new(&long);
        assert_eq!(d.as_str().len(), ErrorDescription::MAX_CHARS);
        assert!(d.as_str().ends_with("..."));
        let exact = "y".repeat(ErrorDescription::MAX_CHARS);
        assert_eq!(ErrorDescription::new(&exact).as_str(), exact);
    }

    /// Whatever the input, the description is in the allowed set and bounded (a property test
    /// over random strings of every kind of character).
    #[test]
    fn any_text_becomes_an_allowed_description() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let samples = [
            '"', '\\', '§', '\n', '\0', '\u{7f}', 'é', '😀', 'a', ' ', '\u{2028}',
        ];
        for _ in 0..2_000 {
            let len = rng.gen_range(0..700);
            let text: String = (0..len)
                .map(|_| {
                    if rng.gen_bool(0.5) {
                        samples[rng.gen_range(0..samples.len())]
                    } else {
                        char::from_u32(rng.gen_range(0..0x11_000)).unwrap_or('x')
                    }
                })
                .collect();
            let d = ErrorDescription::new(&text);
            assert!(allowed(d.as_str()), "{text:?} -> {:?}", d.as_str());
            assert!(d.as_str().len() <= ErrorDescription::MAX_CHARS);
            // Cleaning is idempotent: a clean description is left alone.
            assert_eq!(ErrorDescription::new(d.as_str()), d);
        }
    }

    #[test]
    fn the_documented_pattern_is_the_allowed_set() {
        assert_eq!(
            ErrorDescription::pattern(),
            r"^[\x20-\x21\x23-\x5B\x5D-\x7E]*$"
        );
    }

    /// Every code, for the OpenAPI check below.
    const ALL_CODES: [ErrorCode; 16] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidScope,
        ErrorCode::InvalidTarget,
        ErrorCode::AccessDenied,
        ErrorCode::UnsupportedResponseType,
        ErrorCode::ServerError,
        ErrorCode::InvalidToken,
        ErrorCode::InsufficientScope,
        ErrorCode::LoginRequired,
        ErrorCode::ConsentRequired,
        ErrorCode::MfaRequired,
        ErrorCode::TemporarilyUnavailable,
    ];

    /// Fails to compile when a code is added without being put in [`ALL_CODES`].
    fn _every_code_is_listed(code: ErrorCode) {
        match code {
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidClient
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::InvalidScope
            | ErrorCode::InvalidTarget
            | ErrorCode::AccessDenied
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::ServerError
            | ErrorCode::InvalidToken
            | ErrorCode::InsufficientScope
            | ErrorCode::LoginRequired
            | ErrorCode::ConsentRequired
            | ErrorCode::MfaRequired
            | ErrorCode::TemporarilyUnavailable => {}
        }
    }

    #[test]
    fn the_documented_codes_are_the_codes_sent() {
        let schema =
            serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema()).expect("json");
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let sent: Vec<&str> = ALL_CODES.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented, sent);
    }

    #[test]
    fn every_error_body_is_clean() {
        let e = OAuthError::invalid_request("bad \"value\" §1");
        let json = serde_json::to_value(e.body()).expect("json");
        assert_eq!(json["error_description"], "bad 'value' section 1");
    }
}
