//! Self-registration and email verification, on the hosted pages and through the JSON API,
//! with the emails read back from the development outbox.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{location, spawn_app, spawn_app_with, spec, TestApp, Visitor, PASSWORD};
use crate::password_reset::wait_for_emails;

/// A password the validators accept.
const GOOD: &str = "blue tiger morning lamp";

/// What the verify page says for every refused code.
const REJECTED_PAGE: &str = r#"<p class="field-error" id="otp-error">This code is not right, or it has expired. Check the address and the code, or send a new code.</p>"#;

/// POSTs `body` as JSON to `path`; returns the status, the `Retry-After` header and the body.
async fn post_json(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Option<u64>, Value) {
    let response = app
        .api
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").parse().expect("seconds"));
    (status, retry, response.json().await.expect("a JSON body"))
}

async fn get_json(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.api.get(app.url(path)).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

/// Registers through the API with [`GOOD`] as the password.
async fn api_register(app: &TestApp, email: &str, username: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "password": GOOD,
        "confirm_password": GOOD,
    });
    if let Some(name) = username {
        body["username"] = json!(name);
    }
    let (status, _, body) = post_json(app, "/api/register/", &body).await;
    (status, body)
}

async fn user_by_email(app: &TestApp, email: &str) -> latchkey::accounts::Account {
    app.services
        .accounts
        .find_by_login(email)
        .await
        .expect("db")
        .unwrap_or_else(|| panic!("no user with {email}"))
}

/// The code in the newest email to `email`.
fn latest_code(app: &TestApp, email: &str) -> String {
    app.last_email_to(email)
        .code()
        .expect("a code in the email")
}

/// A 6-digit code that is not `code`.
fn other_code(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// The path of the activation link in the newest email to `email`.
fn activation_path(app: &TestApp, email: &str) -> String {
    let link = app
        .last_email_to(email)
        .link_starting_with(&app.url("/accounts/activate/"))
        .expect("an activation link");
    link.trim_start_matches(&app.address).to_owned()
}

/// Whether the visitor's start page says it is signed in as `username`.
async fn signed_in_as(visitor: &Visitor, username: &str) -> bool {
    let (_, html) = visitor.get("/").await;
    html.contains(&format!("You are signed in as <strong>{username}</strong>"))
}

#[tokio::test]
async fn the_api_registers_an_unverified_account_and_the_emailed_code_verifies_it_once() {
    let app = spawn_app().await;
    let (status, body) = api_register(&app, "  Ada@Example.COM ", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = user_by_email(&app, "ada@example.com").await;
    assert_eq!(
        body,
        json!({
            "id": user.id,
            "username": "ada",
            "email": "ada@example.com",
            "email_verified": false,
            "verification": "optional",
            "email_sent": true,
        })
    );
    assert!(!user.email_verified);
    assert_eq!(
        (user.first_name.as_str(), user.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    let registered = app.audit_events("user.registered").await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].user_id.as_deref(), Some(user.id.as_str()));

    let email = app.last_email_to("ada@example.com");
    assert_eq!(email.subject, "Confirm your email address");
    let code = email.code().expect("a code");
    assert!(email.html.contains(&code));
    assert!(activation_path(&app, "ada@example.com").starts_with("/accounts/activate/"));

    let (status, _, body) = post_json(
        &app,
        "/api/verify-otp/",
        &json!({"email": "ADA@example.com", "otp": code}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "verified"}))
    );
    assert!(user_by_email(&app, "ada@example.com").await.email_verified);
    let events = app.audit_events("email.verified").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id.as_deref(), Some(user.id.as_str()));

    // Single use, and the activation link died with the state it was signed over.
    let (status, _, body) = post_json(
        &app,
        "/api/verify-otp/",
        &json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_otp");
    let api_link = activation_path(&app, "ada@example.com").replacen("/accounts/", "/api/", 1);
    let (status, body) = get_json(&app, &api_link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_link");
    assert_eq!(app.audit_events("email.verified").await.len(), 1);
}

#[tokio::test]
async fn the_register_page_signs_in_and_the_verify_page_takes_the_code() {
    let app = spawn_app().await;
    let visitor = app.anonymous_visitor();
    let (status, html) = visitor.get("/accounts/register/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Create an account"));
    let response = visitor
        .submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("email", "grace@example.com"),
                ("username", "Grace"),
                ("first_name", "Grace"),
                ("last_name", "Hopper"),
                ("password", GOOD),
                ("confirm_password", GOOD),
                ("next", "/account/"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/verify/");
    assert!(signed_in_as(&visitor, "Grace").await, "optional: signed in");

    let (status, html) = visitor.get("/accounts/verify/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("We sent a 6-digit code to grace@example.com."),
        "{html}"
    );
    assert!(
        html.contains(r#"value="grace@example.com""#),
        "pre-filled: {html}"
    );

    let code = latest_code(&app, "grace@example.com");
    let response = visitor
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[
                ("email", "grace@example.com"),
                ("otp", &other_code(&code)),
                ("action", "verify"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains(REJECTED_PAGE), "{html}");
    let response = visitor
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[
                ("email", "grace@example.com"),
                ("otp", &code),
                ("action", "verify"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(html.contains("Email address verified"), "{html}");
    assert!(
        html.contains(r#"href="/account/""#),
        "continues to next: {html}"
    );
    assert!(
        user_by_email(&app, "grace@example.com")
            .await
            .email_verified
    );
    assert_eq!(app.audit_events("email.verified").await.len(), 1);
}

#[tokio::test]
async fn taken_emails_and_usernames_are_refused_without_regard_to_case() {
    let app = spawn_app().await;
    app.create_user("bob").await;
    let (status, body) = api_register(&app, "BOB@example.com", Some("robert")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        body["fields"],
        json!({"email": ["an account with this email address already exists"]})
    );
    let (status, body) = api_register(&app, "robert@example.com", Some("BoB")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["fields"],
        json!({"username": ["a user with this username already exists"]})
    );
    // An address is a login name too: no username may be another account's address.
    let (status, body) = api_register(&app, "robert@example.com", Some("Bob@Example.com")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["fields"]["username"],
        json!(["a user with this username already exists"])
    );
    // A derived username is made unique with digits.
    let (status, body) = api_register(&app, "Bob@elsewhere.org", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["username"], "bob2");

    // The page shows the error at its field and keeps what was typed, except passwords.
    let visitor = app.anonymous_visitor();
    let response = visitor
        .submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("email", "bob@EXAMPLE.com"),
                ("username", "BOB"),
                ("first_name", "Robert"),
                ("last_name", ""),
                ("password", GOOD),
                ("confirm_password", GOOD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains(r#"<p class="field-error" id="email-error">An account with this email address already exists.</p>"#), "{html}");
    assert!(html.contains(r#"<p class="field-error" id="username-error">A user with this username already exists.</p>"#), "{html}");
    assert!(html.contains(r#"value="Robert""#));
    assert!(!html.contains(GOOD), "passwords are never written back");
    assert_eq!(app.services.accounts.count().await.expect("count"), 2);
}

#[tokio::test]
async fn the_password_validators_say_what_is_wrong_wherever_a_password_is_set() {
    let app = spawn_app().await;
    let cases = [
        (
            "zebra@example.com",
            "short horse",
            "short horse",
            "password",
            "the password must have at least 12 characters",
        ),
        (
            "zebra@example.com",
            "830291746512",
            "830291746512",
            "password",
            "the password is entirely numeric",
        ),
        (
            "zebra@example.com",
            "zebrafish777",
            "zebrafish777",
            "password",
            "the password is too similar to your username",
        ),
        (
            "zebra@example.com",
            "password1234",
            "password1234",
            "password",
            "the password is too easy to guess: this is a very common password.",
        ),
        (
            "zebra@example.com",
            GOOD,
            "blue tiger morning lamb",
            "confirm_password",
            "the two passwords must match",
        ),
    ];
    for (email, password, confirm, field, message) in cases {
        let (status, _, body) = post_json(
            &app,
            "/api/register/",
            &json!({
                "email": email,
                "username": "zebrafish",
                "password": password,
                "confirm_password": confirm,
            }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password}: {body}");
        let messages = body["fields"][field].as_array().expect("messages");
        assert!(
            messages
                .iter()
                .any(|m| m.as_str().expect("text").starts_with(message)),
            "{password}: {body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .expect("text")
                .contains(message),
            "{body}"
        );
    }
    // Missing fields are errors, not crashes.
    let (status, _, body) = post_json(&app, "/api/register/", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["fields"]["email"].is_array() && body["fields"]["password"].is_array());
    assert_eq!(app.services.accounts.count().await.expect("count"), 0);
    assert!(app.audit_events("user.registered").await.is_empty());

    // The same validators guard the account page's password change.
    app.create_user("ann").await;
    let visitor = app.visitor("ann").await;
    let response = visitor
        .submit(
            "/account/",
            "/account/password/",
            &[
                ("current_password", PASSWORD),
                ("new_password", "password1234"),
                ("confirm_password", "password1234"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains("The password is too easy to guess: this is a very common password."),
        "{html}"
    );
}

#[tokio::test]
async fn closed_registration_is_refused_on_the_page_and_the_api() {
    let app = spawn_app_with("[accounts]\nregistration = \"closed\"").await;
    let (status, body) = api_register(&app, "ada@example.com", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "registration_closed");
    let visitor = app.anonymous_visitor();
    let (status, html) = visitor.get("/accounts/register/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Registration is closed"), "{html}");
    // A form kept from before the switch gets the same answer.
    let (_, login) = visitor.get("/accounts/login/").await;
    let response = visitor
        .post_with_csrf_of(
            &login,
            "/accounts/register/",
            &[
                ("email", "ada@example.com"),
                ("password", GOOD),
                ("confirm_password", GOOD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.services.accounts.count().await.expect("count"), 0);
}

#[tokio::test]
async fn only_the_allowed_email_domains_may_register() {
    let app = spawn_app_with("[accounts]\nallowed_email_domains = [\"Example.com\"]").await;
    let (status, body) = api_register(&app, "ada@elsewhere.org", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["fields"]["email"],
        json!(["registration is open only to addresses at example.com"])
    );
    let (status, body) = api_register(&app, "ada@sub.example.com", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api_register(&app, "ada@EXAMPLE.com", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn registrations_per_client_address_are_limited() {
    let app = spawn_app_with("[accounts]\nregistrations_per_ip = 3").await;
    // Every attempt counts, before anything is checked: an invalid one too…
    let (status, _, _) = post_json(
        &app,
        "/api/register/",
        &json!({"email": "x@example.com", "password": "123", "confirm_password": "123"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // …and registrations.
    for n in 1..=2 {
        let (status, body) = api_register(&app, &format!("user{n}@example.com"), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, retry, body) = post_json(
        &app,
        "/api/register/",
        &json!({"email": "user3@example.com", "password": GOOD, "confirm_password": GOOD}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_requests");
    let retry = retry.expect("Retry-After");
    assert!((1..=900).contains(&retry), "{retry}");
    // Refused before the form is read: an over-long or invalid password changes nothing.
    let (status, _, _) = post_json(
        &app,
        "/api/register/",
        &json!({"email": "bad", "password": "x".repeat(5000), "confirm_password": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("email", "user4@example.com"),
                ("password", GOOD),
                ("confirm_password", GOOD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let html = response.text().await.expect("html");
    assert!(html.contains("Too many accounts were created from your network."));
    assert_eq!(app.services.accounts.count().await.expect("count"), 2);
    assert_eq!(app.audit_events("registration.locked").await.len(), 1);
}

#[tokio::test]
async fn invalid_registrations_count_towards_the_limit() {
    let app = spawn_app_with("[accounts]\nregistrations_per_ip = 4").await;
    // Four invalid attempts (the old code let every one of them through uncounted)…
    for password in [
        "123",
        "password1234",
        &"p@$$w0rd".repeat(12),
        &"y".repeat(10_000),
    ] {
        let (status, _, body) = post_json(
            &app,
            "/api/register/",
            &json!({"email": "flood@example.com", "password": password, "confirm_password": password}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // …use up the limit: a valid registration from the same address is refused.
    let (status, body) = api_register(&app, "late@example.com", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(app.services.accounts.count().await.expect("count"), 0);
}

#[tokio::test]
async fn an_over_long_password_gets_a_clear_field_error_at_once() {
    let app = spawn_app().await;
    // 129 characters, and a megabyte-sized one (just under the body limit): the length is
    // refused before any validator or hash runs.
    for password in ["q".repeat(129), "🔑".repeat(7_000)] {
        let started = std::time::Instant::now();
        let (status, _, body) = post_json(
            &app,
            "/api/register/",
            &json!({"email": "long@example.com", "password": password, "confirm_password": password}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["fields"]["password"],
            json!(["the password must have at most 128 characters"])
        );
        // Generous for a loaded machine; the validators and hash are what would take long.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // 128 characters are accepted (characters, not bytes: these are 224 bytes).
    let random = || uuid::Uuid::new_v4().simple().to_string();
    let password = format!("{}{}{}{}", random(), random(), random(), "🔑".repeat(32));
    let (status, _, body) = post_json(
        &app,
        "/api/register/",
        &json!({"email": "long@example.com", "password": password, "confirm_password": password}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The page says the same at the field.
    let long = "q".repeat(200);
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("email", "page@example.com"),
                ("password", &long),
                ("confirm_password", &long),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains(r#"<p class="field-error" id="password-error">The password must have at most 128 characters.</p>"#),
        "{html}"
    );
    // And so does every other place a password is set or checked: at login an over-long
    // password is simply wrong (no hash), even where it was stored under an older policy.
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "long@example.com"),
                ("password", &long),
            ],
            Some((client.id(), secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_code_dies_after_five_wrong_guesses() {
    let app = spawn_app().await;
    api_register(&app, "ada@example.com", None).await;
    let code = latest_code(&app, "ada@example.com");
    let wrong = other_code(&code);
    let mut answers = Vec::new();
    for otp in [&wrong, &wrong, &wrong, &wrong, &wrong, &code] {
        let (status, _, body) = post_json(
            &app,
            "/api/verify-otp/",
            &json!({"email": "ada@example.com", "otp": otp}),
        )
        .await;
        answers.push((status, body));
    }
    // Every refusal is the same answer, the right code after five wrong ones included.
    assert!(
        answers.iter().all(|a| a.0 == StatusCode::BAD_REQUEST
            && a.1["error"] == "invalid_otp"
            && *a == answers[0]),
        "{answers:?}"
    );
    assert!(!user_by_email(&app, "ada@example.com").await.email_verified);
    // The page says the same.
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[("email", "ada@example.com"), ("otp", &code)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains(REJECTED_PAGE), "{html}");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = spawn_app_with("[accounts]\notp_expiration_seconds = 1").await;
    api_register(&app, "ada@example.com", None).await;
    let code = latest_code(&app, "ada@example.com");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = post_json(
        &app,
        "/api/verify-otp/",
        &json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_otp");
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[("email", "ada@example.com"), ("otp", &code)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.expect("html").contains(REJECTED_PAGE));
    assert!(!user_by_email(&app, "ada@example.com").await.email_verified);
}

#[tokio::test]
async fn the_activation_link_verifies_once_on_the_page_and_the_api() {
    let app = spawn_app().await;
    api_register(&app, "page@example.com", None).await;
    api_register(&app, "api@example.com", None).await;

    // The page, in a browser that did not register: verified, but not signed in.
    let visitor = app.anonymous_visitor();
    let link = activation_path(&app, "page@example.com");
    let (status, html) = visitor.get(&link).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Email address verified"));
    assert!(
        html.contains(r#"href="/accounts/login/?next=%2F""#),
        "{html}"
    );
    assert!(user_by_email(&app, "page@example.com").await.email_verified);
    let (status, html) = visitor.get(&link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("This activation link is invalid or has expired"));

    // The API.
    let api_link = activation_path(&app, "api@example.com").replacen("/accounts/", "/api/", 1);
    let (status, body) = get_json(&app, &api_link).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "verified"}))
    );
    assert!(user_by_email(&app, "api@example.com").await.email_verified);
    let (status, body) = get_json(&app, &api_link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_link");
    // Nor does the code of the same email work any more.
    let (status, _, body) = post_json(
        &app,
        "/api/verify-otp/",
        &json!({"email": "api@example.com", "otp": latest_code(&app, "api@example.com")}),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_otp"))
    );

    // Garbage is a 400, not a 500.
    for bad in [
        "/api/activate/%25%25/x/",
        "/api/activate/bm90LWEtdXNlcg/1-0123456789abcdef0123456789abcdef/",
    ] {
        let (status, body) = get_json(&app, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let methods = app
        .api
        .post(app.url(&api_link))
        .send()
        .await
        .expect("request");
    assert_eq!(methods.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.audit_events("email.verified").await.len(), 2);
}

#[tokio::test]
async fn a_new_code_waits_for_a_growing_cooldown() {
    let app = spawn_app_with("[accounts]\nresend_cooldown_seconds = 2").await;
    api_register(&app, "ada@example.com", None).await;
    let first = latest_code(&app, "ada@example.com");
    let resend = |path: &'static str| {
        let app = &app;
        async move { post_json(app, path, &json!({"email": "ada@example.com"})).await }
    };
    // The first request is sent (in the background), the next one waits for the cooldown.
    let (status, _, body) = resend("/api/resend-otp/").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "sent"})));
    let emails = wait_for_emails(&app, "ada@example.com", 2).await;
    let second = emails[1].code().expect("a code");
    let (status, early, body) = resend("/api/resend-otp/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_requests");
    let early = early.expect("Retry-After");
    assert!((1..=2).contains(&early), "{early}");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = resend("/api/resend-activation-email/").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "sent"})));
    let emails = wait_for_emails(&app, "ada@example.com", 3).await;
    let third = emails[2].code().expect("a code");
    let (status, later, _) = resend("/api/resend-otp/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let later = later.expect("Retry-After");
    assert!(later > early, "the wait grows: {early} then {later}");

    // The page's button says the same.
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[("email", "ada@example.com"), ("action", "resend")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));

    // Only the newest code works.
    for old in [&first, &second] {
        if *old != third {
            let (_, _, body) = post_json(
                &app,
                "/api/verify-otp/",
                &json!({"email": "ada@example.com", "otp": old}),
            )
            .await;
            assert_eq!(body["error"], "invalid_otp");
        }
    }
    let (status, _, _) = post_json(
        &app,
        "/api/verify-otp/",
        &json!({"email": "ada@example.com", "otp": third}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.emails_to("ada@example.com").len(), 3);
}

#[tokio::test]
async fn pending_unknown_and_verified_addresses_get_the_same_answers() {
    let app = spawn_app_with("[accounts]\nresend_cooldown_seconds = 60").await;
    app.create_user("vera").await; // verified
    api_register(&app, "pending@example.com", None).await;
    let addresses = [
        "pending@example.com",
        "nobody@example.com",
        "vera@example.com",
        "not an address",
    ];
    // Asking for a code: the same sequence of answers for each (sent, then the cooldown with
    // the same wait), on both paths. (The wait is compared to the minute: a slow machine may
    // take a second between two requests.)
    let mut sequences = Vec::new();
    for email in addresses {
        let mut answers = Vec::new();
        for path in ["/api/resend-otp/", "/api/resend-activation-email/"] {
            let (status, retry, mut body) = post_json(&app, path, &json!({"email": email})).await;
            if let Some(text) = body["error_description"].as_str() {
                body["error_description"] = json!(text.replace(char::is_numeric, ""));
            }
            answers.push((status, retry.map(|r| r.div_ceil(60)), body));
        }
        sequences.push(answers);
    }
    assert_eq!(
        sequences[0][0],
        (StatusCode::OK, None, json!({"status": "sent"}))
    );
    assert_eq!(sequences[0][1].0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sequences[0][1].1, Some(1));
    for other in &sequences[1..] {
        assert_eq!(other, &sequences[0]);
    }
    // Only the pending address gets an email (the registration's and the resent one).
    wait_for_emails(&app, "pending@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.emails_to("nobody@example.com").is_empty());
    assert!(app.emails_to("vera@example.com").is_empty());

    // Verifying: the same answer for a wrong code of a pending address, an unknown address
    // and a verified one.
    let mut answers = Vec::new();
    let wrong = other_code(&latest_code(&app, "pending@example.com"));
    for email in &addresses[..3] {
        let (status, retry, body) = post_json(
            &app,
            "/api/verify-otp/",
            &json!({"email": email, "otp": wrong}),
        )
        .await;
        answers.push((status, retry, body));
    }
    assert_eq!(answers[0].0, StatusCode::BAD_REQUEST);
    assert_eq!(answers[0].2["error"], "invalid_otp");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");

    // The page: the resend button and the code form.
    let visitor = app.anonymous_visitor();
    let mut pages = Vec::new();
    for email in ["nobody2@example.com", "vera2@example.com"] {
        let response = visitor
            .submit(
                "/accounts/verify/",
                "/accounts/verify/",
                &[("email", email), ("action", "resend")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.expect("html");
        pages.push(html.replace(email, "ADDRESS"));
    }
    assert_eq!(pages[0], pages[1]);
    assert!(pages[0].contains("If ADDRESS is waiting for verification, we sent a new code to it."));
    let mut pages = Vec::new();
    for email in &addresses[..3] {
        let response = visitor
            .submit(
                "/accounts/verify/",
                "/accounts/verify/",
                &[("email", email), ("otp", &wrong), ("action", "verify")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        pages.push(
            response
                .text()
                .await
                .expect("html")
                .replace(email, "ADDRESS"),
        );
    }
    assert!(pages[0].contains(REJECTED_PAGE));
    assert!(pages.iter().all(|p| *p == pages[0]));
}

#[tokio::test]
async fn code_guesses_are_limited_per_client_address_across_accounts() {
    let app = spawn_app_with("[rate_limits]\ncode_guesses_per_ip = 4").await;
    for name in ["ann", "bob", "cy"] {
        api_register(&app, &format!("{name}@example.com"), None).await;
    }
    let ann_code = latest_code(&app, "ann@example.com");
    // Guesses spread over several accounts, and at unknown addresses, share one counter.
    for email in [
        "bob@example.com",
        "cy@example.com",
        "nobody@example.com",
        "bob@example.com",
    ] {
        let (status, _, body) = post_json(
            &app,
            "/api/verify-otp/",
            &json!({"email": email, "otp": "000000"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // Past the limit nothing is checked: neither a guess at cy's code (which keeps its
    // attempts) nor even ann's right code, until the window ends.
    for (email, otp) in [("cy@example.com", "000000"), ("ann@example.com", &ann_code)] {
        let (status, retry, body) = post_json(
            &app,
            "/api/verify-otp/",
            &json!({"email": email, "otp": otp}),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "too_many_requests");
        assert!(retry.is_some_and(|r| (1..=900).contains(&r)));
    }
    assert!(!user_by_email(&app, "ann@example.com").await.email_verified);
    let cy = user_by_email(&app, "cy@example.com").await;
    let attempts = cy_attempts(&app, &cy.id).await;
    assert_eq!(
        attempts, 1,
        "only the guess within the limit touched cy's code"
    );
    // The page says so too.
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[("email", "ann@example.com"), ("otp", &ann_code)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn parallel_code_guesses_cannot_pass_the_per_address_limit() {
    let app = spawn_app_with("[rate_limits]\ncode_guesses_per_ip = 3").await;
    api_register(&app, "ann@example.com", None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let request = app
            .api
            .post(app.url("/api/verify-otp/"))
            .json(&json!({"email": format!("probe{i}@example.com"), "otp": "123456"}));
        tasks.spawn(async move { request.send().await.expect("request").status() });
    }
    let statuses: Vec<StatusCode> = tasks.join_all().await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!(checked, 3, "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        9
    );
}

/// Wrong guesses counted against the newest verification code of `user_id`.
async fn cy_attempts(app: &TestApp, user_id: &str) -> i64 {
    let id = user_id.to_owned();
    app.services
        .db
        .read(move |conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::one_time_codes;
            one_time_codes::table
                .filter(one_time_codes::user_id.eq(&id))
                .select(one_time_codes::attempts)
                .first::<i64>(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("attempts")
}

#[tokio::test]
async fn mandatory_verification_blocks_the_login_page_and_the_password_grant_until_verified() {
    let app = spawn_app_with("[accounts]\nemail_verification = \"mandatory\"").await;
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let secret = secret.expect("secret");
    let grant = |password: &'static str| {
        let app = &app;
        let basic = Some((client.id(), secret.as_str()));
        async move {
            app.post_token(
                &[
                    ("grant_type", "password"),
                    ("username", "mia"),
                    ("password", password),
                    ("scope", "profile"),
                ],
                basic,
            )
            .await
        }
    };

    // Registering on the page does not sign in: it shows the verify page.
    let registrar = app.anonymous_visitor();
    let response = registrar
        .submit(
            "/accounts/register/?next=/o/applications/",
            "/accounts/register/",
            &[
                ("email", "mia@example.com"),
                ("username", "mia"),
                ("password", GOOD),
                ("confirm_password", GOOD),
                ("next", "/o/applications/"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/verify/");
    assert!(!signed_in_as(&registrar, "mia").await);
    let (_, html) = registrar.get("/accounts/verify/").await;
    assert!(
        html.contains("verify your email address before you sign in"),
        "{html}"
    );

    // The password grant: refused with the reason, only for the right password.
    let (status, body) = grant(GOOD).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "the email address is not verified"
    );
    let (status, body) = grant("wrong password here").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "invalid username or password");

    // The login page: a wrong password says nothing more…
    let other = app.anonymous_visitor();
    let response = other
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[
                ("username", "mia"),
                ("password", "wrong password here"),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!response.text().await.expect("html").contains("verified"));
    // …the right one goes to the verify page, which says why (the code was sent a moment ago).
    let response = other
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "mia"), ("password", GOOD), ("next", "/")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/verify/");
    assert!(!signed_in_as(&other, "mia").await);
    let (_, html) = other.get("/accounts/verify/").await;
    assert!(
        html.contains("You cannot sign in until your email address is verified."),
        "{html}"
    );
    assert_eq!(app.audit_events("login.unverified").await.len(), 2);
    assert!(app.audit_events("login.success").await.is_empty());

    // The registering browser enters the code: verified, signed in, on to `next`.
    let code = latest_code(&app, "mia@example.com");
    let response = registrar
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[
                ("email", "mia@example.com"),
                ("otp", &code),
                ("action", "verify"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(html.contains(r#"href="/o/applications/""#), "{html}");
    assert!(signed_in_as(&registrar, "mia").await);
    let mia = user_by_email(&app, "mia@example.com").await;
    assert!(mia.email_verified);
    assert!(mia.last_login.is_some());
    let logins = app.audit_events("login.success").await;
    assert_eq!(logins.len(), 1);
    let details: Value = serde_json::from_str(&logins[0].details).expect("json");
    assert_eq!(details["amr"], "pwd otp");

    let (status, body) = grant(GOOD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = other
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "mia"), ("password", GOOD), ("next", "/")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert!(signed_in_as(&other, "mia").await);
}

#[tokio::test]
async fn with_verification_off_nothing_is_emailed_and_the_page_signs_in() {
    let app = spawn_app_with("[accounts]\nemail_verification = \"off\"").await;
    let (status, body) = api_register(&app, "ada@example.com", None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["verification"], "off");
    assert_eq!(body["email_sent"], false);
    assert!(app.emails_to("ada@example.com").is_empty());
    let (status, _, body) = post_json(
        &app,
        "/api/resend-otp/",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "verification_disabled");

    let visitor = app.anonymous_visitor();
    let response = visitor
        .submit(
            "/accounts/register/?next=/account/",
            "/accounts/register/",
            &[
                ("email", "ben@example.com"),
                ("password", GOOD),
                ("confirm_password", GOOD),
                ("next", "/account/"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account/");
    assert!(signed_in_as(&visitor, "ben").await);
    // The login page links here, and to the password reset.
    let (_, html) = app
        .anonymous_visitor()
        .get("/accounts/login/?next=/o/applications/")
        .await;
    assert!(
        html.contains(r#"href="/accounts/register/?next=%2Fo%2Fapplications%2F""#),
        "{html}"
    );
    assert!(html.contains(r#"href="/accounts/password-reset/""#));
}

#[tokio::test]
async fn parallel_requests_for_a_code_pass_the_cooldown_once() {
    let app = spawn_app().await;
    api_register(&app, "ada@example.com", None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10 {
        // The same address, and an unknown one: the same answers.
        let email = if n % 2 == 0 {
            "ada@example.com"
        } else {
            "nobody@example.com"
        };
        let request = app
            .api
            .post(app.url("/api/resend-otp/"))
            .json(&json!({ "email": email }));
        tasks.spawn(async move { (email, request.send().await.expect("request").status()) });
    }
    let answers = tasks.join_all().await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let sent = answers
            .iter()
            .filter(|(e, s)| *e == email && *s == StatusCode::OK)
            .count();
        assert_eq!(sent, 1, "{email}: {answers:?}");
    }
    // The registration's email and one more.
    wait_for_emails(&app, "ada@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.emails_to("ada@example.com").len(), 2);
}

/// Review finding 1 (the verification path): the login that waits for the emailed code counts
/// as begun when its password was checked, so a "sign out everywhere" (or a password change or
/// reset, which set the same cut-off) between the password and the code leaves the browser
/// signed out; the address is still verified.
#[tokio::test]
async fn a_login_waiting_for_verification_is_ended_by_a_sign_out_everywhere() {
    let app = spawn_app_with("[accounts]\nemail_verification = \"mandatory\"").await;
    let registrar = app.anonymous_visitor();
    let response = registrar
        .submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("email", "mia@example.com"),
                ("username", "mia"),
                ("password", GOOD),
                ("confirm_password", GOOD),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/accounts/verify/");
    let mia = user_by_email(&app, "mia@example.com").await;
    // Meanwhile (someone holding the account elsewhere) every session is ended.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.services
        .accounts
        .end_sessions_and_tokens(&latchkey::audit::Actor::system(), &mia.id)
        .await
        .expect("signed out everywhere");
    let code = latest_code(&app, "mia@example.com");
    let response = registrar
        .submit(
            "/accounts/verify/",
            "/accounts/verify/",
            &[
                ("email", "mia@example.com"),
                ("otp", &code),
                ("action", "verify"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(
        html.contains("/accounts/login/?next="),
        "a sign-in link: {html}"
    );
    assert!(!signed_in_as(&registrar, "mia").await);
    assert!(user_by_email(&app, "mia@example.com").await.email_verified);
}

/// The password-policy checks have a queue of their own (`argon2.policy_queue`): past it, a
/// registration is answered at once with 503 and `Retry-After` (a page on the HTML route,
/// `temporarily_unavailable` on the API) instead of waiting, and logins keep their hashing slots.
#[tokio::test]
async fn a_full_password_check_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(
        "[argon2]\nmax_concurrent = 1\npolicy_queue = 1\n[rate_limits]\nregistrations_per_ip = 0\n",
    )
    .await;
    app.create_user("ada").await;
    // zxcvbn's l33t matcher is slow on this (about 0.2 s of a core in a release build).
    let costly = "4@3!1|70$5+%2869".repeat(6);
    let visitor = app.anonymous_visitor();
    let (_, register_page) = visitor.get("/accounts/register/").await;
    let api_requests: Vec<_> = (0..8)
        .map(|i| {
            let body = json!({
                "email": format!("flood{i}@example.com"),
                "first_name": "Flood",
                "last_name": "Test",
                "password": costly,
                "confirm_password": costly,
            });
            let (client, url) = (app.api.clone(), app.url("/api/register/"));
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await.expect("request");
                let status = response.status();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().expect("ascii").to_owned());
                let body: Value = response.json().await.expect("a JSON body");
                (status, retry, body)
            })
        })
        .collect();
    let page_request = async {
        // Let the API requests fill the queue first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        visitor
            .post_with_csrf_of(
                &register_page,
                "/accounts/register/",
                &[
                    ("email", "page@example.com"),
                    ("username", "Page"),
                    ("first_name", "Page"),
                    ("last_name", "Test"),
                    ("password", costly.as_str()),
                    ("confirm_password", costly.as_str()),
                ],
            )
            .await
    };
    let login = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        app.login("ada", PASSWORD).await
    };
    let (page, login) = tokio::join!(page_request, login);
    let mut api = Vec::new();
    for request in api_requests {
        api.push(request.await.expect("request task"));
    }
    let busy: Vec<_> = api
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "no request was refused: {api:?}");
    for (_, retry, body) in &busy {
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    }
    for (status, _, body) in &api {
        assert!(
            [
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::CREATED,
                StatusCode::BAD_REQUEST
            ]
            .contains(status),
            "{status} {body}"
        );
    }
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()["retry-after"], "5");
    assert!(page
        .text()
        .await
        .expect("page")
        .contains("checking too many passwords"));
    assert_eq!(
        login.status(),
        StatusCode::SEE_OTHER,
        "a login does not wait for the policy checks"
    );
}
