//! Minting and revoking tokens at the same time (issue 9, item 12): refresh, code exchange and
//! password grant against the revocation endpoint, `/api/logout/`, sign out everywhere,
//! password reset, deactivation, the console's token revocation and revoking an application.
//!
//! On PostgreSQL (READ COMMITTED) a revocation's `UPDATE` does not see tokens that a refresh
//! inserts and commits after the statement began, so without the per-user row lock a refresh
//! committing during a revocation left its new tokens alive. Each test here runs a refresh and
//! one revoking operation concurrently, round after round, with the two requests' start times
//! swept against each other over a few milliseconds, and then asks the introspection endpoint
//! about every token of the grant: none may be active, and neither request may fail with a 5xx
//! (a deadlock would). The rounds are bounded, and the assertions hold for any interleaving, so
//! a loaded machine can only make a race less likely to be exercised, never make a test fail.
//! On SQLite (one writer) the same tests run and pass without exercising anything new.

use std::time::Duration;

use base64::Engine;
use latchkey::accounts::links::{encode_uid, LinkPurpose, LinkSigner};
use latchkey::db::tokens;
use reqwest::StatusCode;

use latchkey::accounts::sessions::{session_id, NewSession};
use latchkey::audit::Actor;
use latchkey::oauth::authorize::{AuthorizeOutcome, Decision};
use latchkey::oauth::Params;
use latchkey::oidc::Authentication;
use secrecy::SecretString;

use crate::helpers::{
    pkce_pair, query_param, spawn_app, spec, TestApp, Visitor, PASSWORD, REDIRECT_URI, TEST_KEY,
};

/// Rounds per revoking operation.
const ROUNDS: u64 = 24;

/// The revoking operations that race a refresh, each through the way a user or client reaches
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revocation {
    /// `POST /o/revoke_token/` with the refresh token (RFC 7009: the whole grant).
    Endpoint,
    /// `POST /api/logout/` with the grant's access and refresh tokens.
    ApiLogout,
    /// "Sign out everywhere" on the account page.
    SignOutEverywhere,
    /// `POST /api/password-reset-confirm/…` with a valid link.
    PasswordReset,
    /// An administrator deactivates the user in the console.
    Deactivation,
    /// An administrator revokes the refresh token in the console's token list.
    ConsoleRevoke,
    /// The user revokes the application at `/o/authorized_tokens/`.
    AppRevoke,
}

struct Race {
    app: TestApp,
    client: (String, String),
    user_id: String,
    /// The user's browser (app revocation) or the administrator's (console operations).
    browser: Option<(Visitor, String)>,
}

struct Grant {
    access: String,
    refresh: String,
}

impl Race {
    async fn new(op: Revocation) -> Self {
        let app = spawn_app().await;
        let user = app.create_user("rae").await;
        let (client, secret) = app
            .register(&spec(
                "confidential",
                &["authorization_code", "password", "refresh_token"],
            ))
            .await;
        let client = (client.id().to_owned(), secret.expect("secret"));
        let browser = match op {
            Revocation::Deactivation | Revocation::ConsoleRevoke => {
                app.create_staff("root").await;
                let admin = app.visitor("root").await;
                let (status, html) = admin.get(&format!("/admin/users/{}/", user.id)).await;
                assert_eq!(status, StatusCode::OK);
                Some((admin, html))
            }
            Revocation::AppRevoke => {
                // The confirmation page (with the session's CSRF token) exists once the
                // application holds a token of the user.
                let (status, body) = app
                    .post_token(
                        &[
                            ("grant_type", "password"),
                            ("username", "rae"),
                            ("password", PASSWORD),
                        ],
                        Some((&client.0, &client.1)),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let visitor = app.visitor("rae").await;
                let (status, html) = visitor
                    .get(&format!("/o/authorized_tokens/{}/revoke/", client.0))
                    .await;
                assert_eq!(status, StatusCode::OK, "{html}");
                Some((visitor, html))
            }
            _ => None,
        };
        Self {
            app,
            client,
            user_id: user.id,
            browser,
        }
    }

    fn basic(&self) -> Option<(&str, &str)> {
        Some((&self.client.0, &self.client.1))
    }

    async fn password_grant(&self) -> Grant {
        let (status, body) = self
            .app
            .post_token(
                &[
                    ("grant_type", "password"),
                    ("username", "rae"),
                    ("password", PASSWORD),
                    ("scope", "profile"),
                ],
                self.basic(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Grant {
            access: body["access_token"].as_str().expect("access").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Mints tokens the way `minter` does; the new tokens when it worked. Anything but 200 or
    /// `invalid_grant` fails the test.
    async fn mint(&self, minter: &Minter) -> Option<Grant> {
        let (status, body) = match minter {
            Minter::Refresh(refresh) => {
                self.app
                    .post_token(
                        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
                        self.basic(),
                    )
                    .await
            }
            Minter::PasswordGrant => {
                self.app
                    .post_token(
                        &[
                            ("grant_type", "password"),
                            ("username", "rae"),
                            ("password", PASSWORD),
                            ("scope", "profile offline_access"),
                        ],
                        self.basic(),
                    )
                    .await
            }
            Minter::CodeExchange { code, verifier } => {
                self.app
                    .post_token(
                        &[
                            ("grant_type", "authorization_code"),
                            ("code", code),
                            ("redirect_uri", REDIRECT_URI),
                            ("code_verifier", verifier),
                        ],
                        self.basic(),
                    )
                    .await
            }
        };
        match status {
            StatusCode::OK => Some(Grant {
                access: body["access_token"].as_str().expect("access").to_owned(),
                refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
            }),
            StatusCode::BAD_REQUEST => {
                assert_eq!(body["error"], "invalid_grant", "{body}");
                None
            }
            other => panic!("the refresh failed with {other}: {body}"),
        }
    }

    async fn active(&self, token: &str) -> bool {
        let (status, body) = self
            .app
            .post_oauth("/o/introspect/", &[("token", token)], self.basic())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["active"].as_bool().expect("active")
    }

    /// Whatever the operation needs that is not part of the race: a signed-in browser and its
    /// form, a reset link, a token row id.
    async fn prepare(&self, op: Revocation, grant: &Grant) -> Prepared {
        match op {
            Revocation::SignOutEverywhere => {
                let visitor = self.app.visitor("rae").await;
                let (status, html) = visitor.get("/account/sessions/end/").await;
                assert_eq!(status, StatusCode::OK, "{html}");
                Prepared::Browser(visitor, html)
            }
            Revocation::PasswordReset => {
                let user = self.app.stored_user(&self.user_id).await;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(TEST_KEY)
                    .expect("test key");
                let token = LinkSigner::new(&key).make(
                    LinkPurpose::PasswordReset,
                    &user,
                    chrono::Utc::now(),
                );
                Prepared::Path(format!(
                    "/api/password-reset-confirm/{}/{token}/",
                    encode_uid(&user.id)
                ))
            }
            Revocation::ConsoleRevoke => {
                let hash = latchkey::secret::sha256_hex(&grant.refresh);
                let row = self
                    .app
                    .services
                    .db
                    .read(move |conn| {
                        tokens::find_by_hash(conn, &hash, None).map_err(latchkey::db::DbError::from)
                    })
                    .await
                    .expect("read token")
                    .expect("token row");
                Prepared::Path(row.id)
            }
            _ => Prepared::Nothing,
        }
    }

    /// Runs the revoking operation; it must succeed.
    async fn revoke(&self, op: Revocation, grant: &Grant, prepared: &Prepared) {
        let status = match (op, prepared) {
            (Revocation::Endpoint, _) => {
                self.app
                    .post_oauth(
                        "/o/revoke_token/",
                        &[("token", &grant.refresh)],
                        self.basic(),
                    )
                    .await
                    .0
            }
            (Revocation::ApiLogout, _) => self
                .app
                .api
                .post(self.app.url("/api/logout/"))
                .bearer_auth(&grant.access)
                .json(&serde_json::json!({ "refresh_token": grant.refresh }))
                .send()
                .await
                .expect("POST /api/logout/")
                .status(),
            (Revocation::SignOutEverywhere, Prepared::Browser(visitor, html)) => visitor
                .post_with_csrf_of(html, "/account/sessions/end/", &[])
                .await
                .status(),
            (Revocation::PasswordReset, Prepared::Path(path)) => self
                .app
                .api
                .post(self.app.url(path))
                .json(&serde_json::json!({
                    "password": PASSWORD,
                    "confirm_password": PASSWORD,
                }))
                .send()
                .await
                .expect("POST reset")
                .status(),
            (Revocation::Deactivation, _) => {
                let (admin, html) = self.browser.as_ref().expect("admin browser");
                admin
                    .post_with_csrf_of(
                        html,
                        &format!("/admin/users/{}/flags/", self.user_id),
                        &[("confirm", "yes")],
                    )
                    .await
                    .status()
            }
            (Revocation::ConsoleRevoke, Prepared::Path(id)) => {
                let (admin, html) = self.browser.as_ref().expect("admin browser");
                let field = format!("token:{id}");
                admin
                    .post_with_csrf_of(
                        html,
                        "/admin/tokens/revoke/",
                        &[(field.as_str(), "on"), ("confirm", "yes")],
                    )
                    .await
                    .status()
            }
            (Revocation::AppRevoke, _) => {
                let (visitor, html) = self.browser.as_ref().expect("user browser");
                visitor
                    .post_with_csrf_of(
                        html,
                        &format!("/o/authorized_tokens/{}/revoke/", self.client.0),
                        &[],
                    )
                    .await
                    .status()
            }
            (op, _) => unreachable!("{op:?} was not prepared"),
        };
        assert!(
            status == StatusCode::OK || status == StatusCode::SEE_OTHER,
            "{op:?} answered {status}"
        );
    }

    /// Undoes what the operation changed beyond the tokens, for the next round.
    async fn restore(&self, op: Revocation) {
        if op == Revocation::Deactivation {
            let (admin, html) = self.browser.as_ref().expect("admin browser");
            let response = admin
                .post_with_csrf_of(
                    html,
                    &format!("/admin/users/{}/flags/", self.user_id),
                    &[("is_active", "on")],
                )
                .await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "reactivated");
        }
    }
}

/// How the racing tokens are minted.
enum Minter {
    /// The refresh token of the round's grant.
    Refresh(String),
    /// A new password grant.
    PasswordGrant,
    /// An authorization code obtained through the browser just before.
    CodeExchange { code: String, verifier: String },
}

enum Prepared {
    Nothing,
    Browser(Visitor, String),
    Path(String),
}

/// How a round's tokens are minted while `op` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MintBy {
    Refresh,
    PasswordGrant,
    CodeExchange,
}

/// Runs [`ROUNDS`] rounds of "refresh ∥ `op`" and checks that no token of the grant survives.
async fn race(op: Revocation) {
    race_with(op, MintBy::Refresh).await;
}

/// Runs [`ROUNDS`] rounds of "mint ∥ `op`" and checks that no token minted survives.
async fn race_with(op: Revocation, mint_by: MintBy) {
    let race = Race::new(op).await;
    let mut refreshed_ok = 0;
    for round in 0..ROUNDS {
        let grant = race.password_grant().await;
        let minter = match mint_by {
            MintBy::Refresh => Minter::Refresh(grant.refresh.clone()),
            MintBy::PasswordGrant => Minter::PasswordGrant,
            MintBy::CodeExchange => {
                let (code, verifier) = race
                    .app
                    .code_for(&race.client.0, "rae", "profile offline_access")
                    .await;
                Minter::CodeExchange { code, verifier }
            }
        };
        let prepared = race.prepare(op, &grant).await;
        // Sweep the start of one request against the other: 0–3 ms, either side first. A
        // password grant checks the password (argon2) before its transaction, so the
        // revocation is swept over a longer time after it starts.
        let (delay, refresh_first) = match mint_by {
            MintBy::PasswordGrant => (Duration::from_millis(round % 12), true),
            _ => (Duration::from_millis(round % 4), round % 8 < 4),
        };
        let (refreshed, ()) = tokio::join!(
            async {
                if !refresh_first {
                    tokio::time::sleep(delay).await;
                }
                race.mint(&minter).await
            },
            async {
                if refresh_first {
                    tokio::time::sleep(delay).await;
                }
                race.revoke(op, &grant, &prepared).await;
            },
        );
        // Restored first: reactivating a deactivated user must not revive a token either.
        race.restore(op).await;
        let mut tokens = vec![grant.access.clone(), grant.refresh.clone()];
        if let Some(new) = &refreshed {
            refreshed_ok += 1;
            tokens.push(new.access.clone());
            tokens.push(new.refresh.clone());
        }
        for (i, token) in tokens.iter().enumerate() {
            assert!(
                !race.active(token).await,
                "{mint_by:?} ∥ {op:?}, round {round}: token {i} is still active after the \
                 revocation (0/1: the round's first access/refresh token, 2/3: the minted ones)"
            );
        }
    }
    eprintln!(
        "{mint_by:?} ∥ {op:?} on {}: {refreshed_ok} of {ROUNDS} mints succeeded before or \
         during the revocation",
        race.app.backend
    );
}

#[tokio::test]
async fn a_refresh_racing_the_revocation_endpoint_leaves_no_live_token() {
    race(Revocation::Endpoint).await;
}

#[tokio::test]
async fn a_refresh_racing_an_api_logout_leaves_no_live_token() {
    race(Revocation::ApiLogout).await;
}

#[tokio::test]
async fn a_refresh_racing_sign_out_everywhere_leaves_no_live_token() {
    race(Revocation::SignOutEverywhere).await;
}

#[tokio::test]
async fn a_refresh_racing_a_password_reset_leaves_no_live_token() {
    race(Revocation::PasswordReset).await;
}

#[tokio::test]
async fn a_refresh_racing_a_deactivation_leaves_no_live_token() {
    race(Revocation::Deactivation).await;
}

#[tokio::test]
async fn a_refresh_racing_a_console_revocation_leaves_no_live_token() {
    race(Revocation::ConsoleRevoke).await;
}

#[tokio::test]
async fn a_refresh_racing_an_application_revocation_leaves_no_live_token() {
    race(Revocation::AppRevoke).await;
}

#[tokio::test]
async fn a_password_grant_racing_a_deactivation_leaves_no_live_token() {
    race_with(Revocation::Deactivation, MintBy::PasswordGrant).await;
}

#[tokio::test]
async fn a_code_exchange_racing_sign_out_everywhere_leaves_no_live_token() {
    race_with(Revocation::SignOutEverywhere, MintBy::CodeExchange).await;
}

/// The authorization endpoint checks the session before it issues a code, so a code can be
/// issued just before "sign out everywhere" commits and escape its deletion of unused codes.
/// Such a code buys nothing: the exchange refuses codes issued before the user's sessions were
/// ended. Shown here with a password change, which ends the other sessions but keeps this
/// browser's and leaves codes alone; a code issued after it still works.
#[tokio::test]
async fn a_code_issued_before_the_sessions_were_ended_buys_no_tokens() {
    let app = spawn_app().await;
    app.create_user("rae").await;
    let (client, secret) = app
        .register(&spec("confidential", &["authorization_code"]))
        .await;
    let secret = secret.expect("secret");
    let exchange = |code: String, verifier: String| {
        let app = &app;
        let basic = Some((client.id(), secret.as_str()));
        async move {
            app.post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ],
                basic,
            )
            .await
        }
    };
    let (code, verifier) = app.code_for(client.id(), "rae", "profile").await;

    let page = app.browse("/account/").await;
    let csrf = crate::helpers::csrf_from(&page.text().await.expect("html"));
    let changed = app
        .browser
        .post(app.url("/account/password/"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("current_password", PASSWORD),
            ("new_password", "another long passphrase"),
            ("confirm_password", "another long passphrase"),
        ])
        .send()
        .await
        .expect("change password");
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);

    let (status, body) = exchange(code, verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    // This browser stayed signed in; a code it gets now works.
    let (code, verifier) = app.code_for(client.id(), "rae", "profile").await;
    let (status, body) = exchange(code, verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Logins and authorizations in flight (review findings 1 and 9): one that began before a
// password change, reset, "sign out everywhere" or app revocation never yields live
// credentials after it. These drive the services step by step, so the interleaving that used
// to leak is exercised every time, on both databases.

const NEW_PASSWORD: &str = "a different horse, battery and staple";

/// A user, a confidential client that may use the password and code grants, and the services.
async fn in_flight_setup() -> (TestApp, latchkey::accounts::Account, InFlightClient) {
    let app = spawn_app().await;
    let user = app.create_user("rae").await;
    let (client, secret) = app
        .register(&spec(
            "confidential",
            &["authorization_code", "password", "refresh_token"],
        ))
        .await;
    let secret = secret.expect("secret");
    (app, user, InFlightClient { client, secret })
}

/// The client of [`in_flight_setup`] and its secret.
struct InFlightClient {
    client: latchkey::clients::Client,
    secret: String,
}

impl InFlightClient {
    fn id(&self) -> &str {
        self.client.id()
    }

    fn basic(&self) -> Option<(&str, &str)> {
        Some((self.client.id(), &self.secret))
    }
}

async fn check_login(app: &TestApp, password: &str) -> latchkey::accounts::PasswordLogin {
    app.services
        .accounts
        .check_login("rae", SecretString::from(password.to_owned()), None)
        .await
        .expect("the password is right")
}

async fn change_password(app: &TestApp, user_id: &str) {
    app.services
        .accounts
        .change_password(
            &Actor::user(user_id, None),
            user_id,
            SecretString::from(PASSWORD),
            SecretString::from(NEW_PASSWORD),
            false,
        )
        .await
        .expect("password changed");
}

async fn reset_password(app: &TestApp, user_id: &str) {
    let user = app.stored_user(user_id).await;
    let key = base64::engine::general_purpose::STANDARD
        .decode(TEST_KEY)
        .expect("test key");
    let token = LinkSigner::new(&key).make(LinkPurpose::PasswordReset, &user, chrono::Utc::now());
    app.services
        .accounts
        .reset_password(
            &encode_uid(&user.id),
            &token,
            SecretString::from(NEW_PASSWORD),
            None,
        )
        .await
        .expect("password reset");
}

async fn sign_out_everywhere(app: &TestApp, user_id: &str) {
    app.services
        .accounts
        .end_sessions_and_tokens(&Actor::user(user_id, None), user_id)
        .await
        .expect("signed out everywhere");
}

/// The password grant's issuing step for `login`: the error code when refused.
async fn password_grant_for(
    app: &TestApp,
    client: &InFlightClient,
    login: latchkey::accounts::PasswordLogin,
) -> Result<(), latchkey::oauth::ErrorCode> {
    app.services
        .oauth
        .issue_for_password_login(client.client.clone(), Params::default(), login)
        .await
        .map(|_| ())
        .map_err(|e| e.code)
}

#[tokio::test]
async fn a_password_grant_checked_before_a_password_change_gets_no_tokens() {
    let (app, user, client) = in_flight_setup().await;
    // The password is verified against the hash read first…
    let login = check_login(&app, PASSWORD).await;
    // …the owner changes it meanwhile…
    change_password(&app, &user.id).await;
    // …and the grant, continuing, is refused as a wrong password would be (RFC 6749 §5.2).
    assert_eq!(
        password_grant_for(&app, &client, login).await,
        Err(latchkey::oauth::ErrorCode::InvalidGrant)
    );
    // The same over HTTP with the old password, and a login with the new one works.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "rae"),
                ("password", PASSWORD),
            ],
            client.basic(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let login = check_login(&app, NEW_PASSWORD).await;
    assert_eq!(password_grant_for(&app, &client, login).await, Ok(()));
}

#[tokio::test]
async fn a_password_grant_checked_before_a_reset_or_sign_out_everywhere_gets_no_tokens() {
    let (app, user, client) = in_flight_setup().await;
    let login = check_login(&app, PASSWORD).await;
    sign_out_everywhere(&app, &user.id).await;
    assert_eq!(
        password_grant_for(&app, &client, login).await,
        Err(latchkey::oauth::ErrorCode::InvalidGrant)
    );
    let login = check_login(&app, PASSWORD).await;
    reset_password(&app, &user.id).await;
    assert_eq!(
        password_grant_for(&app, &client, login).await,
        Err(latchkey::oauth::ErrorCode::InvalidGrant)
    );
    // A login that began after both is not affected.
    let login = check_login(&app, NEW_PASSWORD).await;
    assert_eq!(password_grant_for(&app, &client, login).await, Ok(()));
}

/// Records a browser session for `login` the way the hosted login page does.
async fn start_session(
    app: &TestApp,
    login: &latchkey::accounts::PasswordLogin,
    verified_hash: bool,
) -> Option<String> {
    app.services
        .accounts
        .start_browser_session(
            NewSession {
                user_id: login.user().id.clone(),
                ip: None,
                user_agent: "test".into(),
                amr: "pwd".into(),
                began: Some(login.began),
                verified_hash: if verified_hash {
                    login.verified_hash()
                } else {
                    None
                },
                idp: None,
            },
            None,
        )
        .await
        .expect("storage")
}

#[tokio::test]
async fn a_hosted_login_checked_before_a_password_reset_gets_no_session() {
    let (app, user, _) = in_flight_setup().await;
    // The password check begins, the owner resets the password, then the session would be
    // recorded: with the hash compared (the login page) and without (after a login code).
    let login = check_login(&app, PASSWORD).await;
    reset_password(&app, &user.id).await;
    assert_eq!(start_session(&app, &login, true).await, None);
    assert_eq!(start_session(&app, &login, false).await, None);
    // Sign out everywhere likewise.
    let login = check_login(&app, NEW_PASSWORD).await;
    sign_out_everywhere(&app, &user.id).await;
    assert_eq!(start_session(&app, &login, false).await, None);
    // A login after the reset gets a live session.
    let login = check_login(&app, NEW_PASSWORD).await;
    let handle = start_session(&app, &login, true)
        .await
        .expect("a session for a login after the reset");
    let live = app
        .services
        .accounts
        .browser_session_user(&handle, &user.id)
        .await
        .expect("storage");
    assert!(live.is_some());
}

/// A signed-in browser's login as the authorization endpoint sees it when the request arrives.
async fn browser_login(app: &TestApp, user_id: &str) -> Authentication {
    let login = check_login(app, PASSWORD).await;
    let handle = start_session(app, &login, true).await.expect("session");
    let user = app
        .services
        .accounts
        .browser_session_user(&handle, user_id)
        .await
        .expect("storage")
        .expect("the session is live");
    Authentication {
        user,
        auth_time: latchkey::db::now(),
        amr: "pwd".into(),
        idp: None,
        nonce: None,
        session_id: Some(session_id(&handle)),
    }
}

fn authorize_query(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let mut url = url::Url::parse(&app.authorize_url(client_id, "profile", &challenge, "st4te"))
        .expect("url");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    (url.query().expect("query").to_owned(), verifier)
}

async fn exchange(
    app: &TestApp,
    client: &InFlightClient,
    code: &str,
    verifier: &str,
) -> StatusCode {
    let (status, _) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
            client.basic(),
        )
        .await;
    status
}

#[tokio::test]
async fn an_authorization_checked_before_sign_out_everywhere_issues_no_code() {
    let (app, user, client) = in_flight_setup().await;
    let oauth = &app.services.oauth;
    let login = browser_login(&app, &user.id).await;
    // The session was checked when the request arrived; the user signs out everywhere before
    // the code is issued.
    sign_out_everywhere(&app, &user.id).await;
    let (query, _) = authorize_query(&app, client.id(), &[]);
    let outcome = oauth
        .authorize(&query, Some(&login), Some(Decision::Allow), None)
        .await
        .expect("storage");
    assert!(
        matches!(outcome, AuthorizeOutcome::Login { .. }),
        "sent to log in again: {outcome:?}"
    );
    // OIDC Core §3.1.2.6: prompt=none answers login_required instead.
    let login = browser_login(&app, &user.id).await;
    let (query, _) = authorize_query(&app, client.id(), &[]);
    let outcome = oauth
        .authorize(&query, Some(&login), Some(Decision::Allow), None)
        .await
        .expect("storage");
    assert!(matches!(outcome, AuthorizeOutcome::Redirect(ref l) if l.contains("code=")));
    change_password(&app, &user.id).await;
    let (query, _) = authorize_query(&app, client.id(), &[("prompt", "none")]);
    let outcome = oauth
        .authorize(&query, Some(&login), None, None)
        .await
        .expect("storage");
    match outcome {
        AuthorizeOutcome::Redirect(location) => {
            assert_eq!(
                query_param(&location, "error").as_deref(),
                Some("login_required"),
                "{location}"
            );
        }
        other => panic!("expected a login_required redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn an_authorization_racing_an_application_revocation_leaves_no_usable_code() {
    let (app, user, client) = in_flight_setup().await;
    // Consent remembered: the request issues a code without asking.
    let login = browser_login(&app, &user.id).await;
    let (query, verifier) = authorize_query(&app, client.id(), &[]);
    let outcome = app
        .services
        .oauth
        .authorize(&query, Some(&login), Some(Decision::Allow), None)
        .await
        .expect("storage");
    let AuthorizeOutcome::Redirect(first) = outcome else {
        panic!("a code: {outcome:?}");
    };
    // A code issued before the revocation dies with it.
    app.services
        .oauth
        .revoke_authorization(&Actor::user(user.id.clone(), None), &user.id, client.id())
        .await
        .expect("revoked");
    let code = query_param(&first, "code").expect("code");
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await,
        StatusCode::BAD_REQUEST
    );
    // Then round after round, a request relying on the remembered consent races the
    // revocation: whichever order they run in, no code that comes out of it still works.
    for round in 0..ROUNDS {
        app.services
            .oauth
            .authorize(&query, Some(&login), Some(Decision::Allow), None)
            .await
            .expect("storage");
        let (query, verifier) = authorize_query(&app, client.id(), &[]);
        let oauth = app.services.oauth.clone();
        let pending_login = login.clone();
        let request = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(round * 250)).await;
            oauth
                .authorize(&query, Some(&pending_login), None, None)
                .await
                .expect("storage")
        });
        app.services
            .oauth
            .revoke_authorization(&Actor::user(user.id.clone(), None), &user.id, client.id())
            .await
            .expect("revoked");
        if let AuthorizeOutcome::Redirect(location) = request.await.expect("joined") {
            if let Some(code) = query_param(&location, "code") {
                assert_eq!(
                    exchange(&app, &client, &code, &verifier).await,
                    StatusCode::BAD_REQUEST,
                    "round {round}: a code outlived the revocation"
                );
            }
        }
    }
}

/// The password grant with an emailed code (the mfa-otp grant): a login whose password check
/// began before "sign out everywhere" or a reset, but whose code was issued after it, gets no
/// tokens when the code comes back — the code counts as created when the check began.
#[tokio::test]
async fn an_emailed_code_login_checked_before_a_sign_out_everywhere_gets_no_tokens() {
    const MFA_OTP: &str = "urn:latchkey:params:oauth:grant-type:mfa-otp";
    let (app, user, client) = in_flight_setup().await;
    for change in ["sign out everywhere", "reset"] {
        // The password is verified…
        let login = check_login(&app, PASSWORD).await;
        // …the owner signs out everywhere (or resets the password) meanwhile…
        if change == "reset" {
            reset_password(&app, &user.id).await;
        } else {
            sign_out_everywhere(&app, &user.id).await;
        }
        // …and only then is the code challenge made (the grant's next step) and emailed.
        let challenge = app
            .services
            .accounts
            .start_login_challenge(
                login.user(),
                login.began,
                None,
                latchkey::accounts::login_code::ChallengeFor::Client {
                    client_id: client.id().to_owned(),
                    scope: String::new(),
                },
            )
            .await
            .expect("no cooldown");
        // The newest email with a code (a password-change notice may arrive after it).
        let code = app
            .emails_to(&user.email)
            .iter()
            .rev()
            .find(|email| email.subject == "Your sign-in code")
            .and_then(|email| email.code())
            .expect("a code in the email");
        let (status, body) = app
            .post_token(
                &[
                    ("grant_type", MFA_OTP),
                    ("mfa_token", challenge.handle.as_str()),
                    ("otp", code.as_str()),
                ],
                client.basic(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{change}: {body}");
        assert!(body.get("access_token").is_none());
        if change == "reset" {
            break;
        }
        // The next challenge waits for the resend cooldown: start from a clean slate.
        app.services
            .db
            .write(|conn| {
                use diesel::prelude::*;
                diesel::delete(latchkey::db::schema::one_time_codes::table)
                    .execute(conn)
                    .map_err(latchkey::db::DbError::from)
            })
            .await
            .expect("codes cleared");
    }
}
