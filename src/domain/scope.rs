use std::collections::BTreeSet;
use std::fmt;

/// A set of scope tokens (RFC 6749 §3.3), kept sorted so that its string form is stable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string. Empty input gives the empty set.
    ///
    /// # Errors
    /// The first token containing a character RFC 6749 §3.3 forbids (quote, backslash, control
    /// characters, non-ASCII).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            if !token.chars().all(is_scope_char) {
                return Err(format!("invalid scope token '{token}'"));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Parses a string already known to be valid (from the database); invalid tokens are dropped.
    #[must_use]
    pub fn from_stored(raw: &str) -> Self {
        Self(
            raw.split(' ')
                .filter(|t| !t.is_empty() && t.chars().all(is_scope_char))
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether no scope is in the set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `scope` is in the set.
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// Whether every scope of `self` is in `other`.
    #[must_use]
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes in either set.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// The scopes of `self` that are not in `other`.
    #[must_use]
    pub fn difference(&self, other: &Self) -> Self {
        Self(self.0.difference(&other.0).cloned().collect())
    }

    /// The scope tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

impl FromIterator<String> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The `openid` scope: without it a request is plain OAuth 2.0 (OIDC Core §3.1.2.1).
pub const OPENID: &str = "openid";
/// The `offline_access` scope (OIDC Core §11): refresh tokens for the authorization-code grant.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
#[must_use]
pub fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let s = ScopeSet::parse("write  read read").expect("valid");
        assert_eq!(s.to_string(), "read write");
        assert!(ScopeSet::parse("read\"x").is_err());
        assert!(ScopeSet::parse("caf\u{e9}").is_err());
        assert!(ScopeSet::parse("").expect("empty").is_empty());
    }

    #[test]
    fn subset_and_union() {
        let a = ScopeSet::parse("read").expect("valid");
        let b = ScopeSet::parse("read write").expect("valid");
        assert!(a.is_subset(&b));
        assert!(!b.is_subset(&a));
        assert_eq!(b.difference(&a).to_string(), "write");
        assert_eq!(a.union(&b), b);
    }
}
