use std::fmt;

/// An email address, trimmed and lower-cased so that uniqueness is case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses `local@domain` (at most 254 characters, no whitespace, a dot-free domain only for
    /// `localhost`).
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() || value.len() > 254 {
            return Err("an email address must have 1 to 254 characters".to_owned());
        }
        if value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(format!("{raw:?} is not an email address"));
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err(format!("{raw:?} is not an email address (no @)"));
        };
        if local.is_empty()
            || domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || (!domain.contains('.') && domain != "localhost")
        {
            return Err(format!("{raw:?} is not an email address"));
        }
        Ok(Self(value))
    }

    /// The normalised address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_emails() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").expect("valid").as_str(),
            "ada@example.com"
        );
        assert!(Email::parse("nobody").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a b@example.com").is_err());
    }
}
