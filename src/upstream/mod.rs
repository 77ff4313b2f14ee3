//! Upstream login (issue 11): users sign in with an account at Discord, Google or any OpenID
//! Connect provider an operator configures (`[upstream.<id>]`, [`crate::config::UpstreamProvider`]),
//! and link those accounts to their Latchkey account (`upstream_links`,
//! [`crate::db::upstream_links`]).
//!
//! The parts: the providers — the configuration file's and the console's, one live set
//! ([`providers`]), the console's stored in the database ([`stored`]) —, the link storage, the linking rule ([`decide`]), the relying party
//! ([`client`]: authorization request with state, PKCE and nonce; code exchange; ID-token
//! verification; Discord's `/users/@me`), the service that carries a verified identity out
//! ([`service::Upstream`]), the Discord profile ([`discord`]) and kept upstream tokens
//! ([`tokens`]) (`docs/architecture.md`, "Upstream login").

pub mod client;
pub mod discord;
pub mod dns;
pub mod oidc;
pub mod providers;
pub mod service;
pub mod stored;
pub mod tokens;

pub use client::{PendingLogin, UpstreamError};
pub use discord::{DiscordAccount, DiscordProfile, DISCORD_SCOPE};
pub use oidc::SubjectToken;
pub use providers::{
    ProviderButton, ProviderChangeError, ProviderListing, ProviderSet, ProviderSource,
    StoredProvider, PROVIDER_RELOAD_SECONDS,
};
pub use service::{
    AccountPolicy, FreshTokensError, KeptTokensError, LinkRemovalError, SignInOutcome,
    TokenSignInError, Upstream,
};
pub use tokens::UpstreamTokens;

/// The longest picture URL kept from a provider, in bytes.
pub const MAX_PICTURE_BYTES: usize = 2000;

use crate::db::upstream_links::LinkRow;
use crate::db::users::UserRow;

/// Who the provider says signed in, after the provider's answer was verified (the ID token's
/// signature, `iss`, `aud`, `exp`, `nonce`; or Discord's `/users/@me` with the token just
/// obtained).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The provider's subject: OIDC `sub`, the Discord user id.
    pub subject: String,
    /// The name at the provider (`preferred_username`, Discord's username); may be empty.
    pub username: String,
    /// The display name (`name`, Discord's `global_name`); may be empty.
    pub display_name: String,
    /// The address the provider gave, lower-cased.
    pub email: Option<String>,
    /// Whether the provider said it verified `email` (OIDC `email_verified`, Discord's
    /// `verified`).
    pub email_verified: bool,
    /// Google's `hd` (the Workspace domain of the account), lower-cased; `None` elsewhere.
    pub hosted_domain: Option<String>,
    /// The account's picture: an https URL of at most [`MAX_PICTURE_BYTES`] (OpenID Connect
    /// `picture`, the Discord avatar's CDN URL); `None` when none was given or it is not one.
    pub picture: Option<String>,
    /// Discord's whole profile (Discord sign-ins only), stored in `discord_accounts`.
    pub discord: Option<DiscordProfile>,
    /// The tokens the provider issued (Discord sign-ins only), kept sealed when the provider's
    /// `keep_tokens` is on.
    pub tokens: Option<UpstreamTokens>,
}

/// What a sign-in with an upstream identity leads to (the linking rules of issue 11, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// 1. The identity is linked: sign in as the link's user.
    SignIn {
        /// The linked user.
        user_id: String,
    },
    /// 2. Not linked, but the provider allows linking by email, the provider verified the
    ///    address, and the local account with that address verified it too: link, then sign
    ///    in.
    LinkByEmail {
        /// The local account with the same verified address.
        user_id: String,
    },
    /// 3. Not linked, no local account has the address, and registration is open: create the
    ///    account (its address verified only if the provider verified it), link, sign in.
    Register,
    /// 4. Otherwise: the user signs in with their password first, and the link is made then.
    ///    Never a sign-in on the strength of an email alone.
    PasswordFirst,
    /// Not linked, the address is free, but the provider has not verified it: no account is
    /// made from it (whoever later proves the address would find a stranger's link on it).
    UnverifiedAddress,
    /// The linked (or matching) account is deactivated: no sign-in.
    Inactive,
}

/// Applies the linking rules to an identity: `link` is the link of its (provider, subject),
/// `same_email` the local account with the identity's address (when it gave one),
/// `link_by_email` the provider's setting and `registration_open` the server's.
///
/// Rule 2 needs all three conditions — the setting, the provider's verification, the local
/// verification — because each one skipped has been an account-takeover bug elsewhere: an
/// unverified upstream address can be anyone's, and an unverified local one may be a squatter's.
/// It never links a staff or superuser account (those link from a signed-in browser only).
/// Rule 3 needs the provider's verification too.
#[must_use]
pub fn decide(
    identity: &Identity,
    link: Option<(&LinkRow, &UserRow)>,
    same_email: Option<&UserRow>,
    link_by_email: bool,
    registration_open: bool,
) -> Decision {
    if let Some((_, user)) = link {
        return if user.is_active {
            Decision::SignIn {
                user_id: user.id.clone(),
            }
        } else {
            Decision::Inactive
        };
    }
    match same_email {
        Some(user)
            if link_by_email
                && identity.email_verified
                && user.email_verified
                && !user.has_staff_access() =>
        {
            if user.is_active {
                Decision::LinkByEmail {
                    user_id: user.id.clone(),
                }
            } else {
                Decision::Inactive
            }
        }
        // The address is taken: an account cannot be created with it.
        Some(_) => Decision::PasswordFirst,
        None if !registration_open || identity.email.is_none() => Decision::PasswordFirst,
        None if !identity.email_verified => Decision::UnverifiedAddress,
        None => Decision::Register,
    }
}

/// Whether an identity at provider `provider_id` (of `kind`) may be linked by email to the
/// local account whose address is `address` (its other conditions are [`decide`]'s): `vouch`
/// is who alone verified that account's address ([`crate::db::upstream_email_vouches`]: the
/// provider and the address, for an account an upstream sign-in created).
///
/// * The local address must be one Latchkey verified itself (a code or link it sent) — or one
///   the same provider vouched for —, never one only *another* provider vouched for: otherwise
///   whoever first signs in through a lax provider claiming someone's address would receive that
///   person's later sign-ins through a strict one (a pre-account-takeover). A vouch for an
///   address the account no longer has does not count (the new one was verified here).
/// * Google vouches for the addresses it hosts only: `email_verified` is proof for linking when
///   the address is `@gmail.com` / `@googlemail.com`, or its domain is the account's `hd`
///   (a Workspace domain Google administers); a Google account made on any other address only
///   proves someone once received mail there.
#[must_use]
pub fn may_link_by_email(
    kind: crate::domain::ProviderKind,
    provider_id: &str,
    identity: &Identity,
    address: &str,
    vouch: Option<&(String, String)>,
) -> bool {
    let verified_here = match vouch {
        Some((by, email)) => by == provider_id || !email.eq_ignore_ascii_case(address),
        None => true,
    };
    verified_here && (kind != crate::domain::ProviderKind::Google || google_hosts(identity))
}

/// Whether Google hosts `identity`'s address: a consumer Google address, or one on the
/// account's Workspace domain (`hd`).
fn google_hosts(identity: &Identity) -> bool {
    let Some((_, domain)) = identity.email.as_deref().and_then(|e| e.rsplit_once('@')) else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    matches!(domain.as_str(), "gmail.com" | "googlemail.com")
        || identity
            .hosted_domain
            .as_deref()
            .is_some_and(|hd| hd.eq_ignore_ascii_case(&domain))
}

/// `text` as stored and shown: control characters (NUL included) and bidirectional overrides
/// (U+202A–U+202E, U+2066–U+2069, which can make a name read as another) dropped, at most `max`
/// characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, verified: bool, active: bool) -> UserRow {
        UserRow {
            id: id.to_owned(),
            username: id.to_owned(),
            email: format!("{id}@example.com"),
            first_name: String::new(),
            last_name: String::new(),
            password_hash: None,
            is_active: active,
            is_staff: false,
            is_superuser: false,
            email_verified: verified,
            date_joined: crate::db::now(),
            last_login: None,
            sessions_valid_after: None,
            mfa_enabled: false,
        }
    }

    fn identity(verified: bool) -> Identity {
        Identity {
            subject: "sub-1".to_owned(),
            username: "ann".to_owned(),
            display_name: "Ann".to_owned(),
            email: Some("ann@example.com".to_owned()),
            email_verified: verified,
            hosted_domain: None,
            picture: None,
            discord: None,
            tokens: None,
        }
    }

    fn link_of(user: &UserRow) -> LinkRow {
        LinkRow {
            id: "l".to_owned(),
            user_id: user.id.clone(),
            provider_id: "corp".to_owned(),
            issuer: "https://sso.example".to_owned(),
            subject: "sub-1".to_owned(),
            username: String::new(),
            display_name: String::new(),
            email: None,
            email_verified: false,
            access_token_sealed: None,
            refresh_token_sealed: None,
            token_expires_at: None,
            created_at: crate::db::now(),
            last_login_at: None,
            picture: None,
        }
    }

    #[test]
    fn a_link_signs_in_whatever_the_email_says() {
        let ann = user("ann", false, true);
        let link = link_of(&ann);
        let other = user("bob", true, true);
        assert_eq!(
            decide(
                &identity(false),
                Some((&link, &ann)),
                Some(&other),
                true,
                true
            ),
            Decision::SignIn {
                user_id: "ann".into()
            }
        );
        let gone = user("ann", true, false);
        assert_eq!(
            decide(&identity(true), Some((&link, &gone)), None, false, true),
            Decision::Inactive
        );
    }

    #[test]
    fn linking_by_email_needs_the_setting_and_both_verifications() {
        let verified = user("ann", true, true);
        let unverified = user("ann", false, true);
        let link = Decision::LinkByEmail {
            user_id: "ann".into(),
        };
        assert_eq!(
            decide(&identity(true), None, Some(&verified), true, true),
            link
        );
        // Each condition missing: never a link, and never a second account with the address.
        assert_eq!(
            decide(&identity(true), None, Some(&verified), false, true),
            Decision::PasswordFirst
        );
        assert_eq!(
            decide(&identity(false), None, Some(&verified), true, true),
            Decision::PasswordFirst
        );
        assert_eq!(
            decide(&identity(true), None, Some(&unverified), true, true),
            Decision::PasswordFirst
        );
        assert_eq!(
            decide(
                &identity(true),
                None,
                Some(&user("ann", true, false)),
                true,
                true
            ),
            Decision::Inactive
        );
    }

    #[test]
    fn a_new_identity_registers_only_when_registration_is_open_and_its_address_verified() {
        assert_eq!(
            decide(&identity(true), None, None, false, true),
            Decision::Register
        );
        assert_eq!(
            decide(&identity(false), None, None, false, true),
            Decision::UnverifiedAddress,
            "no account from an address nobody verified"
        );
        assert_eq!(
            decide(&identity(true), None, None, true, false),
            Decision::PasswordFirst
        );
        let no_email = Identity {
            email: None,
            ..identity(false)
        };
        assert_eq!(
            decide(&no_email, None, None, false, true),
            Decision::PasswordFirst
        );
    }

    #[test]
    fn linking_by_email_needs_an_address_latchkey_or_the_same_provider_verified() {
        use crate::domain::ProviderKind::{Google, Oidc};
        let ann = identity(true);
        let address = "ann@example.com";
        assert!(may_link_by_email(Oidc, "corp", &ann, address, None));
        let by_lax = ("lax".to_owned(), address.to_owned());
        assert!(
            !may_link_by_email(Oidc, "corp", &ann, address, Some(&by_lax)),
            "only another provider vouched for it"
        );
        let by_corp = ("corp".to_owned(), address.to_owned());
        assert!(may_link_by_email(
            Oidc,
            "corp",
            &ann,
            address,
            Some(&by_corp)
        ));
        let stale = ("lax".to_owned(), "old@example.com".to_owned());
        assert!(may_link_by_email(Oidc, "corp", &ann, address, Some(&stale)));

        // Google: its word counts for the addresses it hosts only.
        assert!(!may_link_by_email(Google, "google", &ann, address, None));
        let workspace = Identity {
            hosted_domain: Some("example.com".to_owned()),
            ..identity(true)
        };
        assert!(may_link_by_email(
            Google, "google", &workspace, address, None
        ));
        let other_hd = Identity {
            hosted_domain: Some("other.example".to_owned()),
            ..identity(true)
        };
        assert!(!may_link_by_email(
            Google, "google", &other_hd, address, None
        ));
        let gmail = Identity {
            email: Some("ann@gmail.com".to_owned()),
            ..identity(true)
        };
        assert!(may_link_by_email(
            Google,
            "google",
            &gmail,
            "ann@gmail.com",
            None
        ));
    }
}
