//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3): `client_secret_basic` (with the form-urldecoding of §2.3.1),
//! `client_secret_post`, and `none` for public clients. Parsed once per request.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::error::OAuthError;
use super::params::{decode, Params};
use super::OAuth;
use crate::audit::AuditEvent;
use crate::clients::{Client, ClientType};
use crate::limits::{self, LimitError, Rule};
use crate::secret;

/// The credentials a request presented.
#[derive(Debug)]
pub enum PresentedClient {
    /// HTTP Basic.
    Basic {
        /// `client_id`.
        id: String,
        /// `client_secret`.
        secret: SecretString,
    },
    /// `client_id` + `client_secret` in the body.
    Post {
        /// `client_id`.
        id: String,
        /// `client_secret`.
        secret: SecretString,
    },
    /// `client_id` alone (public client).
    None {
        /// `client_id`.
        id: String,
    },
}

impl PresentedClient {
    /// The `client_id` presented.
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Self::Basic { id, .. } | Self::Post { id, .. } | Self::None { id } => id,
        }
    }
}

/// Longest `client_id` accepted, in bytes (ours are 32; longer ones are refused before any
/// storage work).
pub const MAX_CLIENT_ID_BYTES: usize = 255;

/// Reads the client credentials from the `Authorization` header and the body.
///
/// # Errors
/// `invalid_client` when none are present, the header is malformed or the `client_id` is longer
/// than [`MAX_CLIENT_ID_BYTES`]; `invalid_request` when two methods are used at once
/// (RFC 6749 §2.3) or the body's `client_id` contradicts Basic.
pub fn presented_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, OAuthError> {
    let presented = parse_credentials(authorization, params)?;
    if presented.id().len() > MAX_CLIENT_ID_BYTES {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    Ok(presented)
}

fn parse_credentials(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, OAuthError> {
    if let Some(header) = authorization {
        let Some(encoded) = header
            .get(..6)
            .filter(|s| s.eq_ignore_ascii_case("basic "))
            .map(|_| header[6..].trim())
        else {
            return Err(OAuthError::invalid_client(
                "unsupported Authorization scheme: use HTTP Basic with client_id and client_secret",
            ));
        };
        let decoded = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
        // RFC 6749 §2.3.1: both parts are application/x-www-form-urlencoded.
        let id =
            decode(id.as_bytes()).map_err(|_| OAuthError::invalid_client("malformed client_id"))?;
        let secret = decode(secret.as_bytes())
            .map_err(|_| OAuthError::invalid_client("malformed client_secret"))?;
        if params.contains("client_secret") {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not HTTP Basic and client_secret together (RFC 6749 section 2.3)",
            ));
        }
        if params.get("client_id").is_some_and(|body_id| body_id != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the HTTP Basic client_id",
            ));
        }
        return Ok(PresentedClient::Basic {
            id,
            secret: SecretString::from(secret),
        });
    }
    match (params.get("client_id"), params.get("client_secret")) {
        (Some(id), Some(secret)) => Ok(PresentedClient::Post {
            id: id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        }),
        (Some(id), None) => Ok(PresentedClient::None { id: id.to_owned() }),
        (None, _) => Err(OAuthError::invalid_client(
            "client authentication is required (HTTP Basic, client_secret_post, or client_id for public clients)",
        )),
    }
}

impl PresentedClient {
    /// Whether these credentials authenticate `client`: a confidential client's secret (Basic
    /// or post, SHA-256 compared in constant time), or a public client's bare `client_id`.
    #[must_use]
    pub fn authenticates(&self, client: &Client) -> bool {
        if client.id() != self.id() {
            return false;
        }
        match self {
            Self::Basic { secret, .. } | Self::Post { secret, .. } => {
                client.client_type == ClientType::Confidential
                    && client.secret_matches(secret.expose_secret())
            }
            Self::None { .. } => client.client_type == ClientType::Public,
        }
    }
}

impl OAuth {
    /// Authenticates the presented client (see [`PresentedClient::authenticates`]) for a request
    /// from the client address `ip`.
    ///
    /// # Errors
    /// `invalid_client` (401), or 429 after too many failures (see
    /// [`OAuth::client_auth_failed`]).
    pub async fn authenticate_client(
        &self,
        presented: PresentedClient,
        ip: Option<IpAddr>,
    ) -> Result<Client, OAuthError> {
        match self.clients.find_for_authentication(presented.id()).await? {
            Some(client) if presented.authenticates(&client) => Ok(client),
            _ => Err(self.client_auth_failed(&presented, ip).await),
        }
    }

    /// Records a failed client authentication from `ip` and returns the error to send: 401, or
    /// 429 with `Retry-After` once a limit is reached. A correct secret is never refused (a
    /// 256-bit secret cannot be guessed, and locking the real client out would be a denial of
    /// service), so the limits bound what failures cost us — rows, audit events — and tell a
    /// misconfigured or hostile caller to stop:
    ///
    /// * per client address (`failed_client_auth_per_ip`, any `client_id`), checked first: past
    ///   it nothing more is counted or recorded, so invented `client_id`s cannot create rows;
    /// * per registered `client_id` (`failed_client_auth_per_client`). An unknown `client_id` is
    ///   anyone's to invent: it gets no counter and no audit event of its own.
    ///
    /// Failures are recorded (`client_auth.failure`) up to the limit and the lock once
    /// (`client_auth.locked`), so a flood cannot flood the audit log.
    pub(crate) async fn client_auth_failed(
        &self,
        presented: &PresentedClient,
        ip: Option<IpAddr>,
    ) -> OAuthError {
        let error = OAuthError::invalid_client("client authentication failed");
        match self.count_client_auth_failure(presented, ip).await {
            Ok(()) => error,
            Err(LimitError::Limited(retry) | LimitError::Reached(retry)) => {
                error.rate_limited(retry.0)
            }
            Err(LimitError::Db(e)) => e.into(),
        }
    }

    async fn count_client_auth_failure(
        &self,
        presented: &PresentedClient,
        ip: Option<IpAddr>,
    ) -> Result<(), LimitError> {
        let limits = self.cfg.rate_limits;
        let ip_rule = ip.map(|ip| {
            Rule::max(
                limits::bucket("client_auth:ip", &limits::ip_prefix(ip)),
                limits.failed_client_auth_per_ip,
                limits.window,
            )
        });
        self.limiter
            .check(ip_rule.iter().cloned().collect())
            .await?;
        let client = self.clients.find(presented.id()).await?;
        let client_rule = client.as_ref().map(|c| {
            Rule::max(
                limits::bucket("client_auth", c.id()),
                limits.failed_client_auth_per_client,
                limits.window,
            )
        });
        self.limiter
            .check(client_rule.iter().cloned().collect())
            .await?;
        let client_reached = {
            let rules: Vec<Rule> = client_rule.into_iter().chain(ip_rule).collect();
            // The client's rule comes first when there is one.
            let reached = self.limiter.count(rules).await?;
            client.is_some() && reached.first().copied().unwrap_or(false)
        };
        if let Some(client) = client {
            self.audit
                .record(AuditEvent::new("client_auth.failure").client(client.id()))
                .await?;
            if client_reached {
                self.audit
                    .record(AuditEvent::new("client_auth.locked").client(client.id()))
                    .await?;
            }
        }
        Ok(())
    }
}

impl OAuth {
    /// The common start of introspection and revocation: authenticate the client (a request
    /// from `ip`), then take the `token` parameter. Returns the client and the token's SHA-256.
    ///
    /// # Errors
    /// `invalid_client` (401), `invalid_request` without a token.
    pub(crate) async fn authenticated_token_request(
        &self,
        authorization: Option<&str>,
        params: &Params,
        ip: Option<IpAddr>,
    ) -> Result<(Client, String), OAuthError> {
        let client = self
            .authenticate_client(presented_client(authorization, params)?, ip)
            .await?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        Ok((client, secret::sha256_hex(token)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Params {
        Params::from_form(Some("application/x-www-form-urlencoded"), body.as_bytes())
            .expect("valid")
    }

    #[test]
    fn basic_is_form_urldecoded() {
        // id "a b", secret "p:w%" → urlencoded "a+b" : "p%3Aw%25"
        let header = format!("Basic {}", STANDARD.encode("a+b:p%3Aw%25"));
        match presented_client(Some(&header), &form("")).expect("valid") {
            PresentedClient::Basic { id, secret } => {
                assert_eq!(id, "a b");
                assert_eq!(secret.expose_secret(), "p:w%");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn refuses_mixed_or_missing_credentials() {
        let header = format!("Basic {}", STANDARD.encode("id:secret"));
        assert!(presented_client(Some(&header), &form("client_secret=x")).is_err());
        assert!(presented_client(Some(&header), &form("client_id=other")).is_err());
        assert!(presented_client(Some(&header), &form("client_id=id")).is_ok());
        assert!(presented_client(Some("Bearer abc"), &form("")).is_err());
        assert!(presented_client(Some("Basic !!!"), &form("")).is_err());
        assert!(presented_client(None, &form("")).is_err());
        assert!(matches!(
            presented_client(None, &form("client_id=x")),
            Ok(PresentedClient::None { .. })
        ));
    }
}
