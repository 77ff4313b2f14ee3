//! Password reset: `/accounts/password-reset/` and `/accounts/password-reset-confirm/…` pages,
//! `POST /api/password-reset/` and `POST /api/password-reset-confirm/…`, read through the
//! development outbox.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    location, spawn_app, spawn_app_with, spec, ReceivedEmail, TestApp, Visitor, PASSWORD,
};

const NEW_PASSWORD: &str = "a brand new passphrase";
const CONFIRM_PREFIX: &str = "/accounts/password-reset-confirm/";

/// Waits (at most 10 s) until `count` emails to `address` are in the outbox: the reset email is
/// sent by a background task after the answer.
pub async fn wait_for_emails(app: &TestApp, address: &str, count: usize) -> Vec<ReceivedEmail> {
    for _ in 0..200 {
        let emails = app.emails_to(address);
        if emails.len() >= count {
            return emails;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {count} emails to {address}, found {}",
        app.emails_to(address).len()
    );
}

/// Waits (at most 10 s) for `count` audit events named `event`.
async fn wait_for_events(app: &TestApp, event: &str, count: usize) {
    for _ in 0..200 {
        if app.audit_events(event).await.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} {event} events");
}

/// The path of the reset link in `email`.
fn reset_path(app: &TestApp, email: &ReceivedEmail) -> String {
    assert_eq!(email.subject, "Reset your password");
    let link = email
        .link_starting_with(&app.url(CONFIRM_PREFIX))
        .unwrap_or_else(|| panic!("a reset link in {}", email.text));
    assert!(email.html.contains(&link), "the HTML part has the link too");
    link.trim_start_matches(&app.address).to_owned()
}

/// The API path for the page path of a reset link.
fn api_path(page_path: &str) -> String {
    page_path.replacen("/accounts/", "/api/", 1)
}

async fn api_request(app: &TestApp, email: &str) -> (StatusCode, Option<String>, Value) {
    let response = app
        .api
        .post(app.url("/api/password-reset/"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, retry, response.json().await.expect("json"))
}

async fn api_confirm(
    app: &TestApp,
    page_path: &str,
    password: &str,
    confirm: &str,
) -> (StatusCode, Value) {
    let response = app
        .api
        .post(app.url(&api_path(page_path)))
        .json(&json!({ "password": password, "confirm_password": confirm }))
        .send()
        .await
        .expect("request");
    (response.status(), response.json().await.expect("json body"))
}

/// Asks for a link through the API and returns the path of the one emailed (the `n`th email).
async fn link_for(app: &TestApp, username: &str, n: usize) -> String {
    let address = format!("{username}@example.com");
    let (status, _, body) = api_request(app, &address).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let emails = wait_for_emails(app, &address, n).await;
    reset_path(app, &emails[n - 1])
}

/// Access and refresh tokens for `username` from the password grant.
async fn tokens_for(app: &TestApp, username: &str) -> (String, String, String, String) {
    let (client, secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let secret = secret.expect("secret");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
                ("scope", "profile"),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        client.id().to_owned(),
        secret,
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

async fn introspect_active(app: &TestApp, client: (&str, &str), token: &str) -> bool {
    let (status, body) = app
        .post_oauth("/o/introspect/", &[("token", token)], Some(client))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["active"].as_bool().expect("active")
}

fn details(event: &latchkey::db::audit_events::AuditRow) -> Value {
    serde_json::from_str(&event.details).expect("JSON details")
}

async fn assert_invalid_link_page(visitor: &Visitor, path: &str) {
    let (status, html) = visitor.get(path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("Link invalid or expired"), "{html}");
    assert!(
        html.contains(r#"href="/accounts/password-reset/""#),
        "{html}"
    );
    assert!(!html.contains(r#"name="password""#), "no form: {html}");
}

#[tokio::test]
async fn the_pages_reset_the_password_once_and_sign_out_everywhere() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let ann_row = app.stored_user(&ann.id).await;
    let (client_id, secret, access, refresh) = tokens_for(&app, "ann").await;
    let other_browser = app.visitor("ann").await;
    assert!(other_browser.signed_in().await);
    let visitor = app.anonymous_visitor();

    let (status, html) = visitor.get("/accounts/login/").await;
    assert_eq!(status, StatusCode::OK);
    let (status, html2) = visitor.get("/accounts/password-reset/").await;
    assert_eq!(status, StatusCode::OK, "{html2}");
    assert!(html2.contains("Reset your password"));
    assert!(html2.contains(r#"href="/accounts/login/""#), "{html2}");
    drop(html);

    let response = visitor
        .submit(
            "/accounts/password-reset/",
            "/accounts/password-reset/",
            &[("email", " Ann@Example.com ")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/password-reset/done/");
    let (status, html) = visitor.get("/accounts/password-reset/done/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("If an account exists for this address, we sent it a link"),
        "{html}"
    );

    let email = wait_for_emails(&app, "ann@example.com", 1).await.remove(0);
    assert!(email.text.contains("60 minutes"), "{}", email.text);
    let path = reset_path(&app, &email);
    wait_for_events(&app, "password_reset.requested", 1).await;

    let (status, html) = visitor.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Choose a new password"), "{html}");
    assert!(html.contains("<strong>ann</strong>"), "{html}");

    // Refused passwords leave the link usable.
    let response = visitor
        .submit(
            &path,
            &path,
            &[
                ("password", NEW_PASSWORD),
                ("confirm_password", "different"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains("The two passwords are not the same."),
        "{html}"
    );
    let response = visitor
        .submit(
            &path,
            &path,
            &[
                ("password", "123456789012"),
                ("confirm_password", "123456789012"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains(r#"<p class="field-error" id="password-error">"#),
        "{html}"
    );
    assert!(html.contains("numeric"), "the validator's reason: {html}");
    assert!(other_browser.signed_in().await, "nothing changed yet");

    let response = visitor
        .submit(
            &path,
            &path,
            &[
                ("password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/password-reset/complete/");
    let (status, html) = visitor.get("/accounts/password-reset/complete/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Your new password is set."), "{html}");

    // Single use: the link died with the old password hash.
    assert_invalid_link_page(&visitor, &path).await;
    let response = visitor
        .submit(
            "/accounts/password-reset/",
            &path,
            &[
                ("password", "another fine phrase"),
                ("confirm_password", "another fine phrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Every session and token of the user ended.
    assert!(!other_browser.signed_in().await);
    let basic = (client_id.as_str(), secret.as_str());
    assert!(!introspect_active(&app, basic, &access).await);
    assert!(!introspect_active(&app, basic, &refresh).await);

    assert_eq!(
        app.try_login("ann", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.try_login("ann", NEW_PASSWORD).await,
        StatusCode::SEE_OTHER
    );

    let emails = app.emails_to("ann@example.com");
    assert_eq!(emails.len(), 2, "the reset link and the notice");
    assert_eq!(emails[1].subject, "Your password was changed");
    assert!(
        emails[1]
            .link_starting_with(&app.url("/accounts/password-reset/"))
            .is_some(),
        "{}",
        emails[1].text
    );

    let requested = app.audit_events("password_reset.requested").await;
    assert_eq!(requested[0].user_id.as_deref(), Some(ann.id.as_str()));
    let completed = app.audit_events("password_reset.completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].user_id.as_deref(), Some(ann.id.as_str()));
    assert_eq!(completed[0].actor_id.as_deref(), Some(ann.id.as_str()));
    // No secret in the audit log.
    let token = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("token");
    for event in requested.iter().chain(&completed) {
        assert!(!format!("{event:?}").contains(token));
    }
    let stored = app.stored_user(&ann.id).await;
    assert_ne!(stored.password_hash, ann_row.password_hash);
    assert!(stored.sessions_valid_after.is_some());
}

#[tokio::test]
async fn the_api_resets_the_password_once_and_revokes_every_token() {
    let app = spawn_app().await;
    let bob = app.create_user("bob").await;
    let (client_id, secret, access, refresh) = tokens_for(&app, "bob").await;
    let other_browser = app.visitor("bob").await;

    let (status, _, body) = api_request(&app, "BOB@example.com").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "sent" }));
    let emails = wait_for_emails(&app, "bob@example.com", 1).await;
    let path = reset_path(&app, &emails[0]);

    let (status, body) = api_confirm(&app, &path, NEW_PASSWORD, "not the same").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(body["fields"]["confirm_password"][0].is_string(), "{body}");
    let (status, body) = api_confirm(&app, &path, "bob", "bob").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["fields"]["password"][0]
            .as_str()
            .expect("a message")
            .contains("at least 12 characters"),
        "{body}"
    );
    // Like the username: Django's UserAttributeSimilarityValidator.
    let (status, body) = api_confirm(&app, &path, "bob@example.com", "bob@example.com").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["fields"]["password"][0].is_string(), "{body}");

    let (status, body) = api_confirm(&app, &path, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "status": "password_changed" }));
    let (status, body) = api_confirm(&app, &path, "yet another phrase", "yet another phrase").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_link", "single use: {body}");

    let basic = (client_id.as_str(), secret.as_str());
    assert!(!introspect_active(&app, basic, &access).await);
    assert!(!introspect_active(&app, basic, &refresh).await);
    let (status, _) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            Some(basic),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!other_browser.signed_in().await);
    assert_eq!(
        app.try_login("bob", NEW_PASSWORD).await,
        StatusCode::SEE_OTHER
    );

    let emails = app.emails_to("bob@example.com");
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[1].subject, "Your password was changed");
    let completed = app.audit_events("password_reset.completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].user_id.as_deref(), Some(bob.id.as_str()));
    assert_eq!(
        app.audit_events("user.signed_out_everywhere").await.len(),
        1
    );

    // Malformed links and bodies are refused without a 500.
    for bad in [
        "/api/password-reset-confirm/%%%/x/",
        "/api/password-reset-confirm/Zm9v/1-00/",
        "/api/password-reset-confirm/bm9ib2R5/zzzzzzzzzzzzzzzzzz-0123456789abcdef0123456789abcdef/",
    ] {
        let (status, body) = api_confirm(&app, bad, NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_link")),
            "{bad}"
        );
    }
    let response = app
        .api
        .post(app.url("/api/password-reset/"))
        .json(&json!({ "mail": "bob@example.com" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _, body) = api_request(&app, "not an address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["fields"]["email"][0].is_string(), "{body}");
}

#[tokio::test]
async fn unknown_addresses_get_the_same_answer_and_no_email() {
    let app = spawn_app().await;
    app.create_user("cat").await;

    let known = api_request(&app, "cat@example.com").await;
    let unknown = api_request(&app, "nobody@example.com").await;
    assert_eq!(known, unknown, "same status, headers and body");
    assert_eq!(known.0, StatusCode::OK);

    let visitor = app.anonymous_visitor();
    let mut answers = Vec::new();
    for address in ["cat2@example.com", "nobody2@example.com"] {
        let response = visitor
            .submit(
                "/accounts/password-reset/",
                "/accounts/password-reset/",
                &[("email", address)],
            )
            .await;
        answers.push((response.status(), location(&response)));
    }
    assert_eq!(answers[0], answers[1]);

    // The known address's email arrives; by then the unknown one's task has long finished.
    wait_for_emails(&app, "cat@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.emails_to("nobody@example.com").is_empty());
    assert!(app.emails_to("nobody2@example.com").is_empty());
    let events = app.audit_events("password_reset.requested").await;
    assert_eq!(
        events.len(),
        1,
        "only the existing account's request is recorded"
    );
}

#[tokio::test]
async fn links_expire() {
    let app = spawn_app_with("[accounts]\npassword_reset_seconds = 1\n").await;
    app.create_user("dan").await;
    let path = link_for(&app, "dan", 1).await;
    let email = app.last_email_to("dan@example.com");
    assert!(
        email.text.contains("1 minutes") || email.text.contains("for 1 minute"),
        "{}",
        email.text
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_invalid_link_page(&app.anonymous_visitor(), &path).await;
    let (status, body) = api_confirm(&app, &path, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_link"))
    );
    assert_eq!(app.try_login("dan", PASSWORD).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn links_die_when_the_user_logs_in_or_changes_the_password() {
    let app = spawn_app().await;
    app.create_user("eve").await;
    app.create_user("fay").await;
    let eve_link = link_for(&app, "eve", 1).await;
    let fay_link = link_for(&app, "fay", 1).await;
    let visitor = app.anonymous_visitor();
    assert_eq!(visitor.get(&eve_link).await.0, StatusCode::OK);
    assert_eq!(visitor.get(&fay_link).await.0, StatusCode::OK);

    // Eve remembers her password and signs in: the link is dead.
    let eve = app.visitor("eve").await;
    assert_invalid_link_page(&visitor, &eve_link).await;
    drop(eve);

    // Fay changes her password on the account page (her login alone kills the link too, so
    // the change is made directly through the service to test the password hash part).
    let fay = app
        .services
        .accounts
        .find_by_login("fay")
        .await
        .expect("db")
        .expect("fay");
    app.services
        .accounts
        .change_password(
            &latchkey::audit::Actor::user(fay.id.clone(), None),
            &fay.id,
            secrecy::SecretString::from(PASSWORD),
            secrecy::SecretString::from(NEW_PASSWORD),
            true,
        )
        .await
        .expect("change password");
    assert_invalid_link_page(&visitor, &fay_link).await;
    let (status, body) =
        api_confirm(&app, &fay_link, "stolen link phrase", "stolen link phrase").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_link"))
    );
    assert_eq!(
        app.try_login("fay", NEW_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let last = app.last_email_to("fay@example.com");
    assert_eq!(last.subject, "Your password was changed");
}

#[tokio::test]
async fn the_account_page_password_change_sends_the_notice() {
    let app = spawn_app().await;
    app.create_user("gil").await;
    let gil = app.visitor("gil").await;
    let response = gil
        .submit(
            "/account/",
            "/account/password/",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let emails = app.emails_to("gil@example.com");
    assert_eq!(emails.len(), 1, "sent before the answer");
    assert_eq!(emails[0].subject, "Your password was changed");
    assert!(emails[0].text.contains("Hello Test,"), "{}", emails[0].text);
    assert_eq!(
        emails[0].link_starting_with(&app.url("/")).as_deref(),
        Some(app.url("/accounts/password-reset/").as_str())
    );
    // A refused change sends nothing.
    let response = gil
        .submit(
            "/account/",
            "/account/password/",
            &[
                ("current_password", "wrong"),
                ("new_password", "another fine phrase"),
                ("confirm_password", "another fine phrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.emails_to("gil@example.com").len(), 1);
}

#[tokio::test]
async fn inactive_users_get_no_email_and_their_links_are_invalid() {
    let app = spawn_app().await;
    let hal = app.create_user("hal").await;
    let ivy = app.create_user("ivy").await;
    let link = link_for(&app, "ivy", 1).await;
    app.deactivate(&ivy.id).await;
    assert_invalid_link_page(&app.anonymous_visitor(), &link).await;
    let (status, body) = api_confirm(&app, &link, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_link"))
    );

    app.deactivate(&hal.id).await;
    let (status, _, body) = api_request(&app, "hal@example.com").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "sent" }))
    );
    wait_for_events(&app, "password_reset.requested", 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.emails_to("hal@example.com").is_empty());
    let events = app.audit_events("password_reset.requested").await;
    assert_eq!(events[0].user_id.as_deref(), Some(hal.id.as_str()));
    assert_eq!(details(&events[0])["ignored"], "inactive");
}

#[tokio::test]
async fn requests_are_limited_per_address_and_per_ip() {
    let app = spawn_app().await;
    app.create_user("jo").await;

    // A second request for the same address within the cooldown, known or not.
    for address in ["jo@example.com", "nobody@example.com"] {
        let (status, _, _) = api_request(&app, address).await;
        assert_eq!(status, StatusCode::OK);
        let (status, retry, body) = api_request(&app, address).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "too_many_requests");
        let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
    }
    let visitor = app.anonymous_visitor();
    let response = visitor
        .submit(
            "/accounts/password-reset/",
            "/accounts/password-reset/",
            &[("email", "jo@example.com")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let html = response.text().await.expect("html");
    assert!(html.contains("Try again in"), "{html}");
    assert!(
        html.contains(r#"value="jo@example.com""#),
        "the form keeps the address"
    );
    wait_for_emails(&app, "jo@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.emails_to("jo@example.com").len(), 1, "one email only");

    // Per IP: 20 requests per window from one client; 5 were counted above (refused ones too).
    let mut statuses = Vec::new();
    for i in 0..18 {
        let (status, _, _) = api_request(&app, &format!("someone{i}@example.com")).await;
        statuses.push(status);
    }
    assert_eq!(statuses[..15], [StatusCode::OK; 15]);
    assert_eq!(statuses[15..], [StatusCode::TOO_MANY_REQUESTS; 3]);
    let locked = app.audit_events("password_reset.locked").await;
    assert_eq!(locked.len(), 1, "the lock is recorded once");
    assert_eq!(details(&locked[0])["limit"], "ip");
    assert_eq!(locked[0].ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_hourly_limit_per_address_holds_after_the_cooldowns() {
    let app = spawn_app_with("[accounts]\nresend_cooldown_seconds = 1\n").await;
    let kim = app.create_user("kim").await;
    for n in 1..=5 {
        let (status, _, body) = api_request(&app, "kim@example.com").await;
        assert_eq!(status, StatusCode::OK, "request {n}: {body}");
        wait_for_emails(&app, "kim@example.com", n).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (status, retry, _) = api_request(&app, "kim@example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.expect("Retry-After").parse::<u64>().expect("seconds") > 60);
    let locked = app.audit_events("password_reset.locked").await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].user_id.as_deref(), Some(kim.id.as_str()));
    // Each link works until one of them is used.
    let emails = app.emails_to("kim@example.com");
    let first = reset_path(&app, &emails[0]);
    let last = reset_path(&app, &emails[4]);
    let (status, _) = api_confirm(&app, &first, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api_confirm(&app, &last, "one more passphrase", "one more passphrase").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "using one link kills the others"
    );
}

#[tokio::test]
async fn the_forms_need_their_csrf_token() {
    let app = spawn_app().await;
    app.create_user("lou").await;
    let path = link_for(&app, "lou", 1).await;
    let visitor = app.anonymous_visitor();
    visitor.get("/accounts/password-reset/").await;
    let response = visitor
        .client
        .post(visitor.url("/accounts/password-reset/"))
        .form(&[("email", "lou@example.com")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = visitor
        .client
        .post(visitor.url(&path))
        .form(&[
            ("password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.try_login("lou", PASSWORD).await, StatusCode::SEE_OTHER);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.emails_to("lou@example.com").len(), 1);
    // A malformed address is shown at its field.
    let response = visitor
        .submit(
            "/accounts/password-reset/",
            "/accounts/password-reset/",
            &[("email", "lou at example")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains(r#"id="email-error""#), "{html}");
}

#[tokio::test]
async fn a_link_used_twice_at_once_works_once() {
    let app = spawn_app().await;
    app.create_user("max").await;
    let path = link_for(&app, "max", 1).await;
    let (a, b) = tokio::join!(
        api_confirm(&app, &path, "first of two phrases", "first of two phrases"),
        api_confirm(
            &app,
            &path,
            "second of two phrases",
            "second of two phrases"
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::BAD_REQUEST],
        "{a:?} {b:?}"
    );
    assert_eq!(app.audit_events("password_reset.completed").await.len(), 1);
    let winner = if a.0 == StatusCode::OK {
        "first of two phrases"
    } else {
        "second of two phrases"
    };
    assert_eq!(app.try_login("max", winner).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_password_alone_does_not_kill_the_reset_link_of_a_user_with_login_codes() {
    let app = spawn_app().await;
    let gus = app.create_user("gus").await;
    app.services
        .accounts
        .set_login_code(&latchkey::audit::Actor::system(), &gus.id, true)
        .await
        .expect("codes on");
    let link = link_for(&app, "gus", 1).await;
    // Someone who knows the password (but not the mailbox) signs in up to the code step.
    let visitor = app.anonymous_visitor();
    let response = visitor
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "gus"), ("password", PASSWORD), ("next", "/")],
        )
        .await;
    assert_eq!(location(&response), "/accounts/login/code/");
    // The owner's link still works.
    assert_eq!(app.anonymous_visitor().get(&link).await.0, StatusCode::OK);
}
