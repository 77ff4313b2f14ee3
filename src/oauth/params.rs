//! Request parameter parsing shared by every OAuth endpoint: strict
//! `application/x-www-form-urlencoded` decoding that refuses invalid UTF-8 and repeated
//! parameters (RFC 6749 §3.1, §3.2) and treats empty values as absent (RFC 6749 §3.1). The one
//! exception is `resource`, which RFC 8707 §2 lets a client repeat to name several resources.

use std::collections::BTreeMap;

use percent_encoding::percent_decode;

use super::error::OAuthError;

/// Longest parameter name accepted, in bytes.
const MAX_NAME: usize = 128;

/// Parameters that may be repeated: `resource` (RFC 8707 §2, one per target resource).
pub const REPEATABLE: [&str; 1] = ["resource"];

/// Most values a repeatable parameter may have in one request.
pub const MAX_REPEATS: usize = 10;

/// Decoded request parameters, never empty; each present at most once except the
/// [`REPEATABLE`] ones (at most [`MAX_REPEATS`] values, in request order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, Vec<String>>);

impl Params {
    /// Parses a POST body, checking the media type first.
    ///
    /// # Errors
    /// `invalid_request` for a missing or different content type, invalid UTF-8, invalid
    /// percent-encoding, or a repeated parameter.
    pub fn from_form(content_type: Option<&str>, body: &[u8]) -> Result<Self, OAuthError> {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        if media.as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded (RFC 6749 section 4.1.3)",
            ));
        }
        Self::parse(body)
    }

    /// Parses a query string (without the `?`).
    ///
    /// # Errors
    /// As [`Params::from_form`], less the media type.
    pub fn from_query(query: &str) -> Result<Self, OAuthError> {
        Self::parse(query.as_bytes())
    }

    fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if name.len() > MAX_NAME {
                return Err(OAuthError::invalid_request("a parameter name is too long"));
            }
            let seen = map.get(&name).map_or(0, Vec::len);
            if seen > 0 && !REPEATABLE.contains(&name.as_str()) {
                // Repeats are refused even when one copy is empty.
                return Err(OAuthError::invalid_request(format!(
                    "the parameter `{name}` is repeated (RFC 6749 section 3.1)"
                )));
            }
            if seen >= MAX_REPEATS {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter `{name}` is repeated more than {MAX_REPEATS} times"
                )));
            }
            map.entry(name).or_default().push(value);
        }
        for values in map.values_mut() {
            values.retain(|v| !v.is_empty());
        }
        map.retain(|_, v| !v.is_empty());
        Ok(Self(map))
    }

    /// The value of `name`, if present and non-empty (the first one of a [`REPEATABLE`]
    /// parameter).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every non-empty value of `name`, in request order (several only for [`REPEATABLE`]
    /// parameters).
    #[must_use]
    pub fn get_all(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The same parameters without `name`.
    #[must_use]
    pub fn without(&self, name: &str) -> Self {
        let mut map = self.0.clone();
        map.remove(name);
        Self(map)
    }

    /// Every parameter, in name order (a repeated one once per value, in request order).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|(k, values)| values.iter().map(move |v| (k.as_str(), v.as_str())))
    }
}

/// Form-urldecodes one component: `+` is a space, `%XX` bytes must form UTF-8 without NUL.
///
/// # Errors
/// `invalid_request` for invalid UTF-8 or a NUL character.
pub fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    let replaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded = percent_decode(&replaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| OAuthError::invalid_request("parameters must be UTF-8"))?;
    // NUL is valid UTF-8 but no parameter has a use for it, and PostgreSQL text refuses it.
    if decoded.contains('\0') {
        return Err(OAuthError::invalid_request(
            "parameters must not contain NUL characters",
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=UTF-8");

    #[test]
    fn parses_forms() {
        let p = Params::from_form(
            FORM,
            b"grant_type=password&username=a+b&password=%C3%A9&scope=",
        )
        .expect("valid");
        assert_eq!(p.get("username"), Some("a b"));
        assert_eq!(p.get("password"), Some("\u{e9}"));
        assert_eq!(p.get("scope"), None);
    }

    #[test]
    fn refuses_bad_forms() {
        assert!(Params::from_form(Some("application/json"), b"a=b").is_err());
        assert!(Params::from_form(None, b"a=b").is_err());
        assert!(Params::from_form(FORM, b"a=b&a=c").is_err());
        assert!(Params::from_form(FORM, b"a=&a=c").is_err());
        assert!(Params::from_form(FORM, b"a=%FF").is_err());
        assert!(Params::from_form(FORM, b"a=\xff").is_err());
        assert!(Params::from_form(FORM, b"a=%00").is_err());
    }

    #[test]
    fn resource_may_repeat_within_a_bound() {
        let p = Params::from_form(
            FORM,
            b"resource=https%3A%2F%2Fb.example&resource=&resource=x",
        )
        .expect("valid");
        assert_eq!(p.get_all("resource"), ["https://b.example", "x"]);
        assert_eq!(p.get("resource"), Some("https://b.example"));
        assert_eq!(p.iter().filter(|(k, _)| *k == "resource").count(), 2);
        assert!(p.get_all("scope").is_empty());
        let many = ["resource=x"; MAX_REPEATS + 1].join("&");
        assert!(Params::from_form(FORM, many.as_bytes()).is_err());
        // Only empty copies: absent.
        let p = Params::from_form(FORM, b"resource=&resource=").expect("valid");
        assert!(!p.contains("resource"));
    }
}
