//! What the consent page shows about an application besides its name (issue 10 item 11): its
//! logo, home page, privacy policy and terms of service (OpenID Connect Dynamic Client
//! Registration 1.0 §2 `logo_uri`, `client_uri`, `policy_uri`, `tos_uri`) and who registered
//! it — set through the application form, shown on the application's page and on the consent
//! page; refused values are field errors and save nothing.

use latchkey::clients::ClientSpec;
use reqwest::StatusCode;

use crate::helpers::{location, pkce_pair, spawn_app, spec, TestApp, Visitor, REDIRECT_URI};

const LOGO: &str = "https://cdn.notes.example/logo.png";
const HOMEPAGE: &str = "https://notes.example/";
const POLICY: &str = "https://legal.notes.example/privacy";
const TERMS: &str = "https://legal.notes.example/terms";

/// The form fields of a public application with the code grant on [`REDIRECT_URI`], and `more`.
fn app_fields<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", "Cloud Notes"),
        ("client_type", "public"),
        ("grant:authorization_code", "on"),
        ("redirect_uris", REDIRECT_URI),
        ("scope:profile", "on"),
    ];
    fields.extend_from_slice(more);
    fields
}

/// The consent page `visitor` (signed in) gets for an authorization request to `client_id`.
async fn consent_page(app: &TestApp, visitor: &Visitor, client_id: &str) -> reqwest::Response {
    let (_, challenge) = pkce_pair();
    let url = app.authorize_url(client_id, "profile", &challenge, "st");
    let path = url.strip_prefix(&app.address).expect("a local URL");
    let response = visitor.get_response(path).await;
    assert_eq!(response.status(), StatusCode::OK, "the consent page");
    response
}

/// The `<dd>` after `<dt>{term}</dt>` in the application page's "Shown on the consent page"
/// list.
fn about_value<'a>(html: &'a str, term: &str) -> &'a str {
    let list = &html[html.find("id=\"about\"").expect("the about list")..];
    let marker = format!("<dt>{term}</dt><dd>");
    let start = list
        .find(&marker)
        .unwrap_or_else(|| panic!("{term} in {list}"))
        + marker.len();
    &list[start..start + list[start..].find("</dd>").expect("</dd>")]
}

#[tokio::test]
async fn the_form_sets_what_the_consent_page_shows_with_the_owner() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    app.create_user("rosa").await;
    let dev = app.visitor("dev").await;
    let response = dev
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &app_fields(&[
                ("logo_uri", LOGO),
                // Stored in the URL's normal form: the home page gains its path.
                ("client_uri", "https://notes.example"),
                ("policy_uri", POLICY),
                ("tos_uri", TERMS),
            ]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let detail = location(&response);
    let (status, html) = dev.get(&detail).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        about_value(&html, "Logo").contains(&format!(
            "<img class=\"app-logo\" src=\"{LOGO}\" alt=\"Logo of Cloud Notes\" width=\"56\" height=\"56\">"
        )),
        "{html}"
    );
    for (term, url) in [
        ("Home page", HOMEPAGE),
        ("Privacy policy", POLICY),
        ("Terms of service", TERMS),
    ] {
        assert_eq!(
            about_value(&html, term),
            format!("<a href=\"{url}\" rel=\"noopener noreferrer\" target=\"_blank\">{url}</a>")
        );
    }
    let client = app
        .services
        .clients
        .list()
        .await
        .expect("list")
        .pop()
        .expect("registered");
    assert_eq!(
        ClientSpec::from_client(&client).client_uri.as_deref(),
        Some(HOMEPAGE)
    );

    // Another user asked to allow it sees the logo, the name, who registered it and the links,
    // each named by its host.
    let rosa = app.visitor("rosa").await;
    let response = consent_page(&app, &rosa, client.id()).await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("img-src 'self' data: https:;"),
        "https logos may load: {csp}"
    );
    let consent = response.text().await.expect("html");
    for needle in [
        format!("<img class=\"app-logo\" src=\"{LOGO}\" alt=\"Logo of Cloud Notes\" width=\"56\" height=\"56\">"),
        "<span class=\"app-name\">Cloud Notes</span> wants to access your account".to_owned(),
        "Registered by <strong>dev</strong>, a user of this server".to_owned(),
        format!("Home page: <a href=\"{HOMEPAGE}\" rel=\"noopener noreferrer\" target=\"_blank\">notes.example</a>"),
        format!("Privacy policy: <a href=\"{POLICY}\" rel=\"noopener noreferrer\" target=\"_blank\">legal.notes.example</a>"),
        format!("Terms of service: <a href=\"{TERMS}\" rel=\"noopener noreferrer\" target=\"_blank\">legal.notes.example</a>"),
    ] {
        assert!(consent.contains(&needle), "{needle} in {consent}");
    }

    // Editing clears one (an empty field) and changes another: the pages follow.
    let edit = format!("{detail}update/");
    let saved = dev
        .submit(
            &edit,
            &edit,
            &app_fields(&[
                ("logo_uri", LOGO),
                ("client_uri", HOMEPAGE),
                ("policy_uri", ""),
                ("tos_uri", "https://notes.example/tos"),
            ]),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let stored = app
        .services
        .clients
        .find(client.id())
        .await
        .expect("db")
        .expect("client");
    assert_eq!(ClientSpec::from_client(&stored).policy_uri, None, "cleared");
    assert_eq!(
        ClientSpec::from_client(&stored).tos_uri.as_deref(),
        Some("https://notes.example/tos")
    );
    let (_, html) = dev.get(&detail).await;
    assert_eq!(
        about_value(&html, "Privacy policy"),
        "<span class=\"muted\">none</span>"
    );
    let consent = consent_page(&app, &rosa, client.id())
        .await
        .text()
        .await
        .expect("html");
    assert!(!consent.contains("Privacy policy"), "{consent}");
    assert!(
        consent.contains("Terms of service: <a href=\"https://notes.example/tos\" rel=\"noopener noreferrer\" target=\"_blank\">notes.example</a>"),
        "{consent}"
    );
}

#[tokio::test]
async fn an_operators_application_says_so_and_shows_only_what_it_has() {
    let app = spawn_app().await;
    app.create_user("rosa").await;
    // Registered from the command line's service call: no owner, no metadata.
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let rosa = app.visitor("rosa").await;
    let consent = consent_page(&app, &rosa, client.id())
        .await
        .text()
        .await
        .expect("html");
    assert!(
        consent.contains("Registered by the operator of this server."),
        "{consent}"
    );
    assert!(!consent.contains("app-logo"), "no logo: {consent}");
    assert!(!consent.contains("id=\"app-links\""), "no links: {consent}");
}

#[tokio::test]
async fn refused_urls_are_field_errors_and_nothing_is_saved() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let dev = app.visitor("dev").await;
    let long = format!("https://notes.example/{}", "a".repeat(2000));
    let refused = [
        ("logo_uri", "javascript:alert(1)", "use an https:// URL"),
        ("client_uri", "http://notes.example/", "plain http"),
        (
            "policy_uri",
            "https://admin:hunter2@notes.example/privacy",
            "user name or password",
        ),
        ("tos_uri", long.as_str(), "at most 2000 bytes"),
    ];
    let fields: Vec<(&str, &str)> = refused.iter().map(|(f, v, _)| (*f, *v)).collect();
    let response = dev
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &app_fields(&fields),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("4 fields need a change"), "{html}");
    for (field, _, words) in refused {
        let input = html
            .find(&format!("name=\"{field}\""))
            .unwrap_or_else(|| panic!("{field} on the page"));
        let error = html
            .find(&format!("id=\"{field}-error\""))
            .unwrap_or_else(|| panic!("{field}'s error in {html}"));
        assert!(error > input, "{field}: the error follows its field");
        assert!(html[error..].contains(words), "{field}: {words}");
        assert!(
            html[input..error].contains("aria-invalid=\"true\""),
            "{field} is marked invalid"
        );
    }
    // What was typed is kept, escaped.
    assert!(html.contains("value=\"javascript:alert(1)\""), "{html}");
    assert!(app.services.clients.list().await.expect("list").is_empty());

    // Editing a stored application: refused too, and the stored values stay.
    let saved = dev
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &app_fields(&[("logo_uri", LOGO)]),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let edit = format!("{}update/", location(&saved));
    for (field, value, words) in [
        (
            "logo_uri",
            "data:image/png;base64,AAAA",
            "use an https:// URL",
        ),
        ("logo_uri", "https://notes.example/logo.png#x", "fragment"),
        (
            "client_uri",
            "https://notes.example/a\u{1b}[31m",
            "control characters",
        ),
    ] {
        let response = dev
            .submit(&edit, &edit, &app_fields(&[(field, value)]))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value:?}"
        );
        let html = response.text().await.expect("html");
        let error = html
            .find(&format!("id=\"{field}-error\""))
            .unwrap_or_else(|| panic!("{field}'s error in {html}"));
        assert!(html[error..].contains(words), "{field}: {words}");
    }
    let stored = app.services.clients.list().await.expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        ClientSpec::from_client(&stored[0]).logo_uri.as_deref(),
        Some(LOGO)
    );
    assert_eq!(ClientSpec::from_client(&stored[0]).client_uri, None);
}
