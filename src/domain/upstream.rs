//! Upstream identity providers (issue 11): the values that name one — its id in URLs and its
//! kind — and the endpoint URLs Latchkey calls as a relying party.

use std::fmt;

use url::Url;

/// Longest provider id, in characters.
pub const MAX_PROVIDER_ID_CHARS: usize = 32;

/// A provider's id as used in URLs (`/accounts/upstream/<id>/login/`) and in the `idp` claim:
/// 1 to 32 lower-case ASCII letters, digits and `-`, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderId(String);

impl ProviderId {
    /// Parses an id.
    ///
    /// # Errors
    /// A sentence saying what is wrong, for the configuration error or the console form.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid_start = raw.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let valid_chars = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if raw.is_empty() || raw.len() > MAX_PROVIDER_ID_CHARS || !valid_start || !valid_chars {
            return Err(format!(
                "must be 1 to {MAX_PROVIDER_ID_CHARS} lower-case letters, digits and '-', starting with a letter (got {raw:?})"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Discord: OAuth 2.0 (RFC 6749) and `GET /users/@me` (API v10); Discord has no OpenID
    /// Connect.
    Discord,
    /// Google: OpenID Connect, with hosted-domain (`hd`) checks.
    Google,
    /// Any OpenID Connect provider, found by discovery (OIDC Discovery 1.0 §4).
    Oidc,
}

impl ProviderKind {
    /// Parses `discord`, `google` or `oidc`.
    ///
    /// # Errors
    /// A sentence naming the accepted kinds.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "discord" => Ok(Self::Discord),
            "google" => Ok(Self::Google),
            "oidc" => Ok(Self::Oidc),
            other => Err(format!(
                "must be \"discord\", \"google\" or \"oidc\" (got {other:?})"
            )),
        }
    }

    /// The kind as configured.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discord => "discord",
            Self::Google => "google",
            Self::Oidc => "oidc",
        }
    }

    /// Whether the provider speaks OpenID Connect (an ID token to verify).
    #[must_use]
    pub fn is_oidc(self) -> bool {
        matches!(self, Self::Google | Self::Oidc)
    }

    /// The scopes asked for when none are configured: Discord's `identify` and `email`
    /// (Discord's OAuth2 documentation), OpenID Connect's `openid`, `email` and `profile`
    /// (OIDC Core §5.4).
    #[must_use]
    pub fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Discord => &["identify", "email"],
            Self::Google | Self::Oidc => &["openid", "email", "profile"],
        }
    }
}

/// An endpoint Latchkey calls as a relying party: `https`, or `http` on a loopback host (a
/// provider on the same machine, for development and tests); no credentials, no fragment.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn endpoint_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("is not a URL ({e}): {raw:?}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "must be an https URL (http only on a loopback host): {raw:?}"
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".to_owned());
    }
    if url.fragment().is_some() {
        return Err(format!("must not have a #fragment: {raw:?}"));
    }
    Ok(url)
}

/// The Discord callback paths of the projects Latchkey replaces, answered like
/// `/accounts/upstream/<id>/callback/` so that Discord applications registered for them need no
/// change: seed 000's `/oauth2/login/redirect/` and seed 003's `/discord/sso/callback`.
pub const DISCORD_LEGACY_CALLBACK_PATHS: [&str; 2] =
    ["/oauth2/login/redirect/", "/discord/sso/callback"];

/// The redirect URI path of a sign-in started at seed 000's `/oauth2/login/` when the provider
/// sets no `callback_path`: seed 000's own callback.
pub const DISCORD_LEGACY_LOGIN_CALLBACK: &str = "/oauth2/login/redirect/";

/// The path of provider `id`'s own callback: `/accounts/upstream/<id>/callback/`.
#[must_use]
pub fn default_callback_path(id: &ProviderId) -> String {
    format!("/accounts/upstream/{id}/callback/")
}

/// Whether `path` is a callback Latchkey answers for Discord provider `id` — its own, or one of
/// [`DISCORD_LEGACY_CALLBACK_PATHS`] — written with or without the trailing slash (both are
/// answered; the provider compares the redirect URI exactly, so the one written is the one
/// sent).
#[must_use]
pub fn is_discord_callback_path(id: &ProviderId, path: &str) -> bool {
    let bare = path.trim_end_matches('/');
    !bare.is_empty()
        && path.len() - bare.len() <= 1
        && (default_callback_path(id).trim_end_matches('/') == bare
            || DISCORD_LEGACY_CALLBACK_PATHS
                .iter()
                .any(|p| p.trim_end_matches('/') == bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_short_url_safe_words() {
        for good in ["google", "corp-sso", "a", "discord2"] {
            assert_eq!(ProviderId::parse(good).expect(good).as_str(), good);
        }
        for bad in [
            "",
            "Google",
            "2fa",
            "-x",
            "a b",
            "a/b",
            "é",
            &"a".repeat(33),
        ] {
            assert!(ProviderId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_and_their_default_scopes() {
        assert_eq!(ProviderKind::parse("discord"), Ok(ProviderKind::Discord));
        assert!(ProviderKind::parse("github").is_err());
        assert!(ProviderKind::Google.is_oidc() && !ProviderKind::Discord.is_oidc());
        assert!(ProviderKind::Oidc.default_scopes().contains(&"openid"));
        assert!(!ProviderKind::Discord.default_scopes().contains(&"openid"));
    }

    #[test]
    fn discord_callbacks_are_its_own_or_the_seeds() {
        let id = ProviderId::parse("discord").expect("id");
        for good in [
            "/accounts/upstream/discord/callback/",
            "/accounts/upstream/discord/callback",
            "/oauth2/login/redirect/",
            "/oauth2/login/redirect",
            "/discord/sso/callback",
            "/discord/sso/callback/",
        ] {
            assert!(is_discord_callback_path(&id, good), "{good}");
        }
        for bad in [
            "",
            "/",
            "/accounts/upstream/other/callback/",
            "/oauth2/login/",
            "/discord/sso/callback//",
            "https://x.example/discord/sso/callback",
        ] {
            assert!(!is_discord_callback_path(&id, bad), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        assert!(endpoint_url("https://accounts.google.com").is_ok());
        assert!(endpoint_url("http://127.0.0.1:9000/token").is_ok());
        assert!(endpoint_url("http://localhost:9000").is_ok());
        assert!(endpoint_url("http://[::1]:9000").is_ok());
        for bad in [
            "http://idp.example.com",
            "ftp://idp.example.com",
            "https://user:pw@idp.example.com",
            "https://idp.example.com/#x",
            "not a url",
        ] {
            assert!(endpoint_url(bad).is_err(), "{bad}");
        }
    }
}
