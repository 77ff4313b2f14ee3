//! Upstream tokens kept for later calls on the user's behalf (issue 11; the Discord connector of
//! issue 12 adds members to guilds with `guilds.join`): the access and refresh tokens of the
//! latest sign-in, kept only for providers with `keep_tokens`, sealed with the server's
//! [`Sealer`] (AES-256-GCM under a key derived from `secrets.secret_key` for this purpose alone),
//! each bound to its link and to its kind, so that a sealed value opens neither on another link
//! nor as the other token. Never logged: [`UpstreamTokens`] prints no token.

use chrono::NaiveDateTime;
use secrecy::{ExposeSecret, SecretString};

use crate::secret::{SealError, Sealer};

/// The HKDF `info` of the upstream tokens' sealing key (changing it makes every kept token
/// unreadable).
const UPSTREAM_TOKENS_PURPOSE: &str = "upstream-tokens/v1";

/// The tokens a provider issued at a sign-in (RFC 6749 §5.1).
#[derive(Clone)]
pub struct UpstreamTokens {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires (UTC), when the provider said (`expires_in`).
    pub expires_at: Option<NaiveDateTime>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens themselves are never printed.
        f.debug_struct("UpstreamTokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpstreamTokens {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &SecretString, b: &SecretString| {
            crate::secret::ct_eq(a.expose_secret().as_bytes(), b.expose_secret().as_bytes())
        };
        same(&self.access_token, &other.access_token)
            && match (&self.refresh_token, &other.refresh_token) {
                (Some(a), Some(b)) => same(a, b),
                (None, None) => true,
                _ => false,
            }
            && self.expires_at == other.expires_at
    }
}

impl Eq for UpstreamTokens {}

/// The tokens of a link as stored: sealed access token, sealed refresh token.
pub type SealedTokens = (String, Option<String>);

/// Seals and opens kept upstream tokens.
pub struct TokenSealer(Sealer);

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSealer(***)")
    }
}

/// The associated data of link `link_id`'s token of `kind` (`access`, `refresh`).
fn aad(link_id: &str, kind: &str) -> Vec<u8> {
    format!("upstream_links/{link_id}/{kind}").into_bytes()
}

impl TokenSealer {
    /// The sealer under `secret` (`secrets.secret_key`).
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library cannot set up the key.
    pub fn new(secret: &[u8]) -> Result<Self, SealError> {
        Sealer::new(secret, UPSTREAM_TOKENS_PURPOSE).map(Self)
    }

    /// `tokens` sealed for link `link_id`.
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library fails.
    pub fn seal(&self, link_id: &str, tokens: &UpstreamTokens) -> Result<SealedTokens, SealError> {
        let access = self.0.seal(
            &aad(link_id, "access"),
            tokens.access_token.expose_secret().as_bytes(),
        )?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|r| {
                self.0
                    .seal(&aad(link_id, "refresh"), r.expose_secret().as_bytes())
            })
            .transpose()?;
        Ok((access, refresh))
    }

    /// The tokens sealed for link `link_id`, with their expiry.
    ///
    /// # Errors
    /// [`SealError::Open`] when a value was sealed under another secret key, for another link
    /// or as the other token, or was altered.
    pub fn open(
        &self,
        link_id: &str,
        (access, refresh): (&str, Option<&str>),
        expires_at: Option<NaiveDateTime>,
    ) -> Result<UpstreamTokens, SealError> {
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes)
                .map(SecretString::from)
                .map_err(|_| SealError::Open)
        };
        Ok(UpstreamTokens {
            access_token: text(self.0.open(&aad(link_id, "access"), access)?)?,
            refresh_token: refresh
                .map(|r| self.0.open(&aad(link_id, "refresh"), r).and_then(text))
                .transpose()?,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_for_their_link_and_kind_and_never_print() {
        let sealer = TokenSealer::new(&[9u8; 64]).expect("sealer");
        let tokens = UpstreamTokens {
            access_token: SecretString::from("the-access-token"),
            refresh_token: Some(SecretString::from("the-refresh-token")),
            expires_at: None,
        };
        let (access, refresh) = sealer.seal("link-1", &tokens).expect("seal");
        let refresh = refresh.expect("sealed refresh token");
        assert!(!access.contains("the-access-token"));
        let opened = sealer
            .open("link-1", (&access, Some(&refresh)), None)
            .expect("opens");
        assert_eq!(opened, tokens);
        assert!(sealer.open("link-2", (&access, None), None).is_err());
        // The refresh token cannot be passed off as the access token.
        assert!(sealer.open("link-1", (&refresh, None), None).is_err());
        let other = TokenSealer::new(&[8u8; 64]).expect("sealer");
        assert!(other.open("link-1", (&access, None), None).is_err());
        let printed = format!("{tokens:?}");
        assert!(!printed.contains("the-access-token") && !printed.contains("the-refresh-token"));
    }
}
