//! `[branding]` (issue 10, item 14): the product name, logo and accent colour on the pages (the
//! page chrome of every page, error pages included), in the branding stylesheet, in the
//! Content-Security-Policy and in emails; and nothing of it when nothing is configured.
//! Invalid settings are refused at start-up (unit tests in `config` and `domain::branding`).

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, ReceivedEmail, TestApp};
use crate::password_reset::wait_for_emails;

const BRANDED: &str = r##"
[branding]
name = "Acme ID"
logo_url = "https://cdn.example.com/brand/acme.svg"
accent_color = "#0A7F3B"
"##;

/// The CSP of `response`.
fn csp(response: &reqwest::Response) -> String {
    response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Asks for a password reset of `username`'s account and returns the email it sends.
async fn reset_email(app: &TestApp, username: &str) -> ReceivedEmail {
    let address = format!("{username}@example.com");
    app.create_user(username).await;
    let response = app
        .api
        .post(app.url("/api/password-reset/"))
        .json(&json!({ "email": address }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    wait_for_emails(app, &address, 1)
        .await
        .pop()
        .expect("an email")
}

#[tokio::test]
async fn a_configured_brand_shows_on_pages_in_the_stylesheet_and_in_emails() {
    let app = spawn_app_with(BRANDED).await;
    let visitor = app.anonymous_visitor();

    let response = visitor.get_response("/accounts/login/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let policy = csp(&response);
    assert!(
        policy.contains("img-src 'self' data: https:;"),
        "an https logo may load: {policy}"
    );
    let html = response.text().await.expect("page");
    assert!(html.contains("<title>Sign in · Acme ID</title>"), "{html}");
    assert!(
        html.contains("<span>Acme ID</span>"),
        "the header names it: {html}"
    );
    assert!(
        html.contains(
            r#"<img class="brand-logo" src="https://cdn.example.com/brand/acme.svg" alt="">"#
        ),
        "{html}"
    );
    assert!(!html.contains("<svg"), "the logo replaces the mark: {html}");
    assert!(
        html.contains(r#"<link rel="stylesheet" href="/static/branding.css?v=0a7f3b">"#),
        "{html}"
    );
    assert!(
        html.contains("Sign in with your Acme ID account to continue."),
        "{html}"
    );
    assert!(
        !html.contains("Latchkey"),
        "no trace of the default name: {html}"
    );
    assert!(
        !html.contains("style="),
        "no inline style (CSP style-src 'self')"
    );

    let stylesheet = visitor.get_response("/static/branding.css?v=0a7f3b").await;
    assert_eq!(stylesheet.status(), StatusCode::OK);
    assert!(stylesheet.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/css"));
    assert!(stylesheet.headers()[CACHE_CONTROL]
        .to_str()
        .expect("ascii")
        .contains("max-age="));
    let css = stylesheet.text().await.expect("css");
    assert!(
        css.contains(":root { --accent: #0a7f3b; --on-accent: #ffffff; }"),
        "{css}"
    );

    // A page drawn by a handler's error (a form without its CSRF token) and the 404 page.
    let refused = visitor
        .client
        .post(visitor.url("/accounts/login/"))
        .form(&[("username", "x"), ("password", "y")])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let html = refused.text().await.expect("page");
    assert!(
        html.contains("<title>Form expired · Acme ID</title>"),
        "{html}"
    );
    assert!(html.contains("/static/branding.css?v=0a7f3b"), "{html}");
    let (status, html) = visitor.get("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("<title>Page not found · Acme ID</title>"),
        "{html}"
    );

    // The signed-out page after RP-initiated logout: a visitor's chrome, branded.
    let (status, html) = visitor.get("/o/logout/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("You are signed out"), "{html}");
    assert!(html.contains("<span>Acme ID</span>"), "{html}");
    assert!(
        html.contains(r#"<a class="button" href="/accounts/login/">Sign in</a>"#),
        "{html}"
    );

    let email = reset_email(&app, "brandy").await;
    assert!(
        email
            .html
            .contains("<title>Reset your password · Acme ID</title>"),
        "{}",
        email.html
    );
    assert!(
        email
            .html
            .contains(r#"<img src="https://cdn.example.com/brand/acme.svg""#),
        "{}",
        email.html
    );
    assert!(email.html.contains(">Acme ID</span>"), "{}", email.html);
    assert!(
        email.html.contains("background:#0a7f3b;color:#ffffff"),
        "the button takes the accent: {}",
        email.html
    );
    assert!(!email.html.contains("Latchkey"), "{}", email.html);
    assert!(
        email
            .text
            .replace("\r\n", "\n")
            .trim_end()
            .ends_with("\n-- \nAcme ID"),
        "signed with the name: {:?}",
        email.text
    );
    assert!(!email.text.contains("#0a7f3b"), "{}", email.text);
}

#[tokio::test]
async fn a_logo_path_stays_on_this_host_and_emails_get_it_absolute() {
    let app = spawn_app_with("[branding]\nlogo_url = \"/static/acme.svg\"\n").await;
    let response = app
        .anonymous_visitor()
        .get_response("/accounts/login/")
        .await;
    let policy = csp(&response);
    assert!(policy.contains("img-src 'self' data: https:;"), "{policy}");
    let html = response.text().await.expect("page");
    assert!(
        html.contains(r#"<img class="brand-logo" src="/static/acme.svg" alt="">"#),
        "{html}"
    );
    assert!(html.contains("<title>Sign in · Latchkey</title>"), "{html}");
    assert!(
        !html.contains("branding.css"),
        "no accent configured: {html}"
    );

    let email = reset_email(&app, "pathy").await;
    let logo = format!(r#"<img src="{}/static/acme.svg""#, app.address);
    assert!(email.html.contains(&logo), "{}", email.html);
}

#[tokio::test]
async fn without_branding_pages_and_emails_are_latchkeys() {
    let app = spawn_app().await;
    let visitor = app.anonymous_visitor();
    let response = visitor.get_response("/accounts/login/").await;
    assert_eq!(
        csp(&response),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'"
    );
    let html = response.text().await.expect("page");
    assert!(html.contains("<title>Sign in · Latchkey</title>"), "{html}");
    assert!(html.contains("<span>Latchkey</span>"), "{html}");
    assert!(
        html.contains("<svg viewBox=\"0 0 24 24\""),
        "the mark: {html}"
    );
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("branding.css"), "{html}");
    assert!(
        html.contains("Sign in with your Latchkey account to continue."),
        "{html}"
    );

    // The route answers anyway (a page cached from before the setting was removed).
    let (status, css) = visitor.get("/static/branding.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!css.contains("--accent"), "{css}");

    let email = reset_email(&app, "plain").await;
    assert!(email.html.contains(">Latchkey</span>"), "{}", email.html);
    assert!(
        email.html.contains("background:#2450c9;color:#ffffff"),
        "{}",
        email.html
    );
    assert!(!email.html.contains("<img"), "{}", email.html);
    assert!(
        email
            .text
            .replace("\r\n", "\n")
            .trim_end()
            .ends_with("\n-- \nLatchkey"),
        "{:?}",
        email.text
    );
}

#[tokio::test]
async fn the_stylesheet_derives_every_accent_shade_from_one_colour() {
    let app = spawn_app().await;
    let (_, style) = app.anonymous_visitor().get("/static/style.css").await;
    // One configured colour: the other accent shades are mixed from --accent.
    assert_eq!(style.matches("--accent:").count(), 1, "one accent value");
    assert!(
        style.contains("--accent-hover: color-mix(in srgb, var(--accent)"),
        "{style}"
    );
    assert!(
        !style.contains("--accent-dark"),
        "the old second accent is gone"
    );
}
