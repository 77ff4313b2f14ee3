//! The Discord profile (issue 11, seed 000's `DiscordUser`): what Discord's `GET /users/@me`
//! (API v10) says about a user, checked and cleaned ([`DiscordProfile::new`]), stored in
//! `discord_accounts` at every Discord sign-in, and shown as the `discord` claim
//! ([`DiscordProfile::claim`]) to tokens granted the [`DISCORD_SCOPE`].
//!
//! Names and URLs follow Discord's documentation: the tag is the unique username, or
//! `name#1234` for an account that still has a legacy discriminator; avatars are at
//! `https://cdn.discordapp.com/avatars/{id}/{hash}.png` (`.gif` for animated `a_` hashes), and
//! an account without one has a default avatar at
//! `https://cdn.discordapp.com/embed/avatars/{index}.png`, where the index is `(id >> 22) % 6`
//! for unique usernames and `discriminator % 5` for legacy ones.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::clean;
use crate::db::discord_accounts::{self, DiscordAccountRow};
use crate::db::DbConnection;

/// The scope whose tokens see the user's Discord profile (the `discord` claim of ID tokens and
/// UserInfo, the `discord` member of `/api/me`).
pub const DISCORD_SCOPE: &str = "discord";

/// Discord's image CDN.
const CDN: &str = "https://cdn.discordapp.com";

/// The longest Discord name kept, in characters (Discord allows 32).
const MAX_NAME_CHARS: usize = 150;

/// A Discord user's profile, every string checked or cleaned (see [`DiscordProfile::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscordProfile {
    /// The user's snowflake (Discord sends it as a decimal string).
    pub id: i64,
    /// The unique username (or the legacy name).
    pub username: String,
    /// The legacy discriminator (`"1234"`), or `"0"` for a unique username.
    pub discriminator: String,
    /// The display name, when set.
    pub global_name: Option<String>,
    /// The avatar's image hash (`a_…` when animated); `None` for the default avatar.
    pub avatar: Option<String>,
    /// The public flags (badges), a bit field.
    pub public_flags: i64,
    /// The flags, a bit field.
    pub flags: i64,
    /// The chosen language (`en-US`).
    pub locale: Option<String>,
    /// Whether two-factor authentication is on.
    pub mfa_enabled: bool,
    /// The address Discord gave (with its `email` scope), lower-cased and valid.
    pub email: Option<String>,
    /// Whether Discord verified `email`.
    pub verified: bool,
}

/// Discord's user object as `GET /users/@me` sends it, before checking.
#[derive(Clone, Debug, Default)]
pub struct RawDiscordUser {
    /// `id`.
    pub id: String,
    /// `username`.
    pub username: String,
    /// `discriminator`.
    pub discriminator: Option<String>,
    /// `global_name`.
    pub global_name: Option<String>,
    /// `avatar`.
    pub avatar: Option<String>,
    /// `public_flags`.
    pub public_flags: Option<i64>,
    /// `flags`.
    pub flags: Option<i64>,
    /// `locale`.
    pub locale: Option<String>,
    /// `mfa_enabled`.
    pub mfa_enabled: Option<bool>,
    /// `email`, already checked as an address and lower-cased by the caller.
    pub email: Option<String>,
    /// `verified`.
    pub verified: Option<bool>,
}

impl DiscordProfile {
    /// Checks and cleans Discord's user object: the id must be a decimal snowflake that fits
    /// 63 bits (`None` otherwise: no profile without an identity); names lose control
    /// characters and bidirectional overrides; a discriminator that is not 1 to 4 digits
    /// counts as `"0"`; an avatar hash that is not 1 to 64 letters, digits and `_`, and a
    /// locale that is not 1 to 35 letters, digits and `-`, are dropped (they end up in URLs
    /// and pages).
    #[must_use]
    pub fn new(raw: RawDiscordUser) -> Option<Self> {
        let id = parse_snowflake(&raw.id)?;
        let discriminator = match raw.discriminator.as_deref() {
            Some(d)
                if (1..=4).contains(&d.len())
                    && d.bytes().all(|b| b.is_ascii_digit())
                    && d.bytes().any(|b| b != b'0') =>
            {
                d.to_owned()
            }
            _ => "0".to_owned(),
        };
        let global_name = raw
            .global_name
            .map(|n| clean(&n, MAX_NAME_CHARS))
            .filter(|n| !n.trim().is_empty());
        let avatar = raw.avatar.filter(|a| {
            (1..=64).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        let locale = raw.locale.filter(|l| {
            (1..=35).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        Some(Self {
            id,
            username: clean(&raw.username, MAX_NAME_CHARS),
            discriminator,
            global_name,
            avatar,
            public_flags: raw.public_flags.unwrap_or(0),
            flags: raw.flags.unwrap_or(0),
            locale,
            mfa_enabled: raw.mfa_enabled.unwrap_or(false),
            verified: raw.verified.unwrap_or(false) && raw.email.is_some(),
            email: raw.email,
        })
    }

    /// The name as Discord shows it: the unique username, or `name#1234` for a legacy account.
    #[must_use]
    pub fn tag(&self) -> String {
        if self.discriminator == "0" {
            self.username.clone()
        } else {
            format!("{}#{}", self.username, self.discriminator)
        }
    }

    /// The avatar's URL on Discord's CDN: the user's image (`.gif` when animated), or the
    /// default avatar Discord shows for the account.
    #[must_use]
    pub fn avatar_url(&self) -> String {
        match &self.avatar {
            Some(hash) => {
                let ext = if hash.starts_with("a_") { "gif" } else { "png" };
                format!("{CDN}/avatars/{}/{hash}.{ext}", self.id)
            }
            None => {
                let index = if self.discriminator == "0" {
                    (self.id >> 22) % 6
                } else {
                    self.discriminator.parse::<i64>().unwrap_or(0) % 5
                };
                format!("{CDN}/embed/avatars/{index}.png")
            }
        }
    }

    /// The `discord` claim: `{id, username, tag, global_name, avatar, avatar_url,
    /// public_flags, flags, locale, mfa_enabled, email, verified}`, the id as a string (as
    /// Discord sends it: JavaScript numbers lose a snowflake's last digits), members without a
    /// value left out (OIDC Core §5.3.2).
    #[must_use]
    pub fn claim(&self) -> serde_json::Value {
        serde_json::to_value(self.claim_object()).unwrap_or_default()
    }

    fn claim_object(&self) -> DiscordClaim<'_> {
        DiscordClaim {
            id: self.id.to_string(),
            username: &self.username,
            tag: self.tag(),
            global_name: self.global_name.as_deref(),
            avatar: self.avatar.as_deref(),
            avatar_url: self.avatar_url(),
            public_flags: self.public_flags,
            flags: self.flags,
            locale: self.locale.as_deref(),
            mfa_enabled: self.mfa_enabled,
            email: self.email.as_deref(),
            verified: self.verified,
        }
    }

    /// The profile as stored for `link_id`, signed in with at `now`.
    #[must_use]
    pub fn to_row(&self, link_id: &str, now: NaiveDateTime) -> DiscordAccountRow {
        DiscordAccountRow {
            id: self.id,
            link_id: link_id.to_owned(),
            username: self.username.clone(),
            discriminator: self.discriminator.clone(),
            tag: self.tag(),
            global_name: self.global_name.clone(),
            avatar: self.avatar.clone(),
            public_flags: self.public_flags,
            flags: self.flags,
            locale: self.locale.clone(),
            mfa_enabled: self.mfa_enabled,
            email: self.email.clone(),
            verified: self.verified,
            last_login: now,
        }
    }
}

/// The `discord` claim's members ([`DiscordProfile::claim`]; also in the OpenAPI document of
/// `/api/me` and UserInfo).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(description = "The user's Discord profile (the `discord` claim).")]
pub struct DiscordClaim<'a> {
    /// The Discord user id (a snowflake, as a string).
    id: String,
    username: &'a str,
    tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    global_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    avatar: Option<&'a str>,
    avatar_url: String,
    public_flags: i64,
    flags: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    locale: Option<&'a str>,
    mfa_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<&'a str>,
    verified: bool,
}

/// A stored Discord profile: the profile, and the latest sign-in with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscordAccount {
    /// The profile as of that sign-in.
    pub profile: DiscordProfile,
    /// The latest Discord sign-in (UTC).
    pub last_login: NaiveDateTime,
}

impl DiscordAccount {
    /// What `/auth/` answers: the [`DiscordProfile::claim`] object with `last_login` (RFC 3339,
    /// UTC).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = self.profile.claim();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "last_login".into(),
                self.last_login.and_utc().to_rfc3339().into(),
            );
        }
        value
    }
}

impl From<DiscordAccountRow> for DiscordAccount {
    fn from(row: DiscordAccountRow) -> Self {
        Self {
            profile: DiscordProfile {
                id: row.id,
                username: row.username,
                discriminator: row.discriminator,
                global_name: row.global_name,
                avatar: row.avatar,
                public_flags: row.public_flags,
                flags: row.flags,
                locale: row.locale,
                mfa_enabled: row.mfa_enabled,
                email: row.email,
                verified: row.verified,
            },
            last_login: row.last_login,
        }
    }
}

/// The Discord profile of local user `user_id` (see [`discord_accounts::for_user`]).
///
/// # Errors
/// Query failures only.
pub fn account_of(
    conn: &mut DbConnection,
    user_id: &str,
) -> diesel::QueryResult<Option<DiscordAccount>> {
    Ok(discord_accounts::for_user(conn, user_id)?.map(DiscordAccount::from))
}

/// A snowflake: 1 to 20 decimal digits that fit a signed 64-bit integer (every Discord id
/// does until 2084).
fn parse_snowflake(raw: &str) -> Option<i64> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(discriminator: &str, avatar: Option<&str>) -> RawDiscordUser {
        RawDiscordUser {
            id: "80351110224678912".to_owned(),
            username: "nelly".to_owned(),
            discriminator: Some(discriminator.to_owned()),
            global_name: Some("Nelly".to_owned()),
            avatar: avatar.map(str::to_owned),
            public_flags: Some(64),
            flags: Some(64),
            locale: Some("en-US".to_owned()),
            mfa_enabled: Some(true),
            email: Some("nelly@example.com".to_owned()),
            verified: Some(true),
        }
    }

    #[test]
    fn the_tag_is_the_unique_username_or_the_legacy_name_and_number() {
        let new = DiscordProfile::new(raw("0", None)).expect("valid");
        assert_eq!(new.tag(), "nelly");
        let legacy = DiscordProfile::new(raw("1337", None)).expect("valid");
        assert_eq!(legacy.tag(), "nelly#1337");
        // Junk is no discriminator.
        for junk in ["", "0000", "12345", "12a"] {
            let profile = DiscordProfile::new(raw(junk, None)).expect("valid");
            assert_eq!(profile.discriminator, "0", "{junk:?}");
            assert_eq!(profile.tag(), "nelly");
        }
    }

    #[test]
    fn avatar_urls_follow_discords_cdn_rules() {
        let png = DiscordProfile::new(raw("0", Some("8342729096ea3675442027381ff50dfe")));
        assert_eq!(
            png.expect("valid").avatar_url(),
            "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
        );
        let gif = DiscordProfile::new(raw("0", Some("a_1269e74af4df7417b13759eae50c83dc")));
        assert_eq!(
            gif.expect("valid").avatar_url(),
            "https://cdn.discordapp.com/avatars/80351110224678912/a_1269e74af4df7417b13759eae50c83dc.gif"
        );
        // Default avatars: (id >> 22) % 6 for unique usernames, discriminator % 5 for legacy.
        let new = DiscordProfile::new(raw("0", None)).expect("valid");
        assert_eq!(
            new.avatar_url(),
            "https://cdn.discordapp.com/embed/avatars/5.png"
        );
        let legacy = DiscordProfile::new(raw("1337", None)).expect("valid");
        assert_eq!(
            legacy.avatar_url(),
            "https://cdn.discordapp.com/embed/avatars/2.png"
        );
        // A hash that could leave the path is no hash.
        let hostile = DiscordProfile::new(raw("0", Some("../../x?y"))).expect("valid");
        assert_eq!(hostile.avatar, None);
        assert!(hostile.avatar_url().ends_with("/embed/avatars/5.png"));
    }

    #[test]
    fn only_a_decimal_63_bit_snowflake_is_an_id() {
        for bad in ["", "-1", "+1", "1e3", "12 3", "9223372036854775808", "abc"] {
            let user = RawDiscordUser {
                id: bad.to_owned(),
                ..raw("0", None)
            };
            assert!(DiscordProfile::new(user).is_none(), "{bad:?}");
        }
        let max = RawDiscordUser {
            id: i64::MAX.to_string(),
            ..raw("0", None)
        };
        assert_eq!(DiscordProfile::new(max).expect("valid").id, i64::MAX);
    }

    #[test]
    fn the_claim_carries_the_profile_and_leaves_out_what_is_missing() {
        let profile = DiscordProfile::new(raw("0", Some("abc"))).expect("valid");
        let claim = profile.claim();
        assert_eq!(claim["id"], "80351110224678912");
        assert_eq!(claim["tag"], "nelly");
        assert_eq!(claim["global_name"], "Nelly");
        assert_eq!(
            claim["avatar_url"],
            "https://cdn.discordapp.com/avatars/80351110224678912/abc.png"
        );
        assert_eq!(claim["public_flags"], 64);
        assert_eq!(claim["mfa_enabled"], true);
        assert_eq!(claim["email"], "nelly@example.com");
        let bare = DiscordProfile::new(RawDiscordUser {
            id: "1".to_owned(),
            username: "x".to_owned(),
            ..RawDiscordUser::default()
        })
        .expect("valid");
        let claim = bare.claim();
        let mut keys: Vec<&str> = claim
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "avatar_url",
                "flags",
                "id",
                "mfa_enabled",
                "public_flags",
                "tag",
                "username",
                "verified"
            ]
        );
        assert_eq!(claim["verified"], false);
    }
}
