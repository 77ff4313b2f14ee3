//! The values of the `[branding]` settings — the product name, the logo and the accent colour
//! that pages and emails show — each parsed once, at start-up, so that templates and the
//! Content-Security-Policy never see an unchecked one.

use std::fmt;

use url::Url;

/// Longest product name, in characters.
pub const MAX_BRAND_NAME_CHARS: usize = 64;

/// Longest logo URL, in bytes (a common bound for URLs; browsers take far longer ones, but a
/// logo address has no need for them).
pub const MAX_LOGO_URL_BYTES: usize = 2000;

/// The product name shown in page titles, the page header and emails: trimmed, 1 to
/// [`MAX_BRAND_NAME_CHARS`] characters, all of them printable. Refused: control characters
/// (Unicode category Cc: line breaks, tabs, NUL, escape sequences), the line and paragraph
/// separators (U+2028, U+2029) and the bidirectional controls (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069), which would make the name display other than it reads, in a
/// `<title>` or a mail client. Joiners (U+200C, U+200D) are kept: some scripts need them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrandName(String);

impl BrandName {
    /// Validates `raw`.
    ///
    /// # Errors
    /// A sentence fragment saying what is wrong, e.g. `must have between 1 and 64 characters`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim();
        let chars = value.chars().count();
        if !(1..=MAX_BRAND_NAME_CHARS).contains(&chars) {
            return Err(format!(
                "must have between 1 and {MAX_BRAND_NAME_CHARS} characters (it has {chars})"
            ));
        }
        if let Some(c) = value.chars().find(|c| !is_printable(*c)) {
            return Err(format!(
                "may hold only printable characters, not U+{:04X}",
                u32::from(c)
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BrandName {
    /// `Latchkey`.
    fn default() -> Self {
        Self("Latchkey".to_owned())
    }
}

impl fmt::Display for BrandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may appear in a [`BrandName`].
fn is_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        ))
}

/// Where the logo is: a path on the issuer's own host (`/static/logo.svg`, served by whatever
/// serves that host — a reverse proxy, for a file of the operator's) or an absolute `https://`
/// URL. Nothing else: no `javascript:`, `data:` or plain `http:` URL, no protocol-relative
/// `//host/…`, no credentials (`user:password@`), no spaces or control characters, at most
/// [`MAX_LOGO_URL_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogoUrl {
    /// A path on the issuer's host, starting with one `/`.
    Path(String),
    /// An `https://` URL with a host and no credentials.
    Absolute(Url),
}

impl LogoUrl {
    /// Validates `raw` (trimmed).
    ///
    /// # Errors
    /// A sentence fragment saying what is wrong, e.g. `must be a site-relative path such as
    /// /static/logo.svg or an https:// URL; javascript: URLs are refused`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        const WHAT: &str =
            "must be a site-relative path such as /static/logo.svg or an https:// URL";
        let value = raw.trim();
        if value.len() > MAX_LOGO_URL_BYTES {
            return Err(format!(
                "may be at most {MAX_LOGO_URL_BYTES} bytes long (it has {})",
                value.len()
            ));
        }
        if value.is_empty() {
            return Err(format!("{WHAT}, not empty"));
        }
        if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("may not contain spaces or control characters".to_owned());
        }
        if let Some(rest) = value.strip_prefix('/') {
            // `//host/…` and `/\host/…` (which browsers read as `//`) name another host.
            if rest.starts_with('/') || rest.starts_with('\\') {
                return Err(format!(
                    "{WHAT}: a path starts with a single / (// would name another host)"
                ));
            }
            // The path must stay on the issuer's host once resolved against it.
            let base = Url::parse("https://issuer.invalid/").map_err(|e| e.to_string())?;
            match base.join(value) {
                Ok(url) if url.host_str() == Some("issuer.invalid") => {
                    return Ok(Self::Path(value.to_owned()))
                }
                _ => return Err(format!("{WHAT}: {value:?} is not a usable path")),
            }
        }
        let url = Url::parse(value).map_err(|_| format!("{WHAT}, not {value:?}"))?;
        if url.scheme() != "https" {
            return Err(format!("{WHAT}; {}: URLs are refused", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("may not contain credentials (user:password@)".to_owned());
        }
        if url.host().is_none() {
            return Err(format!("{WHAT}: the URL has no host"));
        }
        Ok(Self::Absolute(url))
    }

    /// The logo's address as pages use it (`<img src>`): the path, or the URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Path(path) => path,
            Self::Absolute(url) => url.as_str(),
        }
    }

    /// The logo's absolute URL, for emails (which have no page to be relative to): a path is
    /// resolved against `issuer` (RFC 3986 §5.2: `/static/logo.svg` under
    /// `https://id.example.com/auth` is `https://id.example.com/static/logo.svg`).
    #[must_use]
    pub fn absolute(&self, issuer: &Url) -> String {
        match self {
            Self::Path(path) => issuer
                .join(path)
                .map_or_else(|_| path.clone(), String::from),
            Self::Absolute(url) => url.as_str().to_owned(),
        }
    }
}

/// The accent colour, `#rrggbb` (six hexadecimal digits, either case; kept in lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccentColor([u8; 3]);

impl AccentColor {
    /// Latchkey's own accent, the stylesheet's default.
    pub const DEFAULT: Self = Self([0x24, 0x50, 0xc9]);

    /// Validates `raw` (trimmed).
    ///
    /// # Errors
    /// `must be a colour written #rrggbb, such as #2450c9`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim();
        let bad = || format!("must be a colour written #rrggbb, such as #2450c9, not {value:?}");
        let hex = value.strip_prefix('#').ok_or_else(bad)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
        Ok(Self([byte(0)?, byte(2)?, byte(4)?]))
    }

    /// `#rrggbb`, lower case.
    #[must_use]
    pub fn hex(&self) -> String {
        let [r, g, b] = self.0;
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// The text colour on a fill of this colour: white or black, whichever contrasts more
    /// (WCAG 2.2 relative luminance and contrast ratio).
    #[must_use]
    pub fn on_accent(&self) -> &'static str {
        if self.contrast_with_white() >= self.contrast_with_black() {
            "#ffffff"
        } else {
            "#000000"
        }
    }

    /// The WCAG 2.2 contrast ratio of this colour with white (1 to 21): links in this colour
    /// on a white page are readable from 4.5 (WCAG 2.2 §1.4.3, level AA).
    #[must_use]
    pub fn contrast_with_white(&self) -> f64 {
        1.05 / (self.relative_luminance() + 0.05)
    }

    /// The WCAG 2.2 contrast ratio of this colour with black (1 to 21).
    fn contrast_with_black(&self) -> f64 {
        (self.relative_luminance() + 0.05) / 0.05
    }

    /// WCAG 2.2 relative luminance (0 for black, 1 for white).
    fn relative_luminance(&self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0;
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_names_are_short_and_printable() {
        assert_eq!(
            BrandName::parse("  Acme ID ").map(|n| n.to_string()),
            Ok("Acme ID".into())
        );
        assert_eq!(BrandName::default().as_str(), "Latchkey");
        assert!(BrandName::parse(&"é".repeat(64)).is_ok());
        assert!(BrandName::parse("\u{645}\u{200c}\u{631}").is_ok());
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\tb",
            "a\u{0}b",
            "Acme\u{202E}moc",
            "a\u{2028}b",
        ] {
            assert!(BrandName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(BrandName::parse(&"é".repeat(65))
            .expect_err("too long")
            .contains("between 1 and 64"));
    }

    #[test]
    fn logo_urls_are_paths_or_https() {
        let issuer = Url::parse("https://id.example.com/auth").expect("url");
        let path = LogoUrl::parse("/static/logo.svg").expect("a path");
        assert_eq!(path.as_str(), "/static/logo.svg");
        assert_eq!(
            path.absolute(&issuer),
            "https://id.example.com/static/logo.svg"
        );
        let cdn = LogoUrl::parse("https://cdn.example.com:8443/a/logo.png?v=2").expect("https");
        assert_eq!(
            cdn.absolute(&issuer),
            "https://cdn.example.com:8443/a/logo.png?v=2"
        );
        let refused = |raw: &str| LogoUrl::parse(raw).expect_err(raw);
        assert!(refused("javascript:alert(1)").contains("javascript: URLs are refused"));
        assert!(refused("JavaScript:alert(1)").contains("javascript: URLs are refused"));
        assert!(refused("data:image/svg+xml,<svg/>").contains("data: URLs are refused"));
        assert!(refused("http://cdn.example.com/logo.png").contains("http: URLs are refused"));
        assert!(refused("https://user:pw@cdn.example.com/logo.png").contains("credentials"));
        assert!(refused("https://user@cdn.example.com/logo.png").contains("credentials"));
        assert!(refused("//evil.example/logo.png").contains("single /"));
        assert!(refused("/\\evil.example/logo.png").contains("single /"));
        assert!(refused("logo.png").contains("site-relative path"));
        assert!(refused("/a b.png").contains("spaces"));
        assert!(refused(&format!("https://cdn.example.com/{}", "a".repeat(2000))).contains("2000"));
        assert!(LogoUrl::parse(&format!("/{}", "a".repeat(1999))).is_ok());
    }

    #[test]
    fn accent_colours_are_rrggbb() {
        assert_eq!(
            AccentColor::parse("#0A7F3B").map(|c| c.hex()),
            Ok("#0a7f3b".into())
        );
        assert_eq!(AccentColor::DEFAULT.hex(), "#2450c9");
        for bad in [
            "0a7f3b", "#0a7f3", "#0a7f3bb", "#0a7g3b", "red", "#fff", "", "#+a7f3b",
        ] {
            assert!(AccentColor::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(AccentColor::DEFAULT.on_accent(), "#ffffff");
        assert_eq!(
            AccentColor::parse("#ffd400").expect("yellow").on_accent(),
            "#000000"
        );
        assert_eq!(
            AccentColor::parse("#000000").expect("black").on_accent(),
            "#ffffff"
        );
        assert_eq!(
            AccentColor::parse("#ffffff").expect("white").on_accent(),
            "#000000"
        );
        let white = AccentColor::parse("#ffffff").expect("white");
        assert!((white.contrast_with_white() - 1.0).abs() < 1e-9);
        let black = AccentColor::parse("#000000").expect("black");
        assert!((black.contrast_with_white() - 21.0).abs() < 1e-9);
        assert!(AccentColor::DEFAULT.contrast_with_white() > 4.5);
    }
}
