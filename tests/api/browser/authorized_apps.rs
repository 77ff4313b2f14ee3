//! Authorized applications as a person manages them in a real browser: allow an application,
//! then revoke its access from `/o/authorized_tokens/` and watch its tokens stop working.

use reqwest::StatusCode;

use crate::browser::browser;
use crate::helpers::{pkce_pair, query_param, spawn_app, spec, PASSWORD};

#[tokio::test]
async fn authorized_app_revoke() {
    let app = spawn_app().await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    app.create_user("carol").await;
    // The test server's own address: the browser lands on its 404 page, with the code in the URL.
    let redirect_uri = app.url("/cb");
    let mut client_spec = spec("confidential", &["authorization_code", "refresh_token"]);
    client_spec.name = "Photo Printer".to_owned();
    client_spec.redirect_uris = vec![redirect_uri.clone()];
    let (client, secret) = app.register(&client_spec).await;
    let secret = secret.expect("a confidential client has a secret");
    let (verifier, challenge) = pkce_pair();
    let mut authorize = url::Url::parse(&app.url("/o/authorize/")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id())
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "profile offline_access")
        .append_pair("state", "r3voke")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    // Carol signs in and allows the application.
    browser.goto(authorize.as_str()).await;
    browser.wait_for("#password").await;
    browser.fill("#username", "carol").await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/accounts/login/'] button[type=submit]")
        .await;
    browser.wait_for("form.decision").await;
    assert_eq!(browser.text_of("h1 .app-name").await, "Photo Printer");
    browser.click("button[name=decision][value=allow]").await;
    let landed = browser.wait_for_url(&redirect_uri).await;
    let code = query_param(landed.as_str(), "code").unwrap_or_else(|| panic!("a code in {landed}"));

    // The application gets its tokens.
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
    let access = tokens["access_token"].as_str().expect("an access token");
    let refresh = tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("offline_access brings a refresh token: {tokens}"));
    let (status, before) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", access)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["active"], true, "{before}");

    // Carol finds the application among those she authorized.
    browser.goto("/o/authorized_tokens/").await;
    let revoke = format!(
        "a.button[href='/o/authorized_tokens/{}/revoke/']",
        client.id()
    );
    browser.wait_for(&revoke).await;
    assert_eq!(browser.text_of("h1").await, "Authorized applications");
    let rows = browser.text_of("table.list tbody").await;
    assert!(rows.contains("Photo Printer"), "{rows}");
    assert!(rows.contains("profile"), "the permissions she gave: {rows}");
    browser.screenshot("authorized-apps").await;

    // Revoke, confirm.
    browser.click(&revoke).await;
    browser
        .wait_for("section.confirm button[type=submit]")
        .await;
    assert_eq!(
        browser.text_of("section.confirm h1").await,
        "Revoke access?"
    );
    let message = browser.text_of("section.confirm p").await;
    assert!(message.contains("Photo Printer"), "{message}");
    browser.screenshot("authorized-revoke-confirm").await;
    browser.click("section.confirm button[type=submit]").await;

    // Back on the list, with a notice and without the application.
    let notice = browser.text_of("p.notice[role=status]").await;
    assert_eq!(browser.current_url().await.path(), "/o/authorized_tokens/");
    assert!(
        notice.contains("Photo Printer") && notice.contains("no longer has access"),
        "{notice}"
    );
    let rows = browser.text_of("table.list tbody").await;
    assert!(!rows.contains("Photo Printer"), "{rows}");
    browser.screenshot("authorized-apps-revoked").await;

    // The tokens stopped working.
    let (status, after) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", access)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["active"], false, "{after}");
    let (status, refreshed) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refreshed}");
    assert_eq!(refreshed["error"], "invalid_grant", "{refreshed}");

    // The account page, a click away.
    browser.click("nav.main-nav a[href='/account/']").await;
    browser
        .wait_for("form[action='/account/profile/'] button[type=submit]")
        .await;
    assert_eq!(browser.text_of("h1").await, "Your account");
    browser.screenshot("account").await;
    browser.close().await;
}
