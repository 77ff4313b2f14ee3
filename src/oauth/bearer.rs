//! Bearer-token validation for protected resources (RFC 6750).

use chrono::NaiveDateTime;

use super::error::ErrorDescription;
use super::OAuth;
use crate::accounts::Account;
use crate::db::{self, tokens, DbError};
use crate::domain::ScopeSet;
use crate::secret;

/// A valid access token and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The resource owner as the token's check read them (absent for client-credentials
    /// tokens).
    pub user: Option<Account>,
    /// Granted scope.
    pub scope: ScopeSet,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
}

/// Why a request to a protected resource is refused (RFC 6750 §3.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No credentials at all: 401 with a bare `WWW-Authenticate: Bearer` challenge (§3.1).
    #[error("an access token is required")]
    Missing,
    /// Malformed `Authorization` header: 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// Unknown, expired or revoked token: 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// The token lacks the scope the resource needs: 403 `insufficient_scope`.
    #[error("this resource needs the {0} scope")]
    InsufficientScope(String),
    /// The resource needs a user, and the token (client credentials) has none: 403
    /// `insufficient_scope`, without a `scope` hint.
    #[error("this resource needs a token issued to a user")]
    UserRequired,
    /// Storage failed: 500.
    #[error("the server could not check the token")]
    Storage,
}

impl BearerError {
    /// The RFC 6750 §3.1 error code, if any.
    #[must_use]
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Missing | Self::Storage => None,
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope(_) | Self::UserRequired => Some("insufficient_scope"),
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Missing | Self::InvalidToken(_) => 401,
            Self::InvalidRequest(_) => 400,
            Self::InsufficientScope(_) | Self::UserRequired => 403,
            Self::Storage => 500,
        }
    }

    /// The `error_description` (RFC 6750 §3: the character set of RFC 6749 §5.2, which also
    /// keeps it safe inside a quoted-string).
    #[must_use]
    pub fn description(&self) -> ErrorDescription {
        ErrorDescription::new(&self.to_string())
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3). `realm` is ours; the description is an
    /// [`ErrorDescription`] (no `"` or `\`), and a scope token cannot hold either (RFC 6749
    /// §3.3), so every quoted-string is well formed.
    #[must_use]
    pub fn challenge(&self, realm: &str) -> String {
        let mut out = format!("Bearer realm=\"{realm}\"");
        if let Some(code) = self.code() {
            out.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                self.description()
            ));
        }
        if let Self::InsufficientScope(scope) = self {
            out.push_str(&format!(", scope=\"{scope}\""));
        }
        out
    }
}

impl From<DbError> for BearerError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "storage failure while checking a bearer token");
        Self::Storage
    }
}

/// Extracts the token from an `Authorization: Bearer …` header (RFC 6750 §2.1).
///
/// # Errors
/// [`BearerError::Missing`] without a header, [`BearerError::InvalidRequest`] for another
/// scheme or a malformed token.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, BearerError> {
    let header = authorization.ok_or(BearerError::Missing)?;
    let token = header
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))
        .map(|_| header[7..].trim())
        .ok_or(BearerError::InvalidRequest(
            "use the Authorization: Bearer scheme",
        ))?;
    // RFC 6750 §2.1 b64token.
    if token.is_empty()
        || !token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        })
    {
        return Err(BearerError::InvalidRequest("the bearer token is malformed"));
    }
    Ok(token)
}

impl OAuth {
    /// Validates the bearer token of a request and, when `required_scope` is given, that it
    /// grants that scope.
    ///
    /// # Errors
    /// See [`BearerError`].
    pub async fn validate_bearer(
        &self,
        authorization: Option<&str>,
        required_scope: Option<&str>,
    ) -> Result<AccessGrant, BearerError> {
        let token = bearer_token(authorization)?;
        let hash = secret::sha256_hex(token);
        let grant = self
            .db
            .read(move |conn| {
                tokens::find_usable(conn, &hash, Some(tokens::ACCESS), db::now())
                    .map_err(DbError::from)
            })
            .await?
            .map(|(row, user)| AccessGrant {
                client_id: row.client_id,
                user: user.map(Account::from),
                scope: ScopeSet::from_stored(&row.scope),
                expires_at: row.expires_at,
            })
            .ok_or(BearerError::InvalidToken(
                "the access token is invalid, expired or revoked",
            ))?;
        if let Some(scope) = required_scope {
            if !grant.scope.contains(scope) {
                return Err(BearerError::InsufficientScope(scope.to_owned()));
            }
        }
        Ok(grant)
    }
}
