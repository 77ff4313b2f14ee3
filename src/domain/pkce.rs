//! PKCE values (RFC 7636): `code_verifier` (§4.1) and `code_challenge` (§4.2) share one grammar,
//! `43*128unreserved` with `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`. The S256
//! comparison itself is oxide-auth's (`code_grant::extensions::Pkce`).

/// Shortest PKCE value, in characters (= bytes: the grammar is ASCII).
pub const MIN_LEN: usize = 43;

/// Longest PKCE value, in characters.
pub const MAX_LEN: usize = 128;

/// Whether `value` is a well-formed `code_verifier` or `code_challenge` (RFC 7636 §4.1,
/// §4.2): 43 to 128 unreserved characters.
#[must_use]
pub fn is_valid(value: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}
