//! Sign-in and consent with context (issue 10 item 11): the sign-in page names the application
//! whose authorization request sent the user there, and the consent page's "Use another
//! account" signs out and keeps the authorization request.

use reqwest::StatusCode;

use crate::helpers::{
    csrf_from, location, pkce_pair, query_param, spawn_app, spec, Visitor, PASSWORD,
};

/// The value of the hidden `next` field in `html`, unescaped.
fn next_field(html: &str) -> String {
    let marker = "name=\"next\" value=\"";
    let start = html.find(marker).expect("a next field") + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].replace("&#38;", "&")
}

/// Follows the authorization request `url` from `visitor`, not signed in, to the sign-in page;
/// returns the sign-in page's path and HTML.
async fn sign_in_page_of(visitor: &Visitor, url: &str) -> (String, String) {
    let response = visitor.client.get(url).send().await.expect("authorize");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let login = location(&response);
    assert!(login.starts_with("/accounts/login/?"), "{login}");
    let (status, html) = visitor.get(&login).await;
    assert_eq!(status, StatusCode::OK);
    (login, html)
}

#[tokio::test]
async fn the_sign_in_page_names_the_application_that_asked() {
    let app = spawn_app().await;
    app.create_user("hana").await;
    let mut wanted = spec("public", &["authorization_code"]);
    wanted.name = "Cloud <Notes> & Co".to_owned();
    let (client, _) = app.register(&wanted).await;
    let (_, challenge) = pkce_pair();
    let url = app.authorize_url(client.id(), "profile", &challenge, "st");

    let visitor = app.anonymous_visitor();
    let (login, html) = sign_in_page_of(&visitor, &url).await;
    assert!(
        html.contains("Sign in to continue to <strong class=\"app-name\">Cloud &#60;Notes&#62; &#38; Co</strong>."),
        "the page names the application, escaped: {html}"
    );

    // A wrong password shows the page again, still naming it.
    let next = query_param(&app.url(&login), "next").expect("next");
    let refused = visitor
        .post_with_csrf_of(
            &html,
            "/accounts/login/",
            &[("username", "hana"), ("password", "wrong"), ("next", &next)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let again = refused.text().await.expect("html");
    assert!(again.contains("Invalid username or password."), "{again}");
    assert!(again.contains("Sign in to continue to"), "{again}");

    // An unknown client, another page, or no `next` at all: no application is named.
    for path in [
        "/accounts/login/?next=%2Fo%2Fauthorize%2F%3Fclient_id%3Dno-such-client",
        "/accounts/login/?next=%2Faccount%2F%3Fclient_id%3D",
        "/accounts/login/",
    ] {
        let (status, html) = visitor.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.contains("continue to"), "{path}: {html}");
        assert!(
            html.contains("Sign in with your Latchkey account to continue."),
            "{path}"
        );
    }
    let path = format!(
        "/accounts/login/?next=%2Faccount%2F%3Fclient_id%3D{}",
        client.id()
    );
    let (_, html) = visitor.get(&path).await;
    assert!(
        !html.contains("continue to"),
        "only authorization requests: {html}"
    );
}

#[tokio::test]
async fn use_another_account_signs_out_and_keeps_the_authorization_request() {
    let app = spawn_app().await;
    app.create_user("ines").await;
    app.create_user("jorge").await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (_, challenge) = pkce_pair();
    let url = app.authorize_url(client.id(), "profile", &challenge, "keep-me");

    // Ines signs in from the authorization request and reaches the consent page.
    let visitor = app.anonymous_visitor();
    let (login, html) = sign_in_page_of(&visitor, &url).await;
    let next = query_param(&app.url(&login), "next").expect("next");
    let signed_in = visitor
        .post_with_csrf_of(
            &html,
            "/accounts/login/",
            &[
                ("username", "ines"),
                ("password", PASSWORD),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let back = location(&signed_in);
    assert!(back.starts_with("/o/authorize/?"), "{back}");
    let (status, consent) = visitor.get(&back).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        consent.contains("wants to access your account"),
        "{consent}"
    );
    assert!(consent.contains("Use another account"), "{consent}");
    assert!(
        !consent.contains(">Sign out<"),
        "no plain sign-out: {consent}"
    );
    assert_eq!(next_field(&consent), back, "the button carries the request");

    // "Use another account": signed out, and on the sign-in page for the same request.
    let switched = visitor
        .post_with_csrf_of(&consent, "/accounts/logout/", &[("next", &back)])
        .await;
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    let login_again = location(&switched);
    assert!(
        login_again.starts_with("/accounts/login/?next="),
        "{login_again}"
    );
    assert_eq!(
        query_param(&app.url(&login_again), "next").as_deref(),
        Some(back.as_str()),
        "the sign-in page continues to the same authorization request"
    );
    assert!(
        !visitor.signed_in().await,
        "the first account is signed out"
    );
    assert_eq!(
        app.audit_events("logout").await.len(),
        1,
        "the sign-out is recorded"
    );

    // Jorge signs in there and gets the same request's consent page, then its code.
    let (status, html) = visitor.get(&login_again).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign in to continue to"), "{html}");
    let signed_in = visitor
        .post_with_csrf_of(
            &html,
            "/accounts/login/",
            &[
                ("username", "jorge"),
                ("password", PASSWORD),
                ("next", &back),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), back);
    let (_, consent) = visitor.get(&back).await;
    assert!(
        consent.contains("Signed in as <strong>jorge</strong>"),
        "{consent}"
    );
    let allowed = visitor
        .client
        .post(app.url(&back))
        .form(&[
            ("csrf_token", csrf_from(&consent).as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .expect("consent");
    assert!(allowed.status().is_redirection());
    let redirect = location(&allowed);
    assert!(query_param(&redirect, "code").is_some(), "{redirect}");
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("keep-me"));
}

#[tokio::test]
async fn a_plain_sign_out_still_goes_home() {
    let app = spawn_app().await;
    app.create_user("kofi").await;
    let visitor = app.visitor("kofi").await;
    let (_, account) = visitor.get("/account/").await;
    let out = visitor
        .post_with_csrf_of(&account, "/accounts/logout/", &[])
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/");
    assert!(!visitor.signed_in().await);
    // A `next` that is not a local path signs out and returns to the sign-in page for the home
    // page: never to another site.
    let visitor = app.visitor("kofi").await;
    let (_, account) = visitor.get("/account/").await;
    let out = visitor
        .post_with_csrf_of(
            &account,
            "/accounts/logout/",
            &[("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/accounts/login/?next=%2F");
    assert!(!visitor.signed_in().await);
}
