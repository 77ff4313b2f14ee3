//! Every error answer of every OAuth endpoint stays within RFC 6749 §5.2's character set for
//! `error_description` (`%x20-21 / %x23-5B / %x5D-7E`: no `"`, no `\`, nothing outside printable
//! ASCII), in JSON bodies, in authorization error redirects and in `WWW-Authenticate`
//! challenges (RFC 6750 §3), including when the request echoes hostile text back
//! (issue 9, item 13).

use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{pkce_pair, query_param, spawn_app, spec, TestApp, PASSWORD, REDIRECT_URI};

/// Text that would break a strict client if it were echoed: quotes, backslash, `§`, non-ASCII,
/// controls.
const HOSTILE: &str = "fo\"o\\b§r é\u{1}\n";

/// A form body: (name, value) pairs.
type Form<'a> = Vec<(&'a str, &'a str)>;
/// HTTP Basic credentials, if any: (client_id, secret).
type Basic<'a> = Option<(&'a str, &'a str)>;

fn allowed(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// Checks one answer: a JSON body's `error_description` and the `WWW-Authenticate` header's.
/// Returns how many descriptions it checked.
async fn check(what: &str, response: reqwest::Response) -> usize {
    let status = response.status();
    assert!(
        status.is_client_error() || status.is_redirection(),
        "{what}: expected an error answer, got {status}"
    );
    let mut checked = 0;
    if let Some(challenge) = response.headers().get(WWW_AUTHENTICATE) {
        let challenge = challenge.to_str().expect("ASCII header");
        checked += check_challenge(what, challenge);
    }
    if let Some(location) = response.headers().get(LOCATION) {
        let location = location.to_str().expect("ASCII header");
        if let Some(description) = query_param(location, "error_description") {
            assert_clean(what, &description);
            checked += 1;
        }
    }
    let text = response.text().await.expect("body");
    if let Ok(json) = serde_json::from_str::<Value>(&text) {
        if let Some(description) = json.get("error_description") {
            let description = description.as_str().expect("a string");
            assert_clean(what, description);
            checked += 1;
        }
    }
    checked
}

fn assert_clean(what: &str, description: &str) {
    assert!(
        description.chars().all(allowed),
        "{what}: error_description has characters RFC 6749 section 5.2 forbids: {description:?}"
    );
}

/// `Bearer realm="…", error="…", error_description="…"`: every quoted-string closes where
/// it should, and the description is clean.
fn check_challenge(what: &str, challenge: &str) -> usize {
    assert!(
        challenge.chars().all(|c| (' '..='~').contains(&c)),
        "{what}: {challenge:?}"
    );
    let Some((_, rest)) = challenge.split_once("error_description=\"") else {
        return 0;
    };
    let (description, after) = rest.split_once('"').expect("closing quote");
    assert!(
        after.is_empty() || after.starts_with(','),
        "{what}: the quoted description ends early: {challenge:?}"
    );
    assert_clean(what, description);
    1
}

async fn post_form(
    app: &TestApp,
    path: &str,
    body: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = app.api.post(app.url(path)).form(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn token_introspection_and_revocation_errors_are_rfc_clean() {
    let app = spawn_app().await;
    app.create_user("eve").await;
    let (client, secret) = app
        .register(&spec(
            "confidential",
            &[
                "authorization_code",
                "client_credentials",
                "password",
                "refresh_token",
            ],
        ))
        .await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));
    let mut checked = 0;

    // A code whose verifier will not match: the PKCE failure cites RFC 7636 section 4.6.
    let (code, _) = app.code_for(client.id(), "eve", "profile").await;
    let (other_verifier, _) = pkce_pair();

    let token_cases: Vec<(&str, Form, Basic)> = vec![
        (
            "unsupported grant_type",
            vec![("grant_type", HOSTILE)],
            basic,
        ),
        (
            "hostile scope",
            vec![("grant_type", "client_credentials"), ("scope", HOSTILE)],
            basic,
        ),
        (
            "unknown scope",
            vec![("grant_type", "client_credentials"), ("scope", "fo§o")],
            basic,
        ),
        (
            "pkce mismatch",
            vec![
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &other_verifier),
            ],
            basic,
        ),
        (
            "malformed verifier",
            vec![
                ("grant_type", "authorization_code"),
                ("code", HOSTILE),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", HOSTILE),
            ],
            basic,
        ),
        (
            "hostile refresh token",
            vec![("grant_type", "refresh_token"), ("refresh_token", HOSTILE)],
            basic,
        ),
        (
            "wrong password",
            vec![
                ("grant_type", "password"),
                ("username", HOSTILE),
                ("password", HOSTILE),
            ],
            basic,
        ),
        (
            "hostile client",
            vec![("grant_type", "client_credentials")],
            Some((HOSTILE, HOSTILE)),
        ),
        (
            "no client",
            vec![("grant_type", "client_credentials"), ("client_id", HOSTILE)],
            None,
        ),
        (
            "basic and body secret",
            vec![
                ("grant_type", "client_credentials"),
                ("client_secret", HOSTILE),
            ],
            basic,
        ),
    ];
    for (what, body, auth) in token_cases {
        checked += check(what, post_form(&app, "/o/token/", &body, auth).await).await;
    }
    // Repeated parameters, a wrong media type, a body over the limit.
    for path in ["/o/token/", "/o/introspect/", "/o/revoke_token/"] {
        let repeated = app
            .api
            .post(app.url(path))
            .basic_auth(client.id(), Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=a&token=b&grant_type=x&grant_type=y")
            .send()
            .await
            .expect("request");
        checked += check(&format!("{path} repeated"), repeated).await;
        let json = app
            .api
            .post(app.url(path))
            .basic_auth(client.id(), Some(&secret))
            .header("content-type", "application/json; charset=\"é\"")
            .body("{}")
            .send()
            .await
            .expect("request");
        checked += check(&format!("{path} json"), json).await;
        let huge = app
            .api
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", "x".repeat(100_000)))
            .send()
            .await
            .expect("request");
        checked += check(&format!("{path} huge"), huge).await;
        checked += check(
            &format!("{path} no client"),
            post_form(&app, path, &[("token", HOSTILE)], Some((HOSTILE, ""))).await,
        )
        .await;
    }
    for path in ["/o/introspect/", "/o/revoke_token/"] {
        checked += check(
            &format!("{path} no token"),
            post_form(&app, path, &[], basic).await,
        )
        .await;
    }
    assert!(checked >= 20, "only {checked} descriptions were checked");
}

#[tokio::test]
async fn bearer_errors_and_their_challenges_are_rfc_clean() {
    let app = spawn_app().await;
    app.create_user("eve").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "eve"),
                ("password", PASSWORD),
                ("scope", "read"),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let read_only = body["access_token"].as_str().expect("token").to_owned();
    let mut checked = 0;
    for path in [
        "/o/userinfo/",
        "/api/me",
        "/api/logout/",
        "/api/logout_all/",
    ] {
        let authorizations = [
            None,
            Some("Basic Zm9vOmJhcg==".to_owned()),
            Some("Bearer a\"b".to_owned()),
            Some(format!("Bearer {}", "x".repeat(64))),
            Some(format!("Bearer {read_only}")),
        ];
        for authorization in authorizations {
            for post in [false, true] {
                let mut request = if post {
                    app.api
                        .post(app.url(path))
                        .form(&[("access_token", HOSTILE)])
                } else {
                    app.api.get(app.url(path))
                };
                if let Some(value) = &authorization {
                    request = request.header("authorization", value);
                }
                let response = request.send().await.expect("request");
                if response.status().is_success()
                    || response.status() == StatusCode::METHOD_NOT_ALLOWED
                {
                    continue;
                }
                checked += check(&format!("{path} {authorization:?} post={post}"), response).await;
            }
        }
    }
    assert!(checked >= 20, "only {checked} descriptions were checked");
}

#[tokio::test]
async fn authorization_error_redirects_are_rfc_clean() {
    let app = spawn_app().await;
    let (client, _) = app.register(&spec("public", &["authorization_code"])).await;
    let (_, challenge) = pkce_pair();
    let mut checked = 0;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("response_type", HOSTILE, "S256"),
        ("scope", "code", "S256"),
        ("code_challenge_method", "code", HOSTILE),
    ];
    for (what, response_type, method) in cases {
        let mut url = url::Url::parse(&app.url("/o/authorize/")).expect("url");
        url.query_pairs_mut()
            .append_pair("response_type", response_type)
            .append_pair("client_id", client.id())
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", if what == "scope" { HOSTILE } else { "profile" })
            .append_pair("state", HOSTILE)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", method);
        let response = app.browse(url.as_str()).await;
        let status = response.status();
        let n = check(what, response).await;
        assert!(
            n >= 1 || status.is_client_error(),
            "{what}: no error description to check ({status})"
        );
        checked += n;
    }
    // prompt=none without a login: login_required.
    let mut url =
        url::Url::parse(&app.authorize_url(client.id(), "profile", &challenge, "s")).expect("url");
    url.query_pairs_mut().append_pair("prompt", "none");
    checked += check("prompt=none", app.browse(url.as_str()).await).await;
    assert!(checked >= 1, "no redirect carried an error_description");
}
