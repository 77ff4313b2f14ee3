//! Open redirectors at the authorization endpoint (RFC 9700 §4.11.2): a client registered in
//! the developer portal gets its errors redirected only for a signed-in user who has consented
//! to it; everyone else sees a page naming the error and the destination host. Operator clients
//! keep RFC 6749 §4.1.2.1's redirects. Every error kind, before and after consent.

use latchkey::clients::Client;
use reqwest::header::LOCATION;
use reqwest::StatusCode;

use crate::helpers::{csrf_from, pkce_pair, query_param, spawn_app, spec, TestApp, Visitor};

/// Where the test clients send users back: a host an attacker could own.
const ELSEWHERE: &str = "https://rp.example.net/cb";

/// A client with the code grant (`main`) and one without it (`no_code`), both redirecting to
/// [`ELSEWHERE`]; registered through the portal (with an owner) or by an operator.
struct Clients {
    main: Client,
    no_code: Client,
}

async fn register(app: &TestApp, owner: Option<&str>) -> Clients {
    let mut main = spec("confidential", &["authorization_code"]);
    main.redirect_uris = vec![ELSEWHERE.into()];
    main.require_pkce = true;
    main.owner_id = owner.map(str::to_owned);
    let mut no_code = spec("confidential", &["client_credentials"]);
    no_code.redirect_uris = vec![ELSEWHERE.into()];
    no_code.owner_id = owner.map(str::to_owned);
    Clients {
        main: app.register(&main).await.0,
        no_code: app.register(&no_code).await.0,
    }
}

/// `/o/authorize/?…`: a valid request for `client_id` with `changes` applied (a pair replaces
/// or adds that parameter; a value of `None` removes it).
fn authorize_path(client_id: &str, changes: &[(&str, Option<&str>)]) -> String {
    let (_, challenge) = pkce_pair();
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", ELSEWHERE),
        ("scope", "read"),
        ("state", "st4te"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if let Some(value) = value {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/o/authorize/?{query}")
}

/// One kind of error: its name, the client it needs, the request changes, the error code.
struct Case {
    name: &'static str,
    no_code_client: bool,
    changes: Vec<(&'static str, Option<&'static str>)>,
    error: &'static str,
}

fn cases() -> Vec<Case> {
    let long_nonce: &'static str = Box::leak("n".repeat(600).into_boxed_str());
    let case = |name, changes: &[(&'static str, Option<&'static str>)], error| Case {
        name,
        no_code_client: false,
        changes: changes.to_vec(),
        error,
    };
    vec![
        case(
            "response_mode",
            &[("response_mode", Some("fragment"))],
            "invalid_request",
        ),
        case(
            "no response_type",
            &[("response_type", None)],
            "invalid_request",
        ),
        case(
            "response_type",
            &[("response_type", Some("token"))],
            "unsupported_response_type",
        ),
        Case {
            no_code_client: true,
            ..case("grant", &[], "unauthorized_client")
        },
        case("scope", &[("scope", Some("nope"))], "invalid_scope"),
        case(
            "no PKCE",
            &[("code_challenge", None), ("code_challenge_method", None)],
            "invalid_request",
        ),
        case(
            "bad PKCE",
            &[("code_challenge", Some("short"))],
            "invalid_request",
        ),
        case(
            "plain PKCE",
            &[("code_challenge_method", Some("plain"))],
            "invalid_request",
        ),
        case("prompt", &[("prompt", Some("bogus"))], "invalid_request"),
        case("max_age", &[("max_age", Some("soon"))], "invalid_request"),
        case("nonce", &[("nonce", Some(long_nonce))], "invalid_request"),
        case(
            "resource",
            &[("resource", Some("/not-absolute"))],
            "invalid_target",
        ),
        case(
            "unknown resource",
            &[("resource", Some("https://api.example.org/"))],
            "invalid_target",
        ),
    ]
}

/// Asserts that `response` redirects the error to the client (302 to [`ELSEWHERE`]).
fn assert_redirected(response: &reqwest::Response, error: &str, what: &str) {
    assert_eq!(response.status(), StatusCode::FOUND, "{what}: a redirect");
    let location = response.headers()[LOCATION].to_str().expect("ascii");
    assert!(location.starts_with(ELSEWHERE), "{what}: {location}");
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some(error),
        "{what}: {location}"
    );
    assert_eq!(query_param(location, "state").as_deref(), Some("st4te"));
}

/// Asserts that `response` is the page naming the error and the destination host, not a
/// redirect, and that its way back (chosen by the user) carries the error.
async fn assert_page(response: reqwest::Response, error: &str, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "{what}: a page, not a redirect"
    );
    assert!(response.headers().get(LOCATION).is_none(), "{what}");
    let html = response.text().await.expect("html");
    assert!(
        html.contains("rp.example.net"),
        "{what}: names the host: {html}"
    );
    assert!(html.contains("Invalid authorization request"), "{what}");
    let href = html
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .map(|h| h.replace("&#38;", "&"))
        .find(|h| h.starts_with(ELSEWHERE))
        .unwrap_or_else(|| panic!("{what}: a link back, chosen by the user: {html}"));
    assert_eq!(
        query_param(&href, "error").as_deref(),
        Some(error),
        "{what}"
    );
}

/// The person who has consented: signed in with the app's own browser, consent given to
/// `client` for `read` through the pages.
async fn consent(app: &TestApp, client: &Client, username: &str) {
    let location = app
        .authorize_as(
            &app.url(&authorize_path(client.id(), &[])),
            username,
            "allow",
        )
        .await;
    assert!(query_param(&location, "code").is_some(), "{location}");
}

/// Stores consent directly (for the client that cannot use the code grant, so has no consent
/// page).
async fn consent_in_db(app: &TestApp, user_id: &str, client_id: &str) {
    let (user_id, client_id) = (user_id.to_owned(), client_id.to_owned());
    app.services
        .db
        .write(move |conn| {
            latchkey::db::consents::upsert(
                conn,
                &user_id,
                &client_id,
                "read",
                "",
                latchkey::db::now(),
            )
            .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("consent");
}

async fn get(browser: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    browser.get(app.url(path)).send().await.expect("GET")
}

/// Runs every error kind for `clients` as a visitor who is not signed in, one who is signed in
/// but never consented, and one who consented; `portal` says which rule applies.
async fn every_error_before_and_after_consent(app: &TestApp, clients: &Clients, portal: bool) {
    let anonymous = app.anonymous_visitor();
    app.create_user("bob").await;
    let bob: Visitor = app.visitor("bob").await;
    let carol = app.create_user("carol").await;
    consent(app, &clients.main, "carol").await;
    consent_in_db(app, &carol.id, clients.no_code.id()).await;
    for case in cases() {
        let client = if case.no_code_client {
            &clients.no_code
        } else {
            &clients.main
        };
        let path = authorize_path(client.id(), &case.changes);
        for (who, browser) in [
            ("signed out", &anonymous.client),
            ("signed in, no consent", &bob.client),
        ] {
            let what = format!("{} ({who}, portal: {portal})", case.name);
            let response = get(browser, app, &path).await;
            if portal {
                assert_page(response, case.error, &what).await;
            } else {
                assert_redirected(&response, case.error, &what);
            }
        }
        let what = format!("{} (consented, portal: {portal})", case.name);
        assert_redirected(&get(&app.browser, app, &path).await, case.error, &what);
    }

    // prompt=none: login_required for someone signed out; consent_required for someone who
    // never consented; both redirected for a signed-in user who consented before.
    let silent = authorize_path(clients.main.id(), &[("prompt", Some("none"))]);
    let response = get(&anonymous.client, app, &silent).await;
    if portal {
        assert_page(response, "login_required", "prompt=none signed out").await;
    } else {
        assert_redirected(&response, "login_required", "prompt=none signed out");
    }
    let response = get(&bob.client, app, &silent).await;
    if portal {
        assert_page(response, "consent_required", "prompt=none no consent").await;
    } else {
        assert_redirected(&response, "consent_required", "prompt=none no consent");
    }
    let more = authorize_path(
        clients.main.id(),
        &[("prompt", Some("none")), ("scope", Some("read write"))],
    );
    assert_redirected(
        &get(&app.browser, app, &more).await,
        "consent_required",
        "prompt=none, consented to less",
    );
    let stale = authorize_path(
        clients.main.id(),
        &[("prompt", Some("none")), ("max_age", Some("0"))],
    );
    assert_redirected(
        &get(&app.browser, app, &stale).await,
        "login_required",
        "prompt=none, consented, login too old",
    );

    // Denying on the consent page (which names the destination) goes back to the client.
    let consent_page = get(&bob.client, app, &authorize_path(clients.main.id(), &[])).await;
    assert_eq!(consent_page.status(), StatusCode::OK);
    let html = consent_page.text().await.expect("html");
    assert!(
        html.contains("rp.example.net"),
        "the consent page names the host"
    );
    let denied = bob
        .client
        .post(app.url(&authorize_path(clients.main.id(), &[])))
        .form(&[
            ("csrf_token", csrf_from(&html).as_str()),
            ("decision", "deny"),
        ])
        .send()
        .await
        .expect("deny");
    assert_eq!(denied.status(), StatusCode::SEE_OTHER);
    let location = denied.headers()[LOCATION].to_str().expect("ascii");
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn portal_clients_get_errors_redirected_only_after_consent() {
    let app = spawn_app().await;
    let owner = app.create_user("mallory").await;
    let clients = register(&app, Some(&owner.id)).await;
    every_error_before_and_after_consent(&app, &clients, true).await;
}

#[tokio::test]
async fn operator_clients_keep_rfc_6749_error_redirects() {
    let app = spawn_app().await;
    let clients = register(&app, None).await;
    every_error_before_and_after_consent(&app, &clients, false).await;
}

#[tokio::test]
async fn the_page_for_form_post_offers_a_form_the_user_must_submit() {
    let app = spawn_app().await;
    let owner = app.create_user("mallory").await;
    let clients = register(&app, Some(&owner.id)).await;
    let path = authorize_path(
        clients.main.id(),
        &[
            ("response_mode", Some("form_post")),
            ("scope", Some("nope")),
        ],
    );
    let response = app.browse(&path).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("html");
    assert!(
        html.contains(&format!("action=\"{ELSEWHERE}\"")),
        "a form to the client: {html}"
    );
    assert!(
        html.contains("name=\"error\" value=\"invalid_scope\""),
        "{html}"
    );
    assert!(
        !html.contains("form_post.js"),
        "nothing submits it automatically"
    );
}

#[tokio::test]
async fn staff_trusted_portal_clients_redirect_errors_as_before() {
    // skip_authorization is a staff-only setting: such a client is vetted.
    let app = spawn_app().await;
    let owner = app.create_user("dev").await;
    let mut s = spec("confidential", &["authorization_code"]);
    s.redirect_uris = vec![ELSEWHERE.into()];
    s.owner_id = Some(owner.id.clone());
    s.skip_authorization = true;
    let (client, _) = app.register(&s).await;
    let response = app
        .browse(&authorize_path(client.id(), &[("scope", Some("nope"))]))
        .await;
    assert_redirected(&response, "invalid_scope", "skip_authorization");
}
