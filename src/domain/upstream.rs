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
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
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

/// Whether `url`'s host is this machine, as [`endpoint_url`] allows plain http to it:
/// `localhost`, or a loopback IP literal (127.0.0.0/8, `::1`).
#[must_use]
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `ip` is an address a remote party must not make this server call (server-side
/// request forgery): loopback, unspecified or "this network" (0.0.0.0/8), private (RFC 1918;
/// RFC 4193's fc00::/7), shared (RFC 6598's 100.64.0.0/10), link-local (169.254.0.0/16, where
/// cloud metadata services answer; fe80::/10), benchmarking (RFC 2544's 198.18.0.0/15),
/// reserved (240.0.0.0/4) or broadcast, multicast; and the IPv6 forms that carry an IPv4
/// address — IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (::/96) judged as that
/// address, NAT64 (RFC 6052's 64:ff9b::/96) and 6to4 (2002::/16) refused outright.
#[must_use]
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    fn internal_v4(ip: std::net::Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_broadcast()
            || ip.is_multicast()
            || a == 0
            || a >= 240
            || (a == 100 && (b & 0xc0) == 64)
            || (a == 198 && (b & 0xfe) == 18)
    }
    match ip {
        std::net::IpAddr::V4(ip) => internal_v4(ip),
        std::net::IpAddr::V6(ip) => {
            let segments = ip.segments();
            if let Some(v4) = ip.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            // ::/96 (IPv4-compatible, deprecated; also :: and ::1).
            if segments[..6].iter().all(|s| *s == 0) {
                return true;
            }
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
                || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || segments[0] == 0x2002
        }
    }
}

/// Whether `host` is one a remote party must not make this server call (server-side request
/// forgery): a name of this machine — `localhost` and the names under it (RFC 6761 §6.3), with
/// or without the final dot — or an IP literal [`is_internal_ip`] refuses. Other names are not
/// resolved here: the HTTP client for discovered endpoints resolves them to public addresses
/// only (`crate::upstream::dns::PublicOnly`).
#[must_use]
pub fn is_internal_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => is_internal_ip(std::net::IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => is_internal_ip(std::net::IpAddr::V6(*ip)),
    }
}

/// Whether this server must call `url`, an endpoint `issuer`'s discovery document named, with
/// the HTTP client that connects to public addresses only: when the issuer is itself public
/// (not on loopback, not an internal IP literal) and `url` is on another host. The issuer's own
/// host and an issuer the operator put on this machine or a private network are called as
/// configured.
#[must_use]
pub fn needs_public_resolution(issuer: &str, url: &Url) -> bool {
    let Ok(issuer) = Url::parse(issuer) else {
        return true;
    };
    if is_loopback(&issuer) || issuer.host().is_some_and(|h| is_internal_host(&h)) {
        return false;
    }
    url.host() != issuer.host()
}

/// An endpoint that `issuer`'s discovery document names and that this server calls itself
/// (token endpoint, UserInfo, JWKS): [`endpoint_url`]'s rule and, unless the issuer is on
/// loopback itself (a provider on this machine, in development and tests), no internal host
/// ([`is_internal_host`]) other than the issuer's own. A remote issuer's document must not
/// point this server — with the client secret, a code, a user's bearer token — at this
/// machine or the private network behind it; an issuer the operator configured on a private
/// address may still name itself.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn discovered_endpoint(issuer: &str, raw: &str) -> Result<Url, String> {
    let url = endpoint_url(raw)?;
    let issuer =
        Url::parse(issuer).map_err(|e| format!("has an issuer that is not a URL ({e})"))?;
    if is_loopback(&issuer) {
        return Ok(url);
    }
    match url.host() {
        Some(host) if is_internal_host(&host) && url.host() != issuer.host() => Err(format!(
            "points at an address on this machine or its private network: {raw:?}"
        )),
        _ => Ok(url),
    }
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
    fn internal_hosts_are_this_machine_and_private_networks() {
        let internal = |raw: &str| {
            let url = Url::parse(raw).expect(raw);
            is_internal_host(&url.host().expect(raw))
        };
        for yes in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://127.0.0.1/",
            "https://127.9.9.9/",
            "https://2130706433/",
            "https://0.0.0.0/",
            "https://0.1.2.3/",
            "https://10.0.0.1/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://169.254.169.254/",
            "https://100.64.0.1/",
            "https://100.127.255.255/",
            "https://255.255.255.255/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.1.2.3]/",
            "https://198.18.0.1/",
            "https://198.19.255.255/",
            "https://240.0.0.1/",
            "https://224.0.0.1/",
            "https://[64:ff9b::a00:1]/",
            "https://[::a00:1]/",
            "https://[2002:a00:1::1]/",
            "https://[ff02::1]/",
        ] {
            assert!(internal(yes), "{yes}");
        }
        for no in [
            "https://accounts.google.com/",
            "https://localhost.example.com/",
            "https://8.8.8.8/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://192.169.0.1/",
            "https://[2001:db8::1]/",
            "https://[::ffff:8.8.8.8]/",
        ] {
            assert!(!internal(no), "{no}");
        }
    }

    #[test]
    fn only_a_public_issuers_other_hosts_are_resolved_to_public_addresses() {
        let url = |raw: &str| Url::parse(raw).expect(raw);
        let remote = "https://idp.example.com/realm";
        assert!(needs_public_resolution(
            remote,
            &url("https://keys.example.net/jwks")
        ));
        assert!(!needs_public_resolution(
            remote,
            &url("https://idp.example.com/jwks")
        ));
        for own in [
            "http://127.0.0.1:8080",
            "https://10.0.0.5",
            "http://localhost:1",
        ] {
            assert!(!needs_public_resolution(
                own,
                &url("https://keys.example.net/jwks")
            ));
        }
    }

    #[test]
    fn a_remote_issuer_names_no_internal_endpoint_but_its_own_host() {
        let remote = "https://idp.example.com";
        assert!(discovered_endpoint(remote, "https://idp.example.com/jwks").is_ok());
        assert!(discovered_endpoint(remote, "https://www.googleapis.com/oauth2/v3/certs").is_ok());
        for bad in [
            "http://127.0.0.1:8080/userinfo",
            "https://127.0.0.1/userinfo",
            "http://localhost:9000/token",
            "https://10.0.0.5/token",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/jwks",
            "https://[fd00::1]/jwks",
            "https://internal.localhost/jwks",
        ] {
            assert!(discovered_endpoint(remote, bad).is_err(), "{bad}");
        }
        // An issuer on loopback (development, tests) may name anything endpoint_url allows.
        for issuer in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:1",
        ] {
            assert!(discovered_endpoint(issuer, "http://127.0.0.1:9000/jwks").is_ok());
            assert!(discovered_endpoint(issuer, "https://10.0.0.5/jwks").is_ok());
        }
        // An issuer the operator put on a private address names its own host, nothing else.
        let private = "https://10.0.0.5:8443/realms/x";
        assert!(discovered_endpoint(private, "https://10.0.0.5:8443/token").is_ok());
        assert!(discovered_endpoint(private, "https://10.0.0.6/token").is_err());
        assert!(discovered_endpoint(private, "https://127.0.0.1/token").is_err());
        // endpoint_url's rule still holds.
        assert!(discovered_endpoint(remote, "http://idp.example.com/jwks").is_err());
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
