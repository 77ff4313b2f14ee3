//! The authorization-code flow as a person does it in a real browser: the hosted login page,
//! the consent page, and the redirect back to the client with a code.

use reqwest::StatusCode;

use crate::browser::browser;
use crate::helpers::{pkce_pair, query_param, spawn_app, spec, PASSWORD};

#[tokio::test]
async fn browser_login_and_consent() {
    let app = spawn_app().await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    app.create_user("alice").await;
    // The test server's own address: the browser lands on its 404 page, with the code in the URL.
    let redirect_uri = app.url("/cb");
    let mut client_spec = spec("confidential", &["authorization_code"]);
    client_spec.redirect_uris = vec![redirect_uri.clone()];
    // What the consent page shows about the application, served by the test server itself (a
    // loopback http URL; `'self'` for the page's CSP), so the phone pass sees a real logo.
    client_spec.logo_uri = Some(app.url("/static/favicon.svg"));
    client_spec.client_uri = Some(app.url("/"));
    client_spec.policy_uri = Some(app.url("/privacy"));
    client_spec.tos_uri = Some(app.url("/terms"));
    let (client, secret) = app.register(&client_spec).await;
    let secret = secret.expect("a confidential client has a secret");
    let (verifier, challenge) = pkce_pair();
    let mut authorize = url::Url::parse(&app.url("/o/authorize/")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id())
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "profile email")
        .append_pair("state", "br0wser-st4te")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    browser.goto(authorize.as_str()).await;
    browser.wait_for("#password").await;
    assert_eq!(browser.current_url().await.path(), "/accounts/login/");
    browser.fill("#username", "alice").await;
    browser.fill("#password", PASSWORD).await;
    browser.screenshot("login").await;
    browser.click("button[type=submit]").await;

    browser.wait_for("form.decision").await;
    assert_eq!(browser.text_of("h1 .app-name").await, client_spec.name);
    let links = browser.text_of("#app-links").await;
    assert!(
        links.contains("Privacy policy: 127.0.0.1") && links.contains("Terms of service"),
        "{links}"
    );
    assert!(
        browser.text_of("#registered-by").await.contains("operator"),
        "an operator's application"
    );
    let scopes = browser.text_of("ul.scopes").await;
    assert!(
        scopes.contains("profile") && scopes.contains("email"),
        "{scopes}"
    );
    browser.screenshot("consent").await;
    browser.click("button[name=decision][value=allow]").await;

    let landed = browser.wait_for_url(&redirect_uri).await;
    assert_eq!(
        query_param(landed.as_str(), "state").as_deref(),
        Some("br0wser-st4te")
    );
    let code = query_param(landed.as_str(), "code").unwrap_or_else(|| panic!("a code in {landed}"));
    // The code the browser carried back is one the client can redeem.
    let (status, tokens) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    browser.close().await;
}

/// The CSP check of every look sees a violation: a style attribute set by a script is refused
/// (`style-src 'self'`) and logged.
#[tokio::test]
async fn a_csp_violation_is_seen() {
    let app = spawn_app().await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.goto("/accounts/login/").await;
    browser.wait_for("#password").await;
    assert!(browser.csp_violations().await.is_empty());
    browser
        .execute("document.body.setAttribute('style', 'color: red');")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.is_empty() && std::time::Instant::now() < deadline {
        seen = browser.csp_violations().await;
    }
    assert!(
        seen.iter().any(|m| m.contains("style")),
        "a logged violation: {seen:?}"
    );
    browser.close().await;
}
