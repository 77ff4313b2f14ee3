use std::fmt;

/// A username: 1–150 characters of letters, digits and `@ . + - _` (Django's rule, so that
/// accounts move over from django-oauth-toolkit unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Validates a username.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim();
        if value.is_empty() || value.chars().count() > 150 {
            return Err("a username must have 1 to 150 characters".to_owned());
        }
        if !value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_'))
        {
            return Err("a username may contain only letters, digits and @ . + - _".to_owned());
        }
        Ok(Self(value.to_owned()))
    }

    /// The username.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_usernames() {
        assert!(Username::parse("ada.lovelace+1@x").is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("<script>").is_err());
    }
}
