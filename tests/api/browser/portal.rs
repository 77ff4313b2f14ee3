//! The developer portal as a developer uses it in a real browser: register an application
//! (after one rejected attempt), copy its secret from the one page that shows it, and use it.

use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::Locator;
use reqwest::StatusCode;

use crate::browser::{browser, Browser};
use crate::helpers::{spawn_app_with, PASSWORD};

/// The register form's submit button (the page also has the header's "Sign out" button).
const REGISTER: &str = "form[action='/o/applications/register/'] button[type=submit]";

#[tokio::test]
async fn portal_register_and_use_secret() {
    // Portal clients get client-credentials tokens only for tokens.scopes_without_user.
    let app = spawn_app_with("[tokens]\nscopes_without_user = [\"read\"]").await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    app.create_user("dev").await;

    // Signed out, the portal sends the developer to the login page first.
    browser.goto("/o/applications/").await;
    browser.wait_for("#password").await;
    assert_eq!(browser.current_url().await.path(), "/accounts/login/");
    browser.fill("#username", "dev").await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/accounts/login/'] button[type=submit]")
        .await;

    browser.wait_for_url(&app.url("/o/applications/")).await;
    let empty = browser.text_of("table.list tbody").await;
    assert!(empty.contains("No applications yet"), "{empty}");
    browser.screenshot("portal-list-empty").await;
    browser
        .click("a.button[href='/o/applications/register/']")
        .await;

    browser.wait_for(REGISTER).await;
    assert_eq!(
        browser.current_url().await.path(),
        "/o/applications/register/"
    );
    browser.screenshot("portal-register-form").await;

    // First attempt: the authorization-code grant (ticked by default) with a redirect URI that
    // is plain http away from loopback. The form comes back with the error beside the field.
    browser.fill("#name", "Nightly Report Job").await;
    assert!(is_ticked(&browser, "grant:authorization_code").await);
    browser
        .fill("#redirect_uris", "http://evil.example/cb")
        .await;
    browser.click(REGISTER).await;

    let error = browser.text_of(".field.has-error #redirect-error").await;
    assert!(!error.is_empty(), "an inline error under the redirect URIs");
    let alert = browser.text_of(".alert[role=alert]").await;
    assert!(
        alert.starts_with("The application was not saved"),
        "{alert}"
    );
    assert_eq!(
        browser
            .wait_for("#redirect_uris")
            .await
            .attr("aria-invalid")
            .await
            .expect("aria-invalid")
            .as_deref(),
        Some("true")
    );
    // What was typed is still there.
    assert_eq!(field_value(&browser, "#name").await, "Nightly Report Job");
    assert_eq!(
        field_value(&browser, "#redirect_uris").await,
        "http://evil.example/cb"
    );
    // Bring the field and its error into the viewport for the picture: WebDriver scrolls what
    // it clicks to the bottom edge, so click the help text of the field below (does nothing).
    browser.click("#logout-help").await;
    browser.screenshot("portal-register-error").await;

    // Second attempt: a service that calls APIs as itself, with the read scope only.
    browser
        .wait_for("#redirect_uris")
        .await
        .clear()
        .await
        .expect("clear the redirect URIs");
    let form = browser
        .wait_for("form[action='/o/applications/register/']")
        .await;
    for grant in checkboxes(&form, "grant:").await {
        let name = grant.attr("name").await.expect("name").expect("a name");
        tick(&grant, name == "grant:client_credentials").await;
    }
    let scopes = checkboxes(&form, "scope:").await;
    assert!(scopes.len() > 1, "the form offers several scopes");
    for scope in scopes {
        let name = scope.attr("name").await.expect("name").expect("a name");
        tick(&scope, name == "scope:read").await;
    }
    assert!(!is_ticked(&browser, "grant:authorization_code").await);
    assert!(is_ticked(&browser, "grant:client_credentials").await);
    assert!(is_ticked(&browser, "scope:read").await);
    browser
        .click("input[type=radio][name=client_type][value=confidential]")
        .await;
    browser.click(REGISTER).await;

    // The form's answer redirects (post/redirect/get) to the application's page with the
    // secret, shown this once: a reload registers nothing and shows it no more.
    browser.wait_for("#client-secret").await;
    assert!(
        browser.current_url().await.path().ends_with("/secret/"),
        "redirected to the secret's view"
    );
    assert_eq!(browser.text_of("h1").await, "Nightly Report Job");
    let client_id = browser.text_of("#client-id").await;
    let secret = browser.text_of("#client-secret").await;
    assert!(!client_id.is_empty() && !secret.is_empty());
    let detail = app.url(&format!("/o/applications/{client_id}/"));

    // copy.js reveals the Copy buttons (they ship hidden for browsers without JavaScript).
    let copy = "button.copy[data-copy-target=client-secret]";
    wait_until_displayed(&browser, copy).await;
    assert_eq!(browser.text_of(copy).await, "Copy");
    browser.screenshot("portal-secret-once").await;
    browser.click(copy).await;
    // Headless Chromium may refuse the clipboard: then the text is selected for Ctrl+C.
    let feedback = wait_for_text(&browser, copy, |t| t == "Copied" || t == "Selected").await;
    assert!(feedback == "Copied" || feedback == "Selected", "{feedback}");

    // The secret works.
    let (status, tokens) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "read")],
            Some((&client_id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    assert_eq!(tokens["scope"], "read", "{tokens}");

    // Shown once: the same page again has only the hint.
    browser.goto(&detail).await;
    browser.wait_for("#client-id").await;
    wait_until_displayed(&browser, "button.copy[data-copy-target=client-id]").await;
    let page = browser.text_of("main").await;
    assert!(!page.contains(&secret), "the secret is not shown again");
    assert!(!page.contains("Copy the client secret now"), "{page}");
    let hint: String = secret.chars().take(6).collect();
    assert!(page.contains(&format!("Begins with {hint}")), "{page}");
    browser.screenshot("portal-detail").await;

    // And the list shows the new application.
    browser.click("a[href='/o/applications/']").await;
    browser
        .wait_for(&format!(
            "table.list a[href='/o/applications/{client_id}/']"
        ))
        .await;
    let row = browser.text_of("table.list tbody").await;
    assert!(
        row.contains("Nightly Report Job") && row.contains(&client_id),
        "{row}"
    );
    browser.screenshot("portal-list").await;
    browser.close().await;
}

/// Whether the checkbox named `name` is ticked.
async fn is_ticked(browser: &Browser, name: &str) -> bool {
    browser
        .wait_for(&format!("input[type=checkbox][name='{name}']"))
        .await
        .is_selected()
        .await
        .expect("checkbox state")
}

/// Ticks or unticks a checkbox by clicking it, as a person would.
async fn tick(checkbox: &Element, on: bool) {
    if checkbox.is_selected().await.expect("checkbox state") != on {
        checkbox.click().await.expect("click a checkbox");
    }
}

/// The checkboxes in `form` whose name starts with `prefix`.
async fn checkboxes(form: &Element, prefix: &str) -> Vec<Element> {
    form.find_all(Locator::Css(&format!(
        "input[type=checkbox][name^='{prefix}']"
    )))
    .await
    .expect("checkboxes")
}

/// The current value of a form field.
async fn field_value(browser: &Browser, css: &str) -> String {
    browser
        .wait_for(css)
        .await
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
}

/// Waits (at most ten seconds) until the element matching `css` is visible.
async fn wait_until_displayed(browser: &Browser, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .wait_for(css)
        .await
        .is_displayed()
        .await
        .expect("visibility")
    {
        assert!(Instant::now() < deadline, "{css} stayed hidden");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most ten seconds) until the text of the element matching `css` satisfies `done`,
/// and returns it.
async fn wait_for_text(browser: &Browser, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser.text_of(css).await;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{css} still says {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
