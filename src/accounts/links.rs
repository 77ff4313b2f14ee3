//! Signed, expiring, single-use links for account emails (activation, password reset), without
//! a table: like Django's `PasswordResetTokenGenerator`, a link carries the user id
//! (`uidb64`, base64url) and a token `<issued, base36 seconds>-<HMAC-SHA256, 32 hex>` over the
//! purpose, the user id, the issue time and the account *state* the link must die with:
//!
//! * password reset: the password hash and the last login — a used link is dead because the
//!   password changed (and so is any other link issued before);
//! * activation: the email address and its verified flag — dead once the address is verified or
//!   changed.
//!
//! The HMAC key is derived from `secrets.secret_key` with a purpose label, so links from another
//! deployment, or of another purpose, never verify. Comparison is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::db::users::UserRow;
use crate::secret;

/// What a link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Verifies the email address.
    Activation,
    /// Sets a new password.
    PasswordReset,
}

impl LinkPurpose {
    fn label(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::PasswordReset => "password-reset",
        }
    }

    /// The account state the link dies with.
    fn state(self, user: &UserRow) -> String {
        match self {
            Self::Activation => format!("{}|{}", user.email, user.email_verified),
            Self::PasswordReset => format!(
                "{}|{}",
                user.password_hash.as_deref().unwrap_or(""),
                user.last_login
                    .map(|t| t.and_utc().timestamp_micros())
                    .unwrap_or_default()
            ),
        }
    }
}

/// Makes and checks link tokens.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

/// The `uidb64` path segment for a user id.
#[must_use]
pub fn encode_uid(user_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(user_id.as_bytes())
}

/// The user id in a `uidb64` path segment; `None` when it is not one: not base64url, not
/// UTF-8, or holding a control character (no user id has one, and PostgreSQL refuses NUL in a
/// query parameter).
#[must_use]
pub fn decode_uid(uidb64: &str) -> Option<String> {
    if uidb64.len() > 100 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(uidb64).ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|id| !id.chars().any(char::is_control))
}

impl LinkSigner {
    /// A signer keyed from the server's secret key.
    #[must_use]
    pub fn new(secret_key: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"latchkey account links v1")
            .expect("HMAC takes keys of any length");
        mac.update(secret_key);
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, purpose: LinkPurpose, user: &UserRow, issued: i64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        for part in [
            purpose.label(),
            &user.id,
            &issued.to_string(),
            &purpose.state(user),
        ] {
            // Length-prefixed, so that no two different inputs give the same message.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let bytes = mac.finalize().into_bytes();
        bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The token for a link of `purpose` for `user`, issued `now`.
    #[must_use]
    pub fn make(&self, purpose: LinkPurpose, user: &UserRow, now: DateTime<Utc>) -> String {
        let issued = now.timestamp();
        format!("{}-{}", to_base36(issued), self.mac(purpose, user, issued))
    }

    /// Whether `token` is a link of `purpose` for `user` in its present state, issued at most
    /// `max_age_seconds` before `now` (and not in the future).
    #[must_use]
    pub fn check(
        &self,
        purpose: LinkPurpose,
        user: &UserRow,
        token: &str,
        max_age_seconds: i64,
        now: DateTime<Utc>,
    ) -> bool {
        let Some((issued, mac)) = token.split_once('-') else {
            return false;
        };
        if issued.len() > 13 || mac.len() != 32 {
            return false;
        }
        let Some(issued) = from_base36(issued) else {
            return false;
        };
        let age = now.timestamp() - issued;
        if !(0..=max_age_seconds).contains(&age) {
            return false;
        }
        secret::ct_eq(self.mac(purpose, user, issued).as_bytes(), mac.as_bytes())
    }
}

fn to_base36(mut n: i64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n <= 0 {
        return "0".to_owned();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[usize::try_from(n % 36).unwrap_or(0)]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The number `s` spells in [`to_base36`]'s form only: lower-case digits, no sign, no leading
/// zero (`i64::from_str_radix` alone also takes `+`, upper case and leading zeros, which would
/// give one link several spellings).
fn from_base36(s: &str) -> Option<i64> {
    let n = i64::from_str_radix(s, 36).ok().filter(|n| *n >= 0)?;
    (to_base36(n) == s).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn user() -> UserRow {
        UserRow {
            id: "3f0c6a2e-1111-4222-8333-444455556666".into(),
            username: "ann".into(),
            email: "ann@example.com".into(),
            first_name: String::new(),
            last_name: String::new(),
            password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            email_verified: false,
            date_joined: crate::db::now(),
            last_login: None,
            sessions_valid_after: None,
            mfa_enabled: false,
        }
    }

    #[test]
    fn links_verify_until_they_expire_or_the_state_changes() {
        let signer = LinkSigner::new(b"k");
        let now = Utc::now();
        let mut u = user();
        let token = signer.make(LinkPurpose::PasswordReset, &u, now);
        assert!(signer.check(LinkPurpose::PasswordReset, &u, &token, 3600, now));
        assert!(signer.check(
            LinkPurpose::PasswordReset,
            &u,
            &token,
            3600,
            now + TimeDelta::seconds(3600)
        ));
        assert!(!signer.check(
            LinkPurpose::PasswordReset,
            &u,
            &token,
            3600,
            now + TimeDelta::seconds(3601)
        ));
        assert!(!signer.check(LinkPurpose::Activation, &u, &token, 3600, now));
        assert!(!LinkSigner::new(b"other").check(
            LinkPurpose::PasswordReset,
            &u,
            &token,
            3600,
            now
        ));
        u.password_hash = Some("changed".into());
        assert!(!signer.check(LinkPurpose::PasswordReset, &u, &token, 3600, now));

        let mut u = user();
        let activation = signer.make(LinkPurpose::Activation, &u, now);
        assert!(signer.check(LinkPurpose::Activation, &u, &activation, 60, now));
        u.email_verified = true;
        assert!(!signer.check(LinkPurpose::Activation, &u, &activation, 60, now));
    }

    #[test]
    fn malformed_tokens_and_uids_are_refused() {
        let signer = LinkSigner::new(b"k");
        let u = user();
        let now = Utc::now();
        for bad in ["", "-", "zz", "1-", "!!-0123", &"9".repeat(40)] {
            assert!(
                !signer.check(LinkPurpose::Activation, &u, bad, 60, now),
                "{bad}"
            );
        }
        assert_eq!(
            decode_uid(&encode_uid(&u.id)).as_deref(),
            Some(u.id.as_str())
        );
        assert_eq!(decode_uid("%%%"), None);
        assert_eq!(to_base36(0), "0");
        assert_eq!(from_base36(&to_base36(1_790_000_000)), Some(1_790_000_000));
    }
}
