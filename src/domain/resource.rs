use std::collections::BTreeSet;
use std::fmt;

use url::Url;

/// Longest resource URI accepted, in bytes.
pub const MAX_RESOURCE_BYTES: usize = 2000;

/// Most resources in one request or on one client.
pub const MAX_RESOURCES: usize = 10;

/// A set of RFC 8707 resource indicators: absolute URIs naming the protected resources (APIs) an
/// access token is meant for. Kept as the exact strings given, sorted, because resources are
/// compared by exact string match (RFC 8707 §2 leaves the comparison to the server; exact is
/// the only rule a resource server can predict).
///
/// A valid resource URI (RFC 8707 §2): absolute, no fragment; here also visible ASCII only (no
/// spaces, so a set stores as space-separated text), no credentials, at most
/// [`MAX_RESOURCE_BYTES`] bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceSet(BTreeSet<String>);

impl ResourceSet {
    /// Parses the values of `resource` parameters (or registered resource URIs).
    ///
    /// # Errors
    /// A sentence (without the offending value, which may hold anything) when a value is not an
    /// absolute URI, has a fragment, credentials, spaces or non-ASCII, is too long, or when there
    /// are more than [`MAX_RESOURCES`].
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for raw in values {
            check(raw)?;
            set.insert(raw.to_owned());
        }
        if set.len() > MAX_RESOURCES {
            return Err(format!(
                "at most {MAX_RESOURCES} resources may be named at once"
            ));
        }
        Ok(Self(set))
    }

    /// A set stored by this program (space-separated); invalid items are dropped.
    #[must_use]
    pub fn from_stored(raw: &str) -> Self {
        Self(
            raw.split(' ')
                .filter(|r| !r.is_empty() && check(r).is_ok())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `resource` is in the set.
    #[must_use]
    pub fn contains(&self, resource: &str) -> bool {
        self.0.contains(resource)
    }

    /// Whether every resource of `self` is in `other`.
    #[must_use]
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Every resource of either set.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// Whether the two sets share a resource.
    #[must_use]
    pub fn intersects(&self, other: &Self) -> bool {
        self.0.intersection(&other.0).next().is_some()
    }

    /// The resources in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many resources there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<String> for ResourceSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for ResourceSet {
    /// Space-separated, in order (the stored form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(r)?;
        }
        Ok(())
    }
}

fn check(raw: &str) -> Result<(), String> {
    const RULE: &str = "a resource must be an absolute URI without a fragment (RFC 8707 section 2)";
    if raw.is_empty() || raw.len() > MAX_RESOURCE_BYTES {
        return Err(format!(
            "{RULE}, of at most {MAX_RESOURCE_BYTES} characters"
        ));
    }
    // RFC 3986 URIs are ASCII; no space keeps the stored, space-separated form unambiguous.
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{RULE}, without spaces or non-ASCII characters"));
    }
    let url = Url::parse(raw).map_err(|_| RULE.to_owned())?;
    if raw.contains('#') || url.fragment().is_some() {
        return Err(RULE.to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{RULE}, without credentials"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_absolute_uris_and_keeps_them_exact() {
        let set = ResourceSet::parse([
            "https://api.example.com",
            "https://api.example.com/",
            "urn:example:billing",
            "https://api.example.com/v1?tenant=a",
        ])
        .expect("valid");
        assert_eq!(
            set.len(),
            4,
            "no normalisation: with and without a slash differ"
        );
        assert_eq!(ResourceSet::from_stored(&set.to_string()), set);
        assert!(set.contains("urn:example:billing"));
    }

    #[test]
    fn refuses_what_rfc_8707_forbids() {
        for bad in [
            "",
            "api.example.com",
            "/relative",
            "https://api.example.com/#frag",
            "https://api.example.com/#",
            "https://api.example.com/a b",
            "https://user:pw@api.example.com/",
            "https://ápi.example.com/",
            "https://api.example.com/\t",
        ] {
            assert!(ResourceSet::parse([bad]).is_err(), "{bad:?}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_RESOURCE_BYTES));
        assert!(ResourceSet::parse([long.as_str()]).is_err());
        let many: Vec<String> = (0..=MAX_RESOURCES)
            .map(|i| format!("https://a.example/{i}"))
            .collect();
        assert!(ResourceSet::parse(many.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn set_operations() {
        let ab = ResourceSet::parse(["https://a.example", "https://b.example"]).expect("valid");
        let a = ResourceSet::parse(["https://a.example"]).expect("valid");
        let c = ResourceSet::parse(["https://c.example"]).expect("valid");
        assert!(a.is_subset(&ab) && !ab.is_subset(&a));
        assert!(a.intersects(&ab) && !c.intersects(&ab));
        assert!(ResourceSet::default().is_subset(&a));
        assert_eq!(ab.to_string(), "https://a.example https://b.example");
        assert_eq!(
            a.union(&c).to_string(),
            "https://a.example https://c.example"
        );
        assert_eq!(a.union(&ab), ab);
    }
}
