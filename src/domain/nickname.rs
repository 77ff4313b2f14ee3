//! The nickname strategy of the Discord connector's `enforce_discord_nicknames` (pure): a template over the user's
//! fields — `{username}`, `{first_name}`, `{last_name}`, `{discord_username}`,
//! `{discord_global_name}` — checked once when the settings are read ([`NicknameTemplate::parse`])
//! and rendered per member ([`NicknameTemplate::render`]) into what Discord accepts as a
//! nickname: 1 to 32 characters (Discord's "Modify Guild Member": `nick`), no control
//! characters, bidirectional controls or zero-width characters ([`is_hidden`]), spaces
//! collapsed. Members' own Discord names (`{discord_username}`, `{discord_global_name}`) and
//! users' profile names feed it: what cannot be seen is dropped so that no nickname reads as
//! another's.

/// Discord's longest nickname, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// Whether `c` is a character that changes how a name reads without being seen: a control
/// character, a bidirectional control (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069)
/// or a zero-width or invisible one (U+200B–U+200D, U+2060–U+2064, U+FEFF).
#[must_use]
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// The fields a template may name.
pub const FIELDS: [&str; 5] = [
    "username",
    "first_name",
    "last_name",
    "discord_username",
    "discord_global_name",
];

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(usize),
}

/// A checked nickname template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicknameTemplate {
    source: String,
    pieces: Vec<Piece>,
}

/// The values a template is rendered with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicknameFields {
    /// The Latchkey username.
    pub username: String,
    /// The given name.
    pub first_name: String,
    /// The family name.
    pub last_name: String,
    /// The Discord username.
    pub discord_username: String,
    /// The Discord display name ("" when unset).
    pub discord_global_name: String,
}

impl NicknameFields {
    fn get(&self, field: usize) -> &str {
        match field {
            0 => &self.username,
            1 => &self.first_name,
            2 => &self.last_name,
            3 => &self.discord_username,
            _ => &self.discord_global_name,
        }
    }
}

impl NicknameTemplate {
    /// Checks `source`: text with `{field}` placeholders from [`FIELDS`] (`{{` and `}}` for
    /// braces), at least one placeholder.
    ///
    /// # Errors
    /// A message for the settings: an unknown field, an unclosed or stray brace, or no field.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!("{{{name} is not closed with }}"));
                    }
                    let Some(field) = FIELDS.iter().position(|f| *f == name) else {
                        return Err(format!(
                            "{{{name}}} is not one of {}",
                            FIELDS.map(|f| format!("{{{f}}}")).join(", ")
                        ));
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(field));
                }
                '}' => return Err("a } without its { (write }} for a brace)".to_owned()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Field(_))) {
            return Err(format!(
                "name at least one of {}",
                FIELDS.map(|f| format!("{{{f}}}")).join(", ")
            ));
        }
        Ok(Self {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The nickname for `fields`: hidden characters ([`is_hidden`]: control, bidirectional
    /// and zero-width characters) dropped, runs of spaces made one, trimmed, cut to
    /// [`MAX_NICK_CHARS`]; `None` when nothing is left (the member keeps their nickname).
    #[must_use]
    pub fn render(&self, fields: &NicknameFields) -> Option<String> {
        let mut raw = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => raw.push_str(t),
                Piece::Field(f) => raw.push_str(fields.get(*f)),
            }
        }
        let cleaned: String = raw.chars().filter(|c| !is_hidden(*c)).collect();
        let nick: String = cleaned
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(MAX_NICK_CHARS)
            .collect();
        let nick = nick.trim_end().to_owned();
        (!nick.is_empty()).then_some(nick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> NicknameFields {
        NicknameFields {
            username: "ann".into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            discord_username: "annie".into(),
            discord_global_name: String::new(),
        }
    }

    #[test]
    fn templates_name_known_fields_and_render_within_discords_limits() {
        let t = NicknameTemplate::parse("{first_name} {last_name}").expect("valid");
        assert_eq!(t.render(&ann()).as_deref(), Some("Ann Lee"));
        let t = NicknameTemplate::parse("[{{{username}}}] {discord_global_name}").expect("valid");
        assert_eq!(
            t.render(&ann()).as_deref(),
            Some("[{ann}]"),
            "braces and an empty field"
        );
        let long = NicknameFields {
            first_name: "A".repeat(40),
            ..ann()
        };
        let t = NicknameTemplate::parse("{first_name}").expect("valid");
        assert_eq!(t.render(&long).map(|n| n.chars().count()), Some(32));
        let hostile = NicknameFields {
            first_name: "Ann\u{202e}\n  x".into(),
            ..ann()
        };
        assert_eq!(t.render(&hostile).as_deref(), Some("Ann x"));
        let empty = NicknameFields::default();
        assert_eq!(t.render(&empty), None, "nothing to set");
        let invisible = NicknameFields {
            first_name:
                "A\u{200b}n\u{200c}n\u{200d}\u{200e}\u{200f}\u{2060}\u{feff}\u{061c}\u{2066}".into(),
            ..ann()
        };
        assert_eq!(t.render(&invisible).as_deref(), Some("Ann"));
        let only_invisible = NicknameFields {
            first_name: "\u{200b}\u{feff}".into(),
            ..ann()
        };
        assert_eq!(t.render(&only_invisible), None);
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(NicknameTemplate::parse("{nick}")
            .expect_err("unknown")
            .contains("{username}"));
        assert!(NicknameTemplate::parse("{first_name").is_err());
        assert!(NicknameTemplate::parse("a } b {username}").is_err());
        assert!(NicknameTemplate::parse("just text")
            .expect_err("no field")
            .contains("at least one"));
    }
}
