//! Browser sessions recorded server-side (listed and ended on the account page, ended by
//! logout, on every node since the only state is the row) and the logout API
//! (`POST /api/logout/`, `POST /api/logout_all/`).

use std::sync::Arc;

use diesel::prelude::*;
use latchkey::db::schema::user_sessions;
use latchkey::db::user_sessions::SessionRow;
use reqwest::cookie::CookieStore;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{csrf_from, location, spawn_app, spec, TestApp, PASSWORD};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// A browser with its own cookie jar (which the test can copy) and `User-Agent`.
struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    address: String,
}

impl Browser {
    fn new(app: &TestApp, agent: &str) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .user_agent(agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser client");
        Self {
            client,
            jar,
            address: app.address.clone(),
        }
    }

    /// A new browser signed in as `username`.
    async fn signed_in_as(app: &TestApp, username: &str, agent: &str) -> Self {
        let browser = Self::new(app, agent);
        let response = browser
            .submit(
                "/accounts/login/",
                "/accounts/login/",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login");
        browser
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("POST")
    }

    /// Opens `page`, takes its CSRF token, and posts `fields` to `action`.
    async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let (status, html) = self.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
        let csrf = csrf_from(&html);
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    /// The `Cookie` header this browser sends now.
    fn cookie(&self) -> String {
        let url = url::Url::parse(&self.address).expect("url");
        self.jar
            .cookies(&url)
            .expect("a session cookie")
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    async fn signed_in(&self) -> bool {
        signed_in_with(&self.client, &self.url("/account/"), None).await
    }
}

/// Whether `/account/` opens for `client` (with `cookie` as its `Cookie` header when given).
async fn signed_in_with(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> bool {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header(reqwest::header::COOKIE, cookie);
    }
    let response = request.send().await.expect("GET /account/");
    match response.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => false,
        other => panic!("unexpected answer from /account/: {other}"),
    }
}

/// Every session row of the user, live or ended, oldest first.
async fn rows(app: &TestApp, user_id: &str) -> Vec<SessionRow> {
    let id = user_id.to_owned();
    app.services
        .db
        .read(move |conn| {
            user_sessions::table
                .filter(user_sessions::user_id.eq(&id))
                .order(user_sessions::created_at.asc())
                .select(SessionRow::as_select())
                .load(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("session rows")
}

/// The row of the user's session whose browser sent `agent`.
async fn row_of(app: &TestApp, user_id: &str, agent: &str) -> SessionRow {
    let mut found: Vec<SessionRow> = rows(app, user_id)
        .await
        .into_iter()
        .filter(|r| r.user_agent == agent)
        .collect();
    assert_eq!(found.len(), 1, "one session of {agent}");
    found.remove(0)
}

#[tokio::test]
async fn logins_are_recorded_with_address_and_browser_and_listed_on_the_account_page() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let long_agent = format!("{FIREFOX} {}", "x".repeat(600));
    let here = Browser::signed_in_as(&app, "ann", &long_agent).await;
    let phone = Browser::signed_in_as(&app, "ann", SAFARI).await;

    let stored = rows(&app, &ann.id).await;
    assert_eq!(stored.len(), 2);
    let first = &stored[0];
    assert_eq!(first.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        first.user_agent.chars().count(),
        255,
        "cut to 255 characters"
    );
    assert!(first.user_agent.starts_with(FIREFOX));
    assert_eq!(first.amr, "pwd");
    assert!(first.ended_at.is_none());
    assert_eq!(
        first.id.len(),
        64,
        "the row id is a SHA-256, not the cookie's handle"
    );
    assert!(
        !here.cookie().contains(&first.id),
        "the cookie does not carry the row id in the clear"
    );

    let (status, html) = here.get("/account/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<h2 id="sessions">Sessions</h2>"#),
        "{html}"
    );
    assert!(html.contains("Firefox on Linux"), "{html}");
    assert!(html.contains("Safari on iPhone"), "{html}");
    assert!(html.contains("127.0.0.1"));
    assert_eq!(html.matches("this browser</span>").count(), 1);
    // The other session has an End button, this one does not.
    let phone_row = row_of(&app, &ann.id, SAFARI).await;
    assert!(html.contains(&format!(
        r#"action="/account/sessions/{}/end/""#,
        phone_row.id
    )));
    assert!(!html.contains(&format!("/account/sessions/{}/end/", first.id)));
    assert!(html.contains(r#"action="/account/sessions/end_others/""#));
    // The phone sees the same two sessions, and itself as "this browser".
    let (_, phone_html) = phone.get("/account/").await;
    let marker = phone_html.find("this browser</span>").expect("marker");
    let safari = phone_html.find("Safari on iPhone").expect("listed");
    assert!(safari < marker, "the marker is on the phone's own row");
}

#[tokio::test]
async fn ending_one_session_signs_out_that_browser_only() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let phone = Browser::signed_in_as(&app, "ann", SAFARI).await;
    let office = Browser::signed_in_as(&app, "ann", CHROME).await;
    let bob = Browser::signed_in_as(&app, "bob", FIREFOX).await;
    let phone_id = row_of(&app, &ann.id, SAFARI).await.id;
    let office_id = row_of(&app, &ann.id, CHROME).await.id;
    let end_phone = format!("/account/sessions/{phone_id}/end/");

    // A GET changes nothing; neither does a POST without the CSRF token.
    let response = here
        .client
        .get(here.url(&end_phone))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = here.post(&end_phone, &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(phone.signed_in().await);

    // Another user cannot end Ann's session: it does not exist for them.
    let response = bob
        .submit(
            "/account/",
            &format!("/account/sessions/{office_id}/end/"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(office.signed_in().await);
    let response = bob
        .submit("/account/", "/account/sessions/not-a-session/end/", &[])
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = here.submit("/account/", &end_phone, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account/#sessions");
    let (_, html) = here.get("/account/").await;
    assert!(html.contains("The session was ended."), "{html}");
    assert!(!phone.signed_in().await, "the ended session is signed out");
    assert!(here.signed_in().await);
    assert!(office.signed_in().await, "the other sessions go on");
    assert!(bob.signed_in().await);
    assert!(
        !html.contains("Safari on iPhone"),
        "an ended session is not listed"
    );
    let ended = row_of(&app, &ann.id, SAFARI).await;
    assert!(ended.ended_at.is_some());

    // Ending it again: it is gone.
    let response = here.submit("/account/", &end_phone, &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let events = app.audit_events("session.ended").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
    assert_eq!(events[0].user_id.as_deref(), Some(ann.id.as_str()));

    // Signing in again in the phone works as ever.
    let phone = Browser::signed_in_as(&app, "ann", SAFARI).await;
    assert!(phone.signed_in().await);
}

#[tokio::test]
async fn ending_this_browsers_own_session_signs_it_out() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let id = row_of(&app, &ann.id, FIREFOX).await.id;
    let response = here
        .submit("/account/", &format!("/account/sessions/{id}/end/"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/login/");
    assert!(!here.signed_in().await);
}

#[tokio::test]
async fn ending_all_other_sessions_keeps_this_one() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let phone = Browser::signed_in_as(&app, "ann", SAFARI).await;
    let office = Browser::signed_in_as(&app, "ann", CHROME).await;
    let bob = Browser::signed_in_as(&app, "bob", CHROME).await;

    let response = here
        .submit("/account/", "/account/sessions/end_others/", &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, html) = here.get("/account/").await;
    assert!(html.contains("2 other sessions were ended."), "{html}");
    assert!(here.signed_in().await);
    assert!(!phone.signed_in().await);
    assert!(!office.signed_in().await);
    assert!(bob.signed_in().await, "other users are not affected");
    assert!(!html.contains("Safari on iPhone") && !html.contains("Chrome on Windows"));
    assert!(!html.contains("/account/sessions/end_others/"));
    let live: Vec<_> = rows(&app, &ann.id)
        .await
        .into_iter()
        .filter(|r| r.ended_at.is_none())
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].user_agent, FIREFOX);
    let events = app.audit_events("session.ended").await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].details.contains(r#""sessions_ended":2"#),
        "{}",
        events[0].details
    );
}

#[tokio::test]
async fn logout_ends_the_session_so_a_copied_cookie_stops_working() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let (_, html) = here.get("/account/").await;
    // A copy of the cookie, as someone who stole it would keep.
    let copied = here.cookie();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    assert!(signed_in_with(&plain, &here.url("/account/"), Some(&copied)).await);

    let csrf = csrf_from(&html);
    let response = here
        .post("/accounts/logout/", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!here.signed_in().await);
    assert!(
        !signed_in_with(&plain, &here.url("/account/"), Some(&copied)).await,
        "the session ended on the server, not just in this browser"
    );
    let row = row_of(&app, &ann.id, FIREFOX).await;
    assert!(row.ended_at.is_some());
    assert_eq!(app.audit_events("logout").await.len(), 1);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let copied = here.cookie();
    // Without an id_token_hint the user confirms.
    let (status, html) = here.get("/o/logout/").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = csrf_from(&html);
    let response = here
        .post(
            "/o/logout/",
            &[("csrf_token", csrf.as_str()), ("confirm", "yes")],
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    assert!(!here.signed_in().await);
    assert!(!signed_in_with(&here.client, &here.url("/account/"), Some(&copied)).await);
    assert!(row_of(&app, &ann.id, FIREFOX).await.ended_at.is_some());
}

/// Sets the session's `last_seen_at` to `seconds_ago`; returns the time set.
async fn set_last_seen(app: &TestApp, id: &str, seconds_ago: i64) -> chrono::NaiveDateTime {
    let id = id.to_owned();
    let at = latchkey::db::now() - chrono::TimeDelta::seconds(seconds_ago);
    app.services
        .db
        .write(move |conn| {
            diesel::update(user_sessions::table.find(&id))
                .set(user_sessions::last_seen_at.eq(at))
                .execute(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("set last_seen_at");
    at
}

#[tokio::test]
async fn last_seen_is_refreshed_at_most_once_a_minute() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let id = row_of(&app, &ann.id, FIREFOX).await.id;
    let set_last_seen = |seconds_ago: i64| set_last_seen(&app, &id, seconds_ago);

    // Seen 30 seconds ago: a request does not write.
    let recent = set_last_seen(30).await;
    assert!(here.signed_in().await);
    assert_eq!(row_of(&app, &ann.id, FIREFOX).await.last_seen_at, recent);

    // Seen two minutes ago: the next request refreshes it, the one after does not.
    let stale = set_last_seen(120).await;
    assert!(here.signed_in().await);
    let refreshed = row_of(&app, &ann.id, FIREFOX).await.last_seen_at;
    assert!(
        refreshed > stale + chrono::TimeDelta::seconds(100),
        "{refreshed} vs {stale}"
    );
    assert!(here.signed_in().await);
    assert_eq!(row_of(&app, &ann.id, FIREFOX).await.last_seen_at, refreshed);
}

#[tokio::test]
async fn a_password_change_keeps_this_session_listed_and_ends_the_others() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let phone = Browser::signed_in_as(&app, "ann", SAFARI).await;
    let new_password = "a brand new passphrase";
    let response = here
        .submit(
            "/account/",
            "/account/password/",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(here.signed_in().await);
    assert!(!phone.signed_in().await);

    // A browser that signs in afterwards sees the kept session, not the ended one.
    let office = Browser::new(&app, CHROME);
    let response = office
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[
                ("username", "ann"),
                ("password", new_password),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, html) = office.get("/account/").await;
    assert!(html.contains("Firefox on Linux"), "{html}");
    assert!(!html.contains("Safari on iPhone"), "{html}");

    // "Sign out everywhere" still ends the kept session, and marks every row ended.
    let response = office
        .submit("/account/sessions/end/", "/account/sessions/end/", &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!here.signed_in().await);
    assert!(!office.signed_in().await);
    assert!(rows(&app, &ann.id)
        .await
        .iter()
        .all(|r| r.ended_at.is_some()));
}

#[tokio::test]
async fn deactivation_ends_the_recorded_sessions() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    app.services
        .accounts
        .set_flags(
            &latchkey::audit::Actor::system(),
            &ann.id,
            latchkey::accounts::AccountFlags {
                is_active: false,
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("deactivate");
    assert!(!here.signed_in().await);
    assert!(rows(&app, &ann.id)
        .await
        .iter()
        .all(|r| r.ended_at.is_some()));
}

/// Tokens of one grant.
struct Grant {
    access: String,
    refresh: String,
}

/// A first-party client (`skip_authorization`, set by an operator) with the password and
/// refresh grants: (client id, secret).
async fn first_party_client(app: &TestApp) -> (String, String) {
    let mut first_party = spec("confidential", &["password", "refresh_token"]);
    first_party.skip_authorization = true;
    let (client, secret) = app.register(&first_party).await;
    (client.id().to_owned(), secret.expect("secret"))
}

async fn password_grant(app: &TestApp, client: &(String, String), username: &str) -> Grant {
    password_grant_for(app, client, username, "profile").await
}

async fn password_grant_for(
    app: &TestApp,
    client: &(String, String),
    username: &str,
    scope: &str,
) -> Grant {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
                ("scope", scope),
            ],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Grant {
        access: body["access_token"].as_str().expect("access").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

async fn introspected_active(app: &TestApp, client: &(String, String), token: &str) -> bool {
    let (status, body) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", token)],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["active"].as_bool().expect("active")
}

async fn refresh_works(app: &TestApp, client: &(String, String), refresh: &str) -> bool {
    let (status, _) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((&client.0, &client.1)),
        )
        .await;
    status == StatusCode::OK
}

async fn post_logout(
    app: &TestApp,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = app.api.post(app.url("/api/logout/"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("POST /api/logout/");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        challenge,
    )
}

#[tokio::test]
async fn api_logout_revokes_the_refresh_token_and_its_access_tokens() {
    let app = spawn_app().await;
    app.create_user("ann").await;
    let client = app.password_client(&["refresh_token"]).await;
    let first = password_grant(&app, &client, "ann").await;
    let second = password_grant(&app, &client, "ann").await;

    let (status, body, _) = post_logout(
        &app,
        Some(&first.access),
        Some(serde_json::json!({"refresh_token": first.refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({"status": "logged_out"}));
    assert!(!introspected_active(&app, &client, &first.access).await);
    assert!(!introspected_active(&app, &client, &first.refresh).await);
    assert!(!refresh_works(&app, &client, &first.refresh).await);
    // The user's other grant is untouched.
    assert!(introspected_active(&app, &client, &second.access).await);
    // The same with a form body.
    let response = app
        .api
        .post(app.url("/api/logout/"))
        .bearer_auth(&second.access)
        .form(&[("refresh_token", second.refresh.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!refresh_works(&app, &client, &second.refresh).await);
    let events = app.audit_events("token.revoked").await;
    assert_eq!(events.len(), 2);
    assert!(events[0].details.contains(r#""via":"api_logout""#));
}

#[tokio::test]
async fn api_logout_refuses_a_refresh_token_of_another_grant_and_revokes_nothing() {
    let app = spawn_app().await;
    app.create_user("ann").await;
    app.create_user("bob").await;
    let client = app.password_client(&["refresh_token"]).await;
    let other_client = app.password_client(&["refresh_token"]).await;
    let ann = password_grant(&app, &client, "ann").await;
    let ann_again = password_grant(&app, &client, "ann").await;
    let bob = password_grant(&app, &client, "bob").await;
    let ann_elsewhere = password_grant(&app, &other_client, "ann").await;

    for refresh in [
        bob.refresh.as_str(),
        ann_again.refresh.as_str(),
        ann_elsewhere.refresh.as_str(),
        "not-a-token",
        ann.access.as_str(),
    ] {
        let (status, body, _) = post_logout(
            &app,
            Some(&ann.access),
            Some(serde_json::json!({"refresh_token": refresh})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_token");
    }
    assert!(introspected_active(&app, &client, &ann.access).await);
    assert!(refresh_works(&app, &client, &bob.refresh).await);
    assert!(refresh_works(&app, &client, &ann_again.refresh).await);
    assert!(refresh_works(&app, &other_client, &ann_elsewhere.refresh).await);
    assert!(app.audit_events("token.revoked").await.is_empty());

    // Bearer problems are RFC 6750 answers.
    let (status, _, challenge) = post_logout(
        &app,
        None,
        Some(serde_json::json!({"refresh_token": ann.refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.expect("challenge").starts_with("Bearer"));
    let (status, body, challenge) = post_logout(
        &app,
        Some("unknown-token"),
        Some(serde_json::json!({"refresh_token": ann.refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
    assert!(challenge.expect("challenge").contains("invalid_token"));
    let (status, body, _) = post_logout(&app, Some(&ann.access), None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, body, _) = post_logout(&app, Some(&ann.access), Some(serde_json::json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(refresh_works(&app, &client, &ann.refresh).await);
}

#[tokio::test]
async fn api_logout_refuses_client_credentials_tokens() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let (status, body) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().expect("token");
    let (status, body, _) = post_logout(
        &app,
        Some(access),
        Some(serde_json::json!({"refresh_token": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    let response = app
        .api
        .post(app.url("/api/logout_all/"))
        .bearer_auth(access)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn api_logout_all_revokes_every_token_and_ends_every_session() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let client = first_party_client(&app).await;
    let other_client = app.password_client(&["refresh_token"]).await;
    let first = password_grant(&app, &client, "ann").await;
    let second = password_grant(&app, &other_client, "ann").await;
    let bob = password_grant(&app, &client, "bob").await;
    let here = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    let phone = Browser::signed_in_as(&app, "ann", SAFARI).await;
    let bob_browser = Browser::signed_in_as(&app, "bob", CHROME).await;

    let response = app
        .api
        .post(app.url("/api/logout_all/"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = app
        .api
        .post(app.url("/api/logout_all/"))
        .bearer_auth(&first.access)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"status": "logged_out_everywhere", "tokens_revoked": 4})
    );
    for token in [&first.access, &first.refresh] {
        assert!(!introspected_active(&app, &client, token).await);
    }
    for token in [&second.access, &second.refresh] {
        assert!(!introspected_active(&app, &other_client, token).await);
    }
    assert!(!here.signed_in().await);
    assert!(!phone.signed_in().await);
    assert!(rows(&app, &ann.id)
        .await
        .iter()
        .all(|r| r.ended_at.is_some()));
    assert!(
        bob_browser.signed_in().await,
        "other users are not affected"
    );
    assert!(introspected_active(&app, &client, &bob.access).await);
    let events = app.audit_events("user.signed_out_everywhere").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
    assert!(
        events[0].details.contains(r#""sessions_ended":2"#),
        "{}",
        events[0].details
    );

    // The revoked token cannot do it again.
    let response = app
        .api
        .post(app.url("/api/logout_all/"))
        .bearer_auth(&first.access)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_logout_all_needs_a_first_party_client_or_the_logout_all_scope() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let browser = Browser::signed_in_as(&app, "ann", FIREFOX).await;
    // Any application ann once allowed: its token works for her profile, not for this.
    let third_party = app.password_client(&["refresh_token"]).await;
    let theirs = password_grant(&app, &third_party, "ann").await;
    let first_party = first_party_client(&app).await;
    let ours = password_grant(&app, &first_party, "ann").await;
    let post = |token: String| {
        app.api
            .post(app.url("/api/logout_all/"))
            .bearer_auth(token)
            .send()
    };

    let response = post(theirs.access.clone()).await.expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="logout_all""#),
        "{challenge}"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "insufficient_scope");
    // Nothing happened.
    for (client, grant) in [(&third_party, &theirs), (&first_party, &ours)] {
        assert!(introspected_active(&app, client, &grant.access).await);
        assert!(introspected_active(&app, client, &grant.refresh).await);
    }
    assert!(browser.signed_in().await);
    assert!(app
        .audit_events("user.signed_out_everywhere")
        .await
        .is_empty());

    // The scope is never a default one, and a client allowed it by name gets it only when the
    // token asks for it.
    let (defaults, _) = app.register(&spec("confidential", &["password"])).await;
    assert!(defaults.allowed_scopes.contains("profile"));
    assert!(!defaults.allowed_scopes.contains("logout_all"));
    let mut allowed = spec("confidential", &["password", "refresh_token"]);
    allowed.scopes = vec!["profile".into(), "logout_all".into()];
    let (client, secret) = app.register(&allowed).await;
    let allowed = (client.id().to_owned(), secret.expect("secret"));
    let without = password_grant_for(&app, &allowed, "ann", "profile").await;
    let response = post(without.access.clone()).await.expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let with = password_grant_for(&app, &allowed, "ann", "profile logout_all").await;
    let response = post(with.access.clone()).await.expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!introspected_active(&app, &third_party, &theirs.access).await);
    assert!(!introspected_active(&app, &first_party, &ours.refresh).await);
    assert!(!browser.signed_in().await);
    let events = app.audit_events("user.signed_out_everywhere").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
}
