//! `latchkey serve --demo`: a demo user and two demo clients with published credentials,
//! created if missing (idempotent), and a printed walk-through. Refused in production.

use std::fmt::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::accounts::{AccountError, NewUser};
use crate::clients::ClientSpec;
use crate::db::users::UserRow;
use crate::domain::{Email, Username};
use crate::startup::Services;

/// The demo user's username.
pub const USERNAME: &str = "demo";
/// The demo user's password (published: development only).
pub const PASSWORD: &str = "demo-password";
/// The demo staff user (the admin console).
pub const ADMIN_USERNAME: &str = "admin";
/// The demo staff user's password (published: development only).
pub const ADMIN_PASSWORD: &str = "admin-password";
/// The demo confidential client.
pub const CONFIDENTIAL_ID: &str = "demo-confidential";
/// Its secret (published: development only).
pub const CONFIDENTIAL_SECRET: &str = "demo-confidential-secret";
/// The demo public client (PKCE).
pub const PUBLIC_ID: &str = "demo-public";
/// A fixed PKCE code_verifier for the walk-through (RFC 7636 §4.1: 43–128 characters).
pub const CODE_VERIFIER: &str = "demo-code-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

/// The S256 code_challenge of [`CODE_VERIFIER`] (RFC 7636 §4.2).
#[must_use]
pub fn code_challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(CODE_VERIFIER.as_bytes()))
}

/// Makes sure the demo user and clients exist and returns the walk-through text.
///
/// # Errors
/// Storage failures or an invalid issuer for redirect URIs.
pub async fn ensure(services: &Services, issuer: &str) -> anyhow::Result<String> {
    let demo = ensure_user(services, USERNAME, PASSWORD, "Demo", false).await?;
    ensure_user(services, ADMIN_USERNAME, ADMIN_PASSWORD, "Admin", true).await?;
    let callback = format!("{issuer}/demo/callback");
    let base = ClientSpec {
        // The demo user sees the demo clients in the developer portal.
        owner_id: Some(demo.id),
        redirect_uris: vec![callback.clone()],
        post_logout_redirect_uris: vec![format!("{issuer}/")],
        scopes: Vec::new(),
        require_pkce: true,
        ..ClientSpec::default()
    };
    services
        .clients
        .ensure_fixed(
            CONFIDENTIAL_ID,
            Some(CONFIDENTIAL_SECRET),
            &ClientSpec {
                name: "Demo confidential app".into(),
                client_type: "confidential".into(),
                grant_types: [
                    "authorization_code",
                    "refresh_token",
                    "password",
                    "client_credentials",
                ]
                .map(String::from)
                .to_vec(),
                ..base.clone()
            },
        )
        .await?;
    services
        .clients
        .ensure_fixed(
            PUBLIC_ID,
            None,
            &ClientSpec {
                name: "Demo public app".into(),
                client_type: "public".into(),
                grant_types: ["authorization_code", "refresh_token"]
                    .map(String::from)
                    .to_vec(),
                ..base
            },
        )
        .await?;
    let challenge = code_challenge();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== Latchkey demo (development only: these credentials are public) ==="
    );
    let _ = writeln!(out, "user:                {USERNAME} / {PASSWORD}");
    let _ = writeln!(
        out,
        "staff user:          {ADMIN_USERNAME} / {ADMIN_PASSWORD}"
    );
    let _ = writeln!(
        out,
        "confidential client: {CONFIDENTIAL_ID} / {CONFIDENTIAL_SECRET}"
    );
    let _ = writeln!(out, "public client:       {PUBLIC_ID} (PKCE, no secret)");
    let _ = writeln!(
        out,
        "\nAuthorization code + PKCE: open this URL, sign in, allow:"
    );
    let _ = writeln!(
        out,
        "  {issuer}/o/authorize/?response_type=code&client_id={PUBLIC_ID}&redirect_uri={}&scope=openid+profile+email+offline_access&state=xyz&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
    );
    let _ = writeln!(
        out,
        "  (the callback page shows the code and the curl command that exchanges it)"
    );
    let _ = writeln!(out, "\nPassword grant:");
    let _ = writeln!(
        out,
        "  curl -s -u {CONFIDENTIAL_ID}:{CONFIDENTIAL_SECRET} -d grant_type=password -d username={USERNAME} -d password={PASSWORD} -d scope=profile {issuer}/o/token/"
    );
    let _ = writeln!(out, "\nClient credentials grant:");
    let _ = writeln!(
        out,
        "  curl -s -u {CONFIDENTIAL_ID}:{CONFIDENTIAL_SECRET} -d grant_type=client_credentials -d scope=read {issuer}/o/token/"
    );
    let _ = writeln!(
        out,
        "\nThen: curl -s -H \"Authorization: Bearer ACCESS_TOKEN\" {issuer}/api/me"
    );
    let _ = writeln!(
        out,
        "\nWeb console (sign in at {issuer}/accounts/login/):\n  as {USERNAME}: {issuer}/o/applications/ (your applications), {issuer}/o/authorized_tokens/ (apps you allowed), {issuer}/account/\n  as {ADMIN_USERNAME}: {issuer}/admin/ (users, groups, applications, tokens, audit log)"
    );
    Ok(out)
}

/// Creates a demo user unless one with that name exists; returns it either way.
async fn ensure_user(
    services: &Services,
    username: &str,
    password: &str,
    first_name: &str,
    staff: bool,
) -> anyhow::Result<UserRow> {
    let created = services
        .accounts
        .create_user(
            &crate::audit::Actor::system(),
            NewUser {
                username: Username::parse(username).map_err(anyhow::Error::msg)?,
                email: Email::parse(&format!("{username}@example.com"))
                    .map_err(anyhow::Error::msg)?,
                password: Some(SecretString::from(password.to_owned())),
                first_name: first_name.into(),
                last_name: "User".into(),
                superuser: staff,
                email_verified: true,
            },
        )
        .await;
    match created {
        Ok(user) => Ok(user),
        Err(AccountError::Taken) => services
            .accounts
            .find_by_login(username)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo user {username} cannot be found")),
        Err(e) => Err(e.into()),
    }
}
