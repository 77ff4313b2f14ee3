use std::fmt;

/// Longest given or family name, in characters (Django's `first_name`/`last_name` `max_length`).
pub const MAX_NAME_CHARS: usize = 150;

/// A person's given or family name as typed: trimmed, at most [`MAX_NAME_CHARS`] characters,
/// possibly empty (names are optional), and without control characters (Unicode category Cc:
/// C0, DEL, C1 — line breaks, tabs, NUL, escape sequences). A name is shown in pages, emails and
/// ID tokens (OIDC Core §5.1 `given_name`, `family_name`), where a line break or an escape
/// sequence has no business, and PostgreSQL refuses a NUL in text (so it must not reach a
/// query). Format characters such as the zero-width joiner (category Cf) are kept: some
/// scripts need them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PersonName(String);

impl PersonName {
    /// Validates `raw` as the name called `what` in messages (`"first name"`, `"last name"`).
    /// Looks at no more than `MAX_NAME_CHARS + 1` characters for the length.
    ///
    /// # Errors
    /// A sentence fragment for the user that names the field, e.g. `the first name may not
    /// contain control characters such as line breaks, tabs or NUL`.
    pub fn parse(what: &str, raw: &str) -> Result<Self, String> {
        let value = raw.trim();
        if value.chars().nth(MAX_NAME_CHARS).is_some() {
            return Err(format!(
                "the {what} may have at most {MAX_NAME_CHARS} characters"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!(
                "the {what} may not contain control characters such as line breaks, tabs or NUL"
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name, trimmed.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, trimmed.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let ok = |raw: &str| PersonName::parse("first name", raw).map(PersonName::into_string);
        assert_eq!(ok("  Ada ").as_deref(), Ok("Ada"));
        assert_eq!(ok("").as_deref(), Ok(""));
        assert_eq!(ok("Jean-Luc O'Brien").as_deref(), Ok("Jean-Luc O'Brien"));
        // A zero-width non-joiner (Cf) belongs in Persian names.
        assert!(ok("\u{645}\u{200c}\u{631}").is_ok());
        assert_eq!(
            ok(&"é".repeat(MAX_NAME_CHARS)).map(|n| n.chars().count()),
            Ok(150)
        );
        assert_eq!(
            ok(&"é".repeat(MAX_NAME_CHARS + 1)),
            Err("the first name may have at most 150 characters".to_owned())
        );
        for bad in [
            "a\u{0}b",
            "a\nb",
            "a\tb",
            "a\u{1b}[31mb",
            "a\u{7f}",
            "a\u{85}b",
        ] {
            assert_eq!(
                ok(bad),
                Err("the first name may not contain control characters such as line breaks, tabs or NUL".to_owned()),
                "{bad:?}"
            );
        }
        // Whitespace around the name is trimmed, not refused.
        assert_eq!(ok("\tAda\n").as_deref(), Ok("Ada"));
        assert_eq!(
            PersonName::parse("last name", "x\u{0}").map(PersonName::into_string),
            Err(
                "the last name may not contain control characters such as line breaks, tabs or NUL"
                    .to_owned()
            )
        );
    }
}
