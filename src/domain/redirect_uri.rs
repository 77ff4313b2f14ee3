use std::fmt;

use url::Url;

/// A registered redirect URI (RFC 6749 §3.1.2), kept as the exact string the client registered
/// because redirect URIs are compared by exact string match (RFC 9700 §4.1.3).
///
/// Accepted: `https` URIs; `http` only on loopback hosts (`127.0.0.1`, `[::1]`, `localhost`) for
/// native apps (RFC 8252 §7.3); private-use schemes in reverse-domain form such as
/// `com.example.app:/callback` (RFC 8252 §7.1). Never a fragment (RFC 6749 §3.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a redirect URI.
    ///
    /// # Errors
    /// A sentence saying what is wrong (not absolute, has a fragment, plain http on a
    /// non-loopback host, a dangerous scheme, contains whitespace).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{raw:?} must be a non-empty URI without spaces"));
        }
        if raw.len() > 2000 {
            return Err("redirect URIs are limited to 2000 characters".to_owned());
        }
        let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not an absolute URI ({e})"))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(format!(
                "{raw:?} must not contain a fragment (RFC 6749 §3.1.2)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{raw:?} must not contain credentials"));
        }
        match url.scheme() {
            "https" => {
                if url.host().is_none() {
                    return Err(format!("{raw:?} has no host"));
                }
            }
            "http" => {
                let loopback = match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    None => false,
                };
                if !loopback {
                    return Err(format!(
                        "{raw:?} uses plain http on a non-loopback host: use https (http is only \
                         allowed on 127.0.0.1, [::1] and localhost, RFC 8252 §7.3)"
                    ));
                }
            }
            "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws"
            | "wss" => {
                return Err(format!(
                    "{raw:?} uses a scheme that cannot receive a redirect"
                ));
            }
            scheme => {
                // RFC 8252 §7.1: private-use schemes should be reverse domain names.
                if !scheme.contains('.') {
                    return Err(format!(
                        "{raw:?}: private-use URI schemes must be reverse domain names such as \
                         com.example.app (RFC 8252 §7.1)"
                    ));
                }
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// The URI exactly as registered.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_rfc_8252_forms() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:8000/callback",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_forms() {
        for bad in [
            "http://app.example.com/callback",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "/relative",
            "myapp:/cb",
            "https://user:pw@example.com/",
            "https://example.com/a b",
            "",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }
}
