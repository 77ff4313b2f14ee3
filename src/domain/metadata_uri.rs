use std::fmt;

use url::{Host, Url};

/// The most bytes a metadata URL may have, as typed and as stored.
pub const MAX_METADATA_URI_BYTES: usize = 2000;

/// A web address an application gives about itself, for people to see or follow: its logo,
/// home page, privacy policy or terms of service (OpenID Connect Dynamic Client Registration
/// 1.0 §2: `logo_uri`, `client_uri`, `policy_uri`, `tos_uri`).
///
/// The consent page shows the logo as an image and the others as links, so the rules are
/// those of a link a browser follows: an absolute `https` URL (DCR 1.0 §2 lets a server
/// refuse what it will not show; plain `http` only on a loopback host — `localhost`,
/// `127.0.0.0/8`, `[::1]` — for local development), no user name or password in it (a way to
/// make `https://bank.example@evil.example/` look like another host), no fragment, at most
/// [`MAX_METADATA_URI_BYTES`] bytes, and no control characters. Kept in the `url` crate's
/// serialization (an internationalized host in its ASCII `xn--` form), so what is stored is
/// what a browser loads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetadataUri(Url);

impl MetadataUri {
    /// Validates a metadata URL (surrounding whitespace is trimmed first).
    ///
    /// # Errors
    /// A sentence for the person who typed it: too long, a control character, not an absolute
    /// URL, a scheme other than `https` (or `http` on a loopback host), credentials, a
    /// fragment.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() > MAX_METADATA_URI_BYTES {
            return Err(format!(
                "must be at most {MAX_METADATA_URI_BYTES} bytes long (this one has {})",
                raw.len()
            ));
        }
        // The URL parser would silently drop tabs and line breaks; refuse them instead.
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("may not contain spaces, line breaks or other control characters".into());
        }
        let url = Url::parse(raw).map_err(|e| {
            format!("{raw:?} is not an absolute URL like https://app.example.com/ ({e})")
        })?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(url.host()) => {}
            "http" => {
                return Err(format!(
                    "{raw:?} uses plain http: use https (http only on localhost, 127.0.0.1 or [::1], for local development)"
                ))
            }
            scheme => {
                return Err(format!(
                    "{raw:?} is a {scheme}: address: use an https:// URL"
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{raw:?} has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{raw:?} contains a user name or password: leave them out"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!("{raw:?} contains a fragment (#…): leave it out"));
        }
        if url.as_str().len() > MAX_METADATA_URI_BYTES {
            return Err(format!(
                "must be at most {MAX_METADATA_URI_BYTES} bytes long once encoded"
            ));
        }
        Ok(Self(url))
    }

    /// The URL as stored and linked to.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host, for people to see where a link goes: a domain (in its ASCII form, so that
    /// look-alike letters show as `xn--…`), an IPv4 address or a bracketed IPv6 address.
    #[must_use]
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }
}

impl fmt::Display for MetadataUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `host` is the machine itself: `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        for (raw, stored, host) in [
            (
                "https://app.example.com",
                "https://app.example.com/",
                "app.example.com",
            ),
            (
                " https://app.example.com/privacy?lang=en ",
                "https://app.example.com/privacy?lang=en",
                "app.example.com",
            ),
            (
                "https://bücher.example/logo.png",
                "https://xn--bcher-kva.example/logo.png",
                "xn--bcher-kva.example",
            ),
            (
                "http://localhost:8080/logo.png",
                "http://localhost:8080/logo.png",
                "localhost",
            ),
            ("http://127.0.0.1/tos", "http://127.0.0.1/tos", "127.0.0.1"),
            ("http://[::1]/", "http://[::1]/", "[::1]"),
        ] {
            let uri = MetadataUri::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(uri.as_str(), stored);
            assert_eq!(uri.host(), host);
        }
    }

    #[test]
    fn refuses_what_a_link_should_not_be() {
        let long = format!(
            "https://app.example.com/{}",
            "a".repeat(MAX_METADATA_URI_BYTES)
        );
        for (raw, words) in [
            ("javascript:alert(1)", "use an https://"),
            ("data:image/png;base64,AAAA", "use an https://"),
            ("ftp://files.example.com/logo.png", "use an https://"),
            ("http://app.example.com/", "plain http"),
            ("http://127.0.0.1.evil.example/", "plain http"),
            ("https://user:pw@app.example.com/", "user name or password"),
            (
                "https://bank.example@evil.example/",
                "user name or password",
            ),
            ("https://app.example.com/#top", "fragment"),
            ("https://app.example.com/#", "fragment"),
            ("/relative/logo.png", "absolute URL"),
            ("app.example.com", "absolute URL"),
            ("https://app.example.com/\u{0}", "control characters"),
            ("https://app.example.com/a\tb", "control characters"),
            ("https://app.example.com/a\nb", "control characters"),
            ("https://app.example.com/a b", "spaces"),
            (long.as_str(), "at most 2000 bytes"),
        ] {
            let e = MetadataUri::parse(raw).expect_err(raw);
            assert!(e.contains(words), "{raw}: {e}");
        }
    }

    #[test]
    fn encoding_cannot_grow_past_the_limit() {
        // 1990 bytes typed, more than 2000 once the spaces-free non-ASCII path is encoded.
        let raw = format!("https://a.example/{}", "é".repeat(986));
        assert!(raw.len() <= MAX_METADATA_URI_BYTES);
        let e = MetadataUri::parse(&raw).expect_err("too long once encoded");
        assert!(e.contains("once encoded"), "{e}");
    }
}
