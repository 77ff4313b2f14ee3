//! `latchkey serve --demo`: a demo user and two demo clients with published credentials,
//! created if missing (idempotent), and a printed walk-through. Refused in production.
//!
//! A database that ever ran `--demo` keeps those rows, and anyone who read the README can use
//! them. [`find_leftovers`] recognises them, `serve` in production refuses to start while there
//! are any, and `latchkey demo remove` ([`remove`]) deletes them:
//!
//! * **users** named `demo` or `admin` whose password still verifies as the published one
//!   ([`PASSWORD`], [`ADMIN_PASSWORD`]). A real account that happens to be called `admin` has
//!   another password and is left alone; a demo account whose password was changed has become
//!   someone's real account and is left alone too. Only the published credential is the danger;
//! * **clients** with the fixed ids [`CONFIDENTIAL_ID`] and [`PUBLIC_ID`] (registered client
//!   ids are 32 random characters, so only `--demo` makes these), and every client owned by a
//!   demo user found above (anyone could have signed in as that user and registered one; once
//!   its owner is gone it would look like a client an operator set up).
//!
//! Nothing is marked in the database: the rule works as well for databases that ran `--demo`
//! before it existed.

use std::fmt::Write;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::Connection;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::accounts::{Account, AccountError, NewUser};
use crate::audit::{self, Actor, AuditEvent};
use crate::clients::ClientSpec;
use crate::db::users::{self, UserRow};
use crate::db::{clients, DbError};
use crate::domain::{Email, Username};
use crate::services::Services;

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
) -> anyhow::Result<Account> {
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

/// The demo rows a database still holds (see the module documentation for the rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Demo users whose password is still the published one.
    pub users: Vec<UserRow>,
    /// The demo clients' ids, and those of clients owned by [`Leftovers::users`], sorted.
    pub clients: Vec<String>,
}

impl Leftovers {
    /// Whether there is nothing to remove.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.clients.is_empty()
    }

    /// `users admin, demo; clients demo-confidential, demo-public` (the parts that are not
    /// empty).
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.users.is_empty() {
            let names: Vec<&str> = self.users.iter().map(|u| u.username.as_str()).collect();
            parts.push(format!("users {}", names.join(", ")));
        }
        if !self.clients.is_empty() {
            parts.push(format!("clients {}", self.clients.join(", ")));
        }
        parts.join("; ")
    }
}

/// Finds the demo rows still in the database: two password checks (argon2id, off the async
/// workers) and a few reads.
///
/// # Errors
/// Storage failures.
pub async fn find_leftovers(services: &Services) -> Result<Leftovers, DbError> {
    let mut found = Leftovers::default();
    for (username, password) in [(USERNAME, PASSWORD), (ADMIN_USERNAME, ADMIN_PASSWORD)] {
        // The row, not the accounts service's view: `remove` deletes it only while its password
        // hash is still the one checked here. An exact username only, never an email address.
        let name = username.to_owned();
        let Some(user) = services
            .db
            .read(move |conn| users::find_by_username(conn, &name).map_err(DbError::from))
            .await?
        else {
            continue;
        };
        if services
            .accounts
            .password_is(&user, SecretString::from(password.to_owned()))
            .await
        {
            found.users.push(user);
        }
    }
    let mut ids: Vec<String> = services
        .clients
        .list()
        .await?
        .into_iter()
        .filter(|c| {
            [CONFIDENTIAL_ID, PUBLIC_ID].contains(&c.id())
                || c.owner_id()
                    .is_some_and(|owner| found.users.iter().any(|u| u.id == owner))
        })
        .map(|c| c.id().to_owned())
        .collect();
    ids.sort();
    found.clients = ids;
    Ok(found)
}

/// The message `serve` stops with in production while demo rows exist.
#[must_use]
pub fn refusal(leftovers: &Leftovers) -> String {
    format!(
        "the database still holds what `latchkey serve --demo` created, with credentials published in the README ({}); anyone could sign in with them. Remove them with `latchkey demo remove` (with this same configuration), then start again",
        leftovers.describe()
    )
}

/// Deletes the demo rows ([`find_leftovers`]) in one transaction: the clients (their tokens,
/// codes and consents cascade) and the users (their tokens, codes, consents, sessions and group
/// memberships cascade), recorded as one `demo.removed` audit event by `actor`. A user whose
/// password changed between the check and the transaction is kept (with their clients). The
/// clients to delete are read inside the transaction, so one a demo user registered meanwhile
/// goes too. Returns what was removed.
///
/// # Errors
/// Storage failures; nothing is removed then.
pub async fn remove(services: &Services, actor: &Actor) -> anyhow::Result<Leftovers> {
    let found = find_leftovers(services)
        .await
        .context("cannot look for the demo accounts")?;
    if found.is_empty() {
        return Ok(found);
    }
    let actor = actor.clone();
    let removed = services
        .db
        .write(move |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let mut removed = Leftovers::default();
                // The users first, read afresh: still the accounts whose published password
                // was verified? (The argon2 check is too slow for the transaction.)
                let mut users_to_remove = Vec::new();
                for user in &found.users {
                    // `FOR UPDATE`: a client being registered for the user commits first
                    // and is read below, or waits and then finds no owner.
                    if let Some(now) = users::lock_for_delete(conn, &user.id)? {
                        if now.password_hash == user.password_hash {
                            users_to_remove.push(user.clone());
                        }
                    }
                }
                // The clients as they are now, in this transaction: the fixed demo ids and
                // every client of a demo user. A client registered after `find_leftovers` must
                // go too, or deleting its owner would leave it behind without one — an
                // operator's client, trusted by the endpoints.
                let mut ids = Vec::new();
                for id in [CONFIDENTIAL_ID, PUBLIC_ID] {
                    if clients::find(conn, id)?.is_some() {
                        ids.push(id.to_owned());
                    }
                }
                for user in &users_to_remove {
                    ids.extend(clients::ids_owned_by(conn, &user.id)?);
                }
                ids.sort();
                ids.dedup();
                for id in ids {
                    if clients::delete(conn, &id)? {
                        removed.clients.push(id);
                    }
                }
                for user in users_to_remove {
                    crate::db::discord_connector::queue_removals_for_user(
                        conn,
                        &user.id,
                        crate::db::now(),
                    )?;
                    if users::delete(conn, &user.id)? {
                        removed.users.push(user);
                    }
                }
                let names: Vec<&str> = removed.users.iter().map(|u| u.username.as_str()).collect();
                audit::record(
                    conn,
                    AuditEvent::new("demo.removed")
                        .by(&actor)
                        .detail("users", names)
                        .detail("clients", removed.clients.clone()),
                )?;
                Ok(removed)
            })
            .map_err(DbError::from)
        })
        .await
        .context("cannot remove the demo accounts")?;
    Ok(removed)
}
